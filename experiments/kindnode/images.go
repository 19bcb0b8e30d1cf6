package kindnode

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/churnlab/churnlab/experiments/images"
)

// KubernetesVersion is the node's Kubernetes: the control plane's (see
// tools/controlplane/build.sh), since kind v0.33's own nodes are 1.37,
// whose kubelet refuses this machine's cgroup v1 hierarchy.
const KubernetesVersion = "v1.34.4"

// EtcdImage is the etcd image kubeadm 1.34.4 asks for, which the node
// holds (the control plane's etcd, from make controlplane's bin/).
const EtcdImage = "registry.k8s.io/etcd:3.6.5-0"

// The other tags kubeadm 1.34.4 asks for (`kubeadm config images list`),
// and kind's containerd config's sandbox image.
const (
	corednsTag = "registry.k8s.io/coredns/coredns:v1.12.1"
	pauseTag   = "registry.k8s.io/pause:3.10.1"
	kindPause  = "registry.k8s.io/pause:3.10"
	nodenetTag = "churnlab.local/nodenet:" + KubernetesVersion
)

const pathEnv = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Binaries are the programs the node image is made of, built on this
// machine (make node-image builds them).
type Binaries struct {
	ControlPlane string // kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, etcd: make controlplane's bin/, in a churnlab checkout
	Node         string // kubelet, kubeadm, kube-proxy, coredns, pause, nodenet: bin/node/
}

func (b Binaries) controlPlane(name string) string { return filepath.Join(b.ControlPlane, name) }
func (b Binaries) node(name string) string         { return filepath.Join(b.Node, name) }

// binary is one program the node image is made of.
type binary struct{ name, path string }

// all lists the node image's binaries, the control plane's first.
func (b Binaries) all() []binary {
	var out []binary
	for _, name := range []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl", "etcd"} {
		out = append(out, binary{name, b.controlPlane(name)})
	}
	for _, name := range []string{"kubelet", "kubeadm", "kube-proxy", "coredns", "pause", "nodenet"} {
		out = append(out, binary{name, b.node(name)})
	}
	return out
}

// check names the first binary that is missing.
func (b Binaries) check() error {
	for _, bin := range b.all() {
		if _, err := os.Stat(bin.path); err != nil {
			return fmt.Errorf("node image: %s is missing: `make node-image` builds it", bin.path)
		}
	}
	return nil
}

// preloaded returns the images the node's containerd holds before kubeadm
// runs: the control plane's, kube-proxy, coredns, pause and the pod
// network. Binaries built with cgo (the control plane's) get the shared
// libraries they need from this machine; kube-proxy gets iptables from
// the node's rootfs.
func preloaded(b Binaries, rootfs string) ([]images.Image, error) {
	var out []images.Image
	binary := func(refs []string, root string, files []images.File, entrypoint ...string) error {
		img, err := programImage(refs, root, files, entrypoint...)
		if err == nil {
			out = append(out, img)
		}
		return err
	}
	bin := func(dst, src string) images.File { return images.File{Path: dst, Source: src} }
	for _, c := range []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler"} {
		if err := binary([]string{"registry.k8s.io/" + c + ":" + KubernetesVersion}, "/", []images.File{bin("/usr/local/bin/"+c, b.controlPlane(c))}); err != nil {
			return nil, err
		}
	}
	if err := binary([]string{EtcdImage}, "/", []images.File{bin("/usr/local/bin/etcd", b.controlPlane("etcd"))}); err != nil {
		return nil, err
	}
	proxy, err := iptablesFiles(rootfs)
	if err != nil {
		return nil, err
	}
	proxy = append(proxy, bin("/usr/local/bin/kube-proxy", b.node("kube-proxy")))
	if err := binary([]string{"registry.k8s.io/kube-proxy:" + KubernetesVersion}, rootfs, proxy); err != nil {
		return nil, err
	}
	if err := binary([]string{corednsTag}, "/", []images.File{bin("/coredns", b.node("coredns"))}, "/coredns"); err != nil {
		return nil, err
	}
	if err := binary([]string{pauseTag, kindPause}, "/", []images.File{bin("/pause", b.node("pause"))}, "/pause"); err != nil {
		return nil, err
	}
	if err := binary([]string{nodenetTag}, "/", []images.File{bin("/nodenet", b.node("nodenet"))}, "/nodenet"); err != nil {
		return nil, err
	}
	return out, nil
}

