package kindnode

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/churnlab/churnlab/experiments/images"
	"github.com/churnlab/churnlab/internal/lines"
)

// Repository is the node image's name; its tag is the Kubernetes version
// and a digest of its inputs.
const Repository = "churnlab.local/kind-node"

// Options say where the node image's inputs are and where it is kept.
type Options struct {
	Binaries Binaries
	Cache    string    // kept between builds: the rootfs, layers and image tarballs
	Progress io.Writer // one line per step; nil for none
}

// Built is a node image on disk.
type Built struct {
	Ref     string // Repository:<version>-<digest of the inputs>
	Tarball string // a docker-save tarball of Ref
}

// Build returns the node image, building what its cache lacks.
func Build(ctx context.Context, opts Options) (Built, error) {
	if err := opts.Binaries.check(); err != nil {
		return Built{}, err
	}
	if err := os.MkdirAll(opts.Cache, 0o755); err != nil {
		return Built{}, err
	}
	start := time.Now()
	kindFiles, kindVersion, err := kindBaseFiles(filepath.Dir(opts.Binaries.ControlPlane))
	if err != nil {
		return Built{}, err
	}
	rootfs, err := ensureRootfs(ctx, opts.Cache, opts.Progress)
	if err != nil {
		return Built{}, err
	}
	key, err := inputsKey(opts.Binaries, kindFiles, rootfs)
	if err != nil {
		return Built{}, err
	}
	built := Built{Ref: Repository + ":" + KubernetesVersion + "-" + key, Tarball: filepath.Join(opts.Cache, "kind-node-"+key+".tar")}
	if _, err := os.Stat(built.Tarball); err == nil {
		lines.Say(opts.Progress, "node image: %s is built (%s)", built.Ref, built.Tarball)
		return built, nil
	}
	lines.Say(opts.Progress, "node image: assembling %s from kind %s's node files, the rootfs and %s's binaries (about 1 min)", built.Ref, kindVersion, KubernetesVersion)

	preload, err := preloaded(opts.Binaries, rootfs)
	if err != nil {
		return Built{}, err
	}
	preloadTar := filepath.Join(opts.Cache, "preload-"+key+".tar")
	if err := images.Write(preloadTar, preload...); err != nil {
		return Built{}, err
	}
	defer os.Remove(preloadTar)
	lines.Say(opts.Progress, "node image: %d images to preload written (%s)", len(preload), time.Since(start).Round(time.Second))

	files, err := nodeFiles(opts.Binaries, kindFiles, rootfs, preloadTar)
	if err != nil {
		return Built{}, err
	}
	top, err := images.Layer(files)
	if err != nil {
		return Built{}, err
	}
	baseTar := rootfs + ".layer.tar"
	base, err := baseLayer(rootfs, baseTar)
	if err != nil {
		return Built{}, err
	}
	node := images.Image{
		Refs:       []string{built.Ref},
		Layers:     []v1.Layer{base, top},
		Entrypoint: []string{"/usr/local/bin/entrypoint", "/sbin/init"},
		Env:        []string{pathEnv, "container=docker"},
		StopSignal: "SIGRTMIN+3",
	}
	if err := images.Write(built.Tarball, node); err != nil {
		return Built{}, err
	}
	pruneOthers(opts.Cache, "kind-node-*.tar", built.Tarball)
	lines.Say(opts.Progress, "node image: %s written in %s", built.Ref, time.Since(start).Round(time.Second))
	return built, nil
}

// pruneOthers removes the files of dir matching pattern but keep: older
// builds of the same image, half a gigabyte each for the node.
func pruneOthers(dir, pattern, keep string) {
	old, _ := filepath.Glob(filepath.Join(dir, pattern))
	for _, f := range old {
		if f != keep {
			os.Remove(f)
		}
	}
}

// baseLayer is the rootfs as a layer, written once next to it.
func baseLayer(rootfs, file string) (v1.Layer, error) {
	if _, err := os.Stat(file); err == nil {
		return images.LayerFile(file)
	}
	return images.DirLayer(rootfs, file)
}

