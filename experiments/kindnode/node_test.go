package kindnode

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/churnlab/churnlab/experiments/controlplane"
)

// TestNodeImagePreloadsWhatKubeadmAsks builds the node image (or finds it
// in the machine's cache) and reads it back: it boots kind's entrypoint
// into systemd, holds the node files kind and kubeadm look for, a
// containerd config this host can run, and preloads exactly the images
// `kubeadm config images list` names, plus kind's sandbox tag and the pod
// network's. A second build with the same inputs is the cached one.
func TestNodeImagePreloadsWhatKubeadmAsks(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the kind node image")
	}
	ctx := context.Background()
	bin, err := controlplane.EnsureBuilt(ctx, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := controlplane.EnsureNodeBuilt(ctx, os.Stderr); err != nil {
		t.Fatal(err)
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	opts := Options{Binaries: Binaries{ControlPlane: bin, Node: filepath.Join(bin, "node")}, Cache: filepath.Join(cache, "churnlab", "kind-node")}
	built, err := Build(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	var again bytes.Buffer
	opts.Progress = &again
	if second, err := Build(ctx, opts); err != nil || second != built || !strings.Contains(again.String(), "is built") {
		t.Errorf("second build: %+v, %v, %q; want %+v from the cache", second, err, again.String(), built)
	}

	tag, err := name.NewTag(built.Ref)
	if err != nil {
		t.Fatal(err)
	}
	img, err := tarball.ImageFromPath(built.Tarball, &tag)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cf.Config.Entrypoint, []string{"/usr/local/bin/entrypoint", "/sbin/init"}) || cf.Config.StopSignal != "SIGRTMIN+3" {
		t.Errorf("entrypoint %q, stop signal %q: want kind's entrypoint into systemd, stopped by SIGRTMIN+3", cf.Config.Entrypoint, cf.Config.StopSignal)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 2 {
		t.Fatalf("%d layers, %v; want the rootfs and churnlab's", len(layers), err)
	}
	top := readLayer(t, layers[1])
	for file, want := range map[string]string{
		"kind/version":                    KubernetesVersion + "\n",
		"etc/containerd/config.toml":      "restrict_oom_score_adj = true",
		"kind/manifests/default-cni.yaml": "image: " + nodenetTag,
	} {
		if !strings.Contains(string(top[file]), want) {
			t.Errorf("%s lacks %q:\n%s", file, want, top[file])
		}
	}
	for _, file := range []string{"usr/bin/kubelet", "usr/bin/kubeadm", "usr/bin/kubectl", "usr/local/bin/entrypoint", "etc/containerd/cri-base.json", "etc/systemd/system/multi-user.target.wants/kubelet.service"} {
		if _, ok := top[file]; !ok {
			t.Errorf("the node lacks /%s", file)
		}
	}

	preload := filepath.Join(t.TempDir(), "preload.tar")
	if err := os.WriteFile(preload, top["kind/images/churnlab.tar"], 0o644); err != nil {
		t.Fatal(err)
	}
	manifest, err := tarball.LoadManifest(func() (io.ReadCloser, error) { return os.Open(preload) })
	if err != nil {
		t.Fatal(err)
	}
	var tags []string
	for _, m := range manifest {
		tags = append(tags, m.RepoTags...)
	}
	out, err := exec.Command(filepath.Join(bin, "node", "kubeadm"), "config", "images", "list", "--kubernetes-version", KubernetesVersion).Output()
	if err != nil {
		t.Fatal(err)
	}
	want := append(strings.Fields(string(out)), kindPause, nodenetTag)
	slices.Sort(tags)
	slices.Sort(want)
	if !slices.Equal(tags, want) {
		t.Errorf("preloaded:\n%q\nwant (kubeadm's list, kind's sandbox, the pod network):\n%q", tags, want)
	}
}

// readLayer returns a layer's regular files by path.
func readLayer(t *testing.T, l interface {
	Uncompressed() (io.ReadCloser, error)
}) map[string][]byte {
	t.Helper()
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	files := map[string][]byte{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg || h.Typeflag == tar.TypeSymlink {
			data, _ := io.ReadAll(tr)
			files[h.Name] = data
		}
	}
}