// programImage is an image of files and the shared libraries they need
// from root, with a root user and /tmp.
func programImage(refs []string, root string, files []images.File, entrypoint ...string) (images.Image, error) {
	files, err := images.WithLibraries(root, files)
	if err != nil {
		return images.Image{}, fmt.Errorf("image %s: %w", refs[0], err)
	}
	files = append(files, images.File{Path: "/tmp", Mode: 0o1777}, images.File{Path: "/etc/passwd", Data: []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n")})
	layer, err := images.Layer(files)
	if err != nil {
		return images.Image{}, fmt.Errorf("image %s: %w", refs[0], err)
	}
	return images.Image{Refs: refs, Layers: []v1.Layer{layer}, Entrypoint: entrypoint, Env: []string{pathEnv}}, nil
}

// Program returns the image of one of churnlab's programs, binary (built
// with CGO_ENABLED=0 into bin/node/), as churnlab.local/<name>:<digest of
// the binary>, writing its tarball into cache unless it is there.
func Program(binary, cache string) (Built, error) {
	name := filepath.Base(binary)
	sum, err := fileDigest(binary)
	if err != nil {
		return Built{}, fmt.Errorf("image of %s: %w", name, err)
	}
	built := Built{Ref: "churnlab.local/" + name + ":" + sum, Tarball: filepath.Join(cache, name+"-"+sum+".tar")}
	if _, err := os.Stat(built.Tarball); err == nil {
		return built, nil
	}
	img, err := programImage([]string{built.Ref}, "/", []images.File{{Path: "/" + name, Source: binary}}, "/"+name)
	if err != nil {
		return Built{}, err
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return Built{}, err
	}
	if err := images.Write(built.Tarball, img); err != nil {
		return Built{}, err
	}
	pruneOthers(cache, name+"-*.tar", built.Tarball)
	return built, nil
}

func fileDigest(file string) (string, error) {
	f, err := os.Open(file)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil))[:12], nil
}

// iptablesFiles are iptables from the node's rootfs (its nf_tables
// variant) under the names kube-proxy runs, with the extensions it loads.
// kind's entrypoint points the node's own iptables at the variant that
// already holds rules, and the engine's embedded-DNS rules are written by
// the host's iptables, nf_tables on Debian: on such hosts node and
// kube-proxy agree. (Where they differ both still work, since the kernel
// runs both tables; checked by hand with the legacy variant here.)
func iptablesFiles(rootfs string) ([]images.File, error) {
	multi := "/usr/sbin/xtables-nft-multi"
	files := []images.File{{Path: multi, Source: filepath.Join(rootfs, multi)}}
	for _, name := range []string{"iptables", "iptables-save", "iptables-restore", "ip6tables", "ip6tables-save", "ip6tables-restore",
		"iptables-nft", "iptables-nft-save", "iptables-nft-restore", "ip6tables-nft", "ip6tables-nft-save", "ip6tables-nft-restore"} {
		files = append(files, images.File{Path: "/usr/sbin/" + name, Link: "xtables-nft-multi"})
	}
	extensions, err := filepath.Glob(filepath.Join(rootfs, "usr/lib/x86_64-linux-gnu/xtables/*.so"))
	if err != nil || len(extensions) == 0 {
		return nil, fmt.Errorf("node image: no iptables extensions in %s (is iptables in the rootfs?)", rootfs)
	}
	for _, e := range extensions {
		rel, _ := filepath.Rel(rootfs, e)
		files = append(files, images.File{Path: "/" + rel, Source: e})
	}
	return files, nil
}