// kindBaseFiles returns the files of kind's base node image
// (images/base/files) from the kind module that the churnlab checkout at
// checkout requires (its go.mod), by their path in the node, and that
// module's version. The module comes from the Go module cache (go mod
// download fetches it if need be).
func kindBaseFiles(checkout string) (map[string]string, string, error) {
	cmd := exec.Command("go", "mod", "download", "-json", "sigs.k8s.io/kind")
	cmd.Dir = checkout
	out, err := cmd.Output()
	if err != nil {
		return nil, "", fmt.Errorf("node image: finding the kind module that %s/go.mod requires (go mod download): %w", checkout, err)
	}
	var mod struct{ Version, Dir, Error string }
	if err := json.Unmarshal(out, &mod); err != nil || mod.Dir == "" {
		return nil, "", fmt.Errorf("node image: go mod download sigs.k8s.io/kind in %s: %v %s", checkout, err, mod.Error)
	}
	version := mod.Version
	root := filepath.Join(mod.Dir, "images/base/files")
	files := map[string]string{}
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if !strings.HasPrefix(rel, "LICENSES") {
			files["/"+filepath.ToSlash(rel)] = p
		}
		return nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("node image: kind's node files: %w", err)
	}
	return files, version, nil
}

// inputsKey digests everything the node image is made of.
func inputsKey(b Binaries, kindFiles map[string]string, rootfs string) (string, error) {
	h := sha256.New()
	fmt.Fprintln(h, "kindnode/1", KubernetesVersion, filepath.Base(rootfs), nodenetManifest, preloadUnit, containerdPatches)
	var sources []string
	for dst, src := range kindFiles {
		sources = append(sources, dst+"="+src)
	}
	for _, bin := range b.all() {
		sources = append(sources, bin.name+"="+bin.path)
	}
	sort.Strings(sources)
	for _, s := range sources {
		src := s[strings.Index(s, "=")+1:]
		f, err := os.Open(src)
		if err != nil {
			return "", err
		}
		fmt.Fprintln(h, s[:strings.Index(s, "=")])
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return "", err
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:12], nil
}

// containerdPatches are churnlab's changes to kind's containerd config, as
// (old, new) pairs: this host's bounding set lacks CAP_SYS_RESOURCE, which
// a sandbox's negative oom_score_adj needs; the sandbox is kubeadm 1.34's
// pause; and no fuse-overlayfs snapshotter runs (it is for rootless
// engines).
var containerdPatches = [][2]string{
	{"restrict_oom_score_adj = false", "restrict_oom_score_adj = true"},
	{`sandbox_image = "registry.k8s.io/pause:3.10"`, `sandbox_image = "` + pauseTag + `"`},
}

// preloadUnit imports the preloaded images into containerd before the
// kubelet starts, on every node's first boot.
const preloadUnit = `[Unit]
Description=Import churnlab's preloaded images into containerd
After=containerd.service
Requires=containerd.service
Before=kubelet.service
ConditionPathExists=!/var/lib/churnlab-preloaded

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh -euc 'for f in /kind/images/*.tar; do ctr --namespace k8s.io images import --no-unpack=false "$f"; done; touch /var/lib/churnlab-preloaded'

[Install]
WantedBy=multi-user.target
`

// nodenetManifest is the pod network kind applies (cmd/nodenet). kind
// adds CONTROL_PLANE_ENDPOINT to its first container's env where the file
// asks it to be patched.
const nodenetManifest = `# would you kindly patch this file
apiVersion: v1
kind: ServiceAccount
metadata:
  name: nodenet
  namespace: kube-system
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: nodenet
rules:
- apiGroups: [""]
  resources: [nodes]
  verbs: [list, watch, get]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: nodenet
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: nodenet
subjects:
- kind: ServiceAccount
  name: nodenet
  namespace: kube-system
---
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: nodenet
  namespace: kube-system
  labels: {app: nodenet}
spec:
  selector:
    matchLabels: {app: nodenet}
  template:
    metadata:
      labels: {app: nodenet}
    spec:
      hostNetwork: true
      dnsPolicy: Default
      serviceAccountName: nodenet
      tolerations:
      - operator: Exists
      containers:
      - name: nodenet
        image: ` + nodenetTag + `
        imagePullPolicy: Never
        env:
        - name: NODE_NAME
          valueFrom:
            fieldRef: {fieldPath: spec.nodeName}
        securityContext:
          capabilities: {add: [NET_ADMIN, NET_RAW]}
        volumeMounts:
        - {name: cni-cfg, mountPath: /etc/cni/net.d}
        resources:
          requests: {cpu: 10m, memory: 16Mi}
      volumes:
      - name: cni-cfg
        hostPath: {path: /etc/cni/net.d, type: DirectoryOrCreate}
`

