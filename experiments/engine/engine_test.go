package engine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/churnlab/churnlab/experiments/images"
	"github.com/churnlab/churnlab/internal/caps"
)

// capsProgram prints the capabilities its process holds, from the
// container's point of view.
const capsProgram = `package main

import (
	"fmt"
	"os"
	"strings"
)

func main() {
	status, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(line, "CapEff:") {
			fmt.Println(strings.TrimSpace(strings.TrimPrefix(line, "CapEff:")))
		}
	}
}
`

// TestPrivateEngineRunsPrivilegedContainers: with no engine of the
// user's, Ensure starts a private dockerd of its own (its own socket,
// state and exec root), whose privileged containers run on this host
// even though its bounding set lacks a capability --privileged asks for;
// and Stop leaves nothing: no daemon, no state, no bridge.
func TestPrivateEngineRunsPrivilegedContainers(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a dockerd")
	}
	if os.Geteuid() != 0 {
		t.Skip("dockerd runs as root")
	}
	dir := t.TempDir()
	shim := filepath.Join(dir, "capshim")
	if out, err := exec.Command("go", "build", "-o", shim, "github.com/churnlab/churnlab/cmd/capshim").CombinedOutput(); err != nil {
		t.Fatalf("building capshim: %v\n%s", err, out)
	}
	suffix := make([]byte, 4)
	rand.Read(suffix)
	opts := Options{
		State:    filepath.Join(dir, "engine"),
		ExecRoot: "/run/churnlab-engine-test-" + hex.EncodeToString(suffix),
		Capshim:  shim, Progress: testWriter{t},
	}
	// Ensure prefers the user's engine: this test wants the private one.
	e, err := start(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Stop()
	missing, err := caps.Ungrantable()
	if err != nil {
		t.Fatal(err)
	}
	if e.Shimmed != (len(missing) > 0) {
		t.Errorf("shimmed %v, with %d capabilities missing from the bounding set", e.Shimmed, len(missing))
	}
	docker := func(args ...string) (string, error) {
		cmd := exec.Command("docker", args...)
		cmd.Env = append(os.Environ(), e.Env...)
		out, err := cmd.CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}

	// A one-binary image, loaded without any registry.
	src := filepath.Join(dir, "caps.go")
	os.WriteFile(src, []byte(capsProgram), 0o644)
	bin := filepath.Join(dir, "caps")
	build := exec.Command("go", "build", "-o", bin, src)
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	layer, err := images.Layer([]images.File{{Path: "/caps", Source: bin}})
	if err != nil {
		t.Fatal(err)
	}
	tarball := filepath.Join(dir, "caps.tar")
	if err := images.Write(tarball, images.Image{Refs: []string{"churnlab.local/caps:test"}, Layers: []v1.Layer{layer}, Entrypoint: []string{"/caps"}}); err != nil {
		t.Fatal(err)
	}
	if out, err := docker("load", "-i", tarball); err != nil {
		t.Fatalf("docker load: %v: %s", err, out)
	}
	out, err := docker("run", "--rm", "--privileged", "churnlab.local/caps:test")
	if err != nil {
		t.Fatalf("docker run --privileged: %v: %s", err, out)
	}
	t.Logf("a privileged container's effective capabilities: %s", out)
	if len(missing) > 0 {
		// runc on its own cannot start it: the shim is what makes it work.
		out, err := docker("run", "--rm", "--privileged", "--runtime", "runc", "churnlab.local/caps:test")
		if err == nil || !strings.Contains(out, "unable to apply caps") {
			t.Errorf("plain runc ran a privileged container on a host without %v: %v: %s", missing, err, out)
		}
	}
	if out, err := docker("network", "create", "churnlab-test"); err != nil {
		t.Fatalf("docker network create: %v: %s", err, out)
	}
	id, _ := docker("network", "inspect", "--format", "{{.Id}}", "churnlab-test")

	if err := e.Stop(); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{opts.State, opts.ExecRoot} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s is left after Stop (%v)", p, err)
		}
	}
	if out, err := exec.Command("pgrep", "-f", opts.State).Output(); err == nil {
		t.Errorf("processes on the private engine's state are left: %s", out)
	}
	if len(id) >= 12 {
		if err := exec.Command("ip", "link", "show", "br-"+id[:12]).Run(); err == nil {
			t.Errorf("the network's bridge br-%s is left on the host", id[:12])
		}
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
