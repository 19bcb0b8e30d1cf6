package images

import (
	"archive/tar"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// The same files make the same layer, whatever their order and times.
func TestLayersAreReproducible(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "prog")
	os.WriteFile(bin, []byte("#!/bin/sh\necho hi\n"), 0o755)
	files := []File{{Path: "/usr/local/bin/prog", Source: bin}, {Path: "/etc/motd", Data: []byte("hello\n")}, {Path: "/bin/sh", Link: "/usr/bin/dash"}}
	a, err := Layer(files)
	if err != nil {
		t.Fatal(err)
	}
	os.Chtimes(bin, epoch, epoch.Add(3600e9))
	slices.Reverse(files)
	b, err := Layer(files)
	if err != nil {
		t.Fatal(err)
	}
	da, _ := a.Digest()
	db, _ := b.Digest()
	if da != db {
		t.Errorf("digests differ: %s and %s", da, db)
	}
	// Parents come first, with the entries' own modes.
	rc, _ := a.Uncompressed()
	defer rc.Close()
	tr := tar.NewReader(rc)
	var got []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, h.Name+" "+os.FileMode(h.Mode).String())
	}
	want := []string{"bin/ -rwxr-xr-x", "bin/sh -rwxrwxrwx", "etc/ -rwxr-xr-x", "etc/motd -rw-r--r--", "usr/ -rwxr-xr-x", "usr/local/ -rwxr-xr-x", "usr/local/bin/ -rwxr-xr-x", "usr/local/bin/prog -rwxr-xr-x"}
	if !slices.Equal(got, want) {
		t.Errorf("entries:\n%q\nwant\n%q", got, want)
	}
	if _, err := Layer([]File{{Path: "relative"}}); err == nil {
		t.Error("a relative path: no error")
	}
}

// A dynamically linked program brings its loader and libraries, and the
// symlinks on the way to them.
func TestWithLibrariesFollowsTheLoader(t *testing.T) {
	files, err := WithLibraries("/", []File{{Path: "/usr/bin/ls", Source: "/usr/bin/ls"}})
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, f := range files {
		paths = append(paths, f.Path)
	}
	joined := strings.Join(paths, " ")
	for _, want := range []string{"/lib64/ld-linux-x86-64.so.2", "libc.so.6", "libselinux.so.1"} {
		if !strings.Contains(joined, want) {
			t.Errorf("closure of /usr/bin/ls lacks %s: %v", want, paths)
		}
	}
	static := filepath.Join(t.TempDir(), "data")
	os.WriteFile(static, []byte("not an ELF file"), 0o644)
	if files, err := WithLibraries("/", []File{{Path: "/data", Source: static}}); err != nil || len(files) != 1 {
		t.Errorf("a non-ELF file: %d files, %v; want itself only", len(files), err)
	}
}

// Write names each image as asked, in a tarball docker load reads.
func TestWriteTagsEveryRef(t *testing.T) {
	layer, err := Layer([]File{{Path: "/pause", Data: []byte("x"), Mode: 0o755}})
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "images.tar")
	if err := Write(file, Image{Refs: []string{"registry.k8s.io/pause:3.10.1", "registry.k8s.io/pause:3.10"}, Layers: []v1.Layer{layer}, Entrypoint: []string{"/pause"}}); err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{"registry.k8s.io/pause:3.10.1", "registry.k8s.io/pause:3.10"} {
		tag, _ := name.NewTag(ref)
		img, err := tarball.ImageFromPath(file, &tag)
		if err != nil {
			t.Fatalf("%s: %v", ref, err)
		}
		cf, _ := img.ConfigFile()
		if cf.Architecture != "amd64" || !slices.Equal(cf.Config.Entrypoint, []string{"/pause"}) {
			t.Errorf("%s: config %+v", ref, cf.Config)
		}
	}
	if err := Write(file, Image{}); err == nil {
		t.Error("an image without a name: no error")
	}
}