// nodeFiles are what churnlab adds to the rootfs: kind's node files, the
// enabled units, the binaries, the CNI plugins where containerd looks for
// them, and the images to preload.
func nodeFiles(b Binaries, kindFiles map[string]string, rootfs, preloadTar string) ([]images.File, error) {
	var files []images.File
	for dst, src := range kindFiles {
		f := images.File{Path: dst, Source: src, Mode: 0o644}
		if strings.HasPrefix(dst, "/usr/local/bin/") || strings.HasPrefix(dst, "/kind/bin/") {
			f.Mode = 0o755
		}
		if dst == "/etc/containerd/config.toml" {
			raw, err := os.ReadFile(src)
			if err != nil {
				return nil, err
			}
			for _, p := range containerdPatches {
				if !bytes.Contains(raw, []byte(p[0])) {
					return nil, fmt.Errorf("node image: kind's %s no longer has %q", dst, p[0])
				}
				raw = bytes.ReplaceAll(raw, []byte(p[0]), []byte(p[1]))
			}
			f = images.File{Path: dst, Data: raw}
		}
		files = append(files, f)
	}
	spec, err := criBaseSpec(rootfs)
	if err != nil {
		return nil, err
	}
	files = append(files,
		images.File{Path: "/etc/containerd/cri-base.json", Data: spec},
		// kind's units run containerd from /usr/local/bin; Debian installs it in /usr/bin.
		images.File{Path: "/usr/local/bin/containerd", Link: "/usr/bin/containerd"},
		images.File{Path: "/etc/systemd/system/churnlab-preload.service", Data: []byte(preloadUnit)},
		images.File{Path: "/etc/systemd/system/systemd-binfmt.service", Link: "/dev/null"},
		images.File{Path: "/etc/kubernetes/manifests"},
		images.File{Path: "/kind/version", Data: []byte(KubernetesVersion + "\n")},
		images.File{Path: "/kind/manifests/default-cni.yaml", Data: []byte(nodenetManifest)},
		images.File{Path: "/kind/images/churnlab.tar", Source: preloadTar, Mode: 0o644},
		images.File{Path: "/usr/bin/kubelet", Source: b.node("kubelet"), Mode: 0o755},
		images.File{Path: "/usr/bin/kubeadm", Source: b.node("kubeadm"), Mode: 0o755},
		images.File{Path: "/usr/bin/kubectl", Source: b.controlPlane("kubectl"), Mode: 0o755},
	)
	for _, unit := range []string{"kubelet.service", "containerd.service", "undo-mount-hacks.service", "churnlab-preload.service"} {
		files = append(files, images.File{Path: "/etc/systemd/system/multi-user.target.wants/" + unit, Link: "/etc/systemd/system/" + unit})
	}
	for _, plugin := range []string{"bridge", "host-local", "loopback", "portmap", "ptp"} {
		files = append(files, images.File{Path: "/opt/cni/bin/" + plugin, Link: "/usr/lib/cni/" + plugin})
	}
	return files, nil
}

// criBaseSpec is kind's base OCI spec for containers (images/base's
// Dockerfile): the node's containerd's default spec (ctr in the rootfs),
// with kind's product-files hook and no rlimits.
func criBaseSpec(rootfs string) ([]byte, error) {
	out, err := exec.Command("chroot", rootfs, "ctr", "oci", "spec").Output()
	if err != nil {
		return nil, fmt.Errorf("node image: `ctr oci spec` in the rootfs %s: %w", rootfs, err)
	}
	var spec map[string]any
	if err := json.Unmarshal(out, &spec); err != nil {
		return nil, fmt.Errorf("node image: ctr oci spec: %w", err)
	}
	hooks, _ := spec["hooks"].(map[string]any)
	if hooks == nil {
		hooks = map[string]any{}
	}
	create, _ := hooks["createContainer"].([]any)
	hooks["createContainer"] = append(create, map[string]any{"path": "/kind/bin/mount-product-files.sh"})
	spec["hooks"] = hooks
	if process, ok := spec["process"].(map[string]any); ok {
		delete(process, "rlimits")
	}
	return json.MarshalIndent(spec, "", "  ")
}
