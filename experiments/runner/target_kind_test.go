package runner

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	kindexec "sigs.k8s.io/kind/pkg/exec"

	"github.com/churnlab/churnlab/experiments/controlplane"
	"github.com/churnlab/churnlab/experiments/engine"
	"github.com/churnlab/churnlab/experiments/scenario"
	"github.com/churnlab/churnlab/sim"
)

// TestKindTargetPlaysAStorm: the kind target brings up what it needs
// itself (the node image's binaries, an engine, with Debian's docker.io
// installed and a private dockerd started where none answers, and the
// node image, built offline), creates a one-node kind cluster for each
// system, plays a 60 s restart storm with a config change on it, and
// leaves nothing behind: no cluster container, no temp file, no process,
// and no private daemon or its state when the test started that daemon.
func TestKindTargetPlaysAStorm(t *testing.T) {
	if testing.Short() {
		t.Skip("creates kind clusters")
	}
	binDir, err := controlplane.EnsureBuilt(context.Background(), os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	cache = filepath.Join(cache, "churnlab")
	engineState := filepath.Join(cache, "engine")
	_, err = os.Stat(filepath.Join(engine.DefaultExecRoot, "docker.sock"))
	kept := err == nil // a private engine kept by an earlier run is reused, and left up
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	target, err := NewTarget("kind", TargetOptions{BinDir: binDir, Cache: cache})
	if err != nil {
		t.Fatal(err)
	}
	// The storm of restart-storm, moved into the first minute: the
	// autoscale to 18 pods at 5 s, 45% of them restarted from 20 s, one
	// hunt changed at 40 s.
	sc := shortStorm(t, "60s",
		scenario.Set{Path: "events[0].at", Value: "5s"},
		scenario.Set{Path: "events[1].at", Value: "20s"},
		scenario.Set{Path: "events[2].at", Value: "40s"})
	if sc.AtLiveScale().Cluster.Nodes != 1 {
		t.Fatalf("the live scenario has %d nodes; this test wants a one-node cluster", sc.AtLiveScale().Cluster.Nodes)
	}
	var progress lockedBuffer
	outs, err := RunLive(context.Background(), sc, LiveOptions{Target: target, OutDir: t.TempDir(), Progress: &progress})
	if err != nil {
		t.Fatalf("%v\nprogress:\n%s", err, progress.String())
	}
	for _, want := range []string{"kind target: cluster churnlab-", "1 node(s) of churnlab.local/kind-node:v1.34.4-"} {
		if !strings.Contains(progress.String(), want) {
			t.Errorf("the progress lacks %q:\n%s", want, progress.String())
		}
	}
	if len(outs) != 2 {
		t.Fatalf("%d outputs, want one per system", len(outs))
	}
	for _, o := range outs {
		s := writtenSummary(t, o.Dir)
		// 850 requests a second for 60 s; the baseline's storm costs some.
		if s.Mode != "kind" || *s.Requests.Total < 40_000 {
			t.Errorf("%s: mode %s, %d requests; want kind, about 51,000", o.System, s.Mode, *s.Requests.Total)
		}
		if o.System == sim.Reference && *s.Requests.SuccessRatio < 0.99 {
			t.Errorf("reference: success %.4f under the storm; want nearly all ok", *s.Requests.SuccessRatio)
		}
		if s.Pods.Restarts == nil || *s.Pods.Restarts < 5 {
			t.Errorf("%s: restarts %v; the storm restarts 45%% of 18 pods", o.System, s.Pods.Restarts)
		}
		if s.Config.PropagationP99Ms == nil {
			t.Errorf("%s: the config change at 40 s reached no pod within 60 s", o.System)
		}
		t.Logf("%s: %d requests, success %.4f, p99 %.1f ms, restarts %d", o.System, *s.Requests.Total, *s.Requests.SuccessRatio, *s.Requests.P99Ms, *s.Pods.Restarts)
	}
	checkCleanedUp(t, tmp)
	if kept {
		out, err := exec.Command("docker", "-H", "unix://"+filepath.Join(engine.DefaultExecRoot, "docker.sock"),
			"ps", "-a", "--filter", "label=io.x-k8s.kind.cluster", "--format", "{{.Names}}").CombinedOutput()
		if err != nil {
			t.Fatalf("docker ps: %v: %s", err, out)
		}
		for _, name := range strings.Fields(string(out)) {
			if strings.HasPrefix(name, "churnlab-") {
				t.Errorf("kind node container left: %s", name)
			}
		}
		return
	}
	// The test started the private daemon: it is gone, with its state.
	for _, dir := range []string{engineState, engine.DefaultExecRoot} {
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the private engine's %s is left (%v)", dir, err)
		}
	}
	if out, err := exec.Command("pgrep", "-f", "dockerd --config-file "+engineState).Output(); err == nil {
		t.Errorf("the private dockerd is still running: pid %s", out)
	}
}

// TestWithEngineOutput: a failed engine command's error carries what the
// engine said, not only kind's "exit status 1".
func TestWithEngineOutput(t *testing.T) {
	inner := errors.New("exit status 1")
	err := withEngineOutput(&kindexec.RunError{
		Command: []string{"docker", "info", "--format", "{{json .}}"},
		Output:  []byte("{\"ID\":\"\"}\nCannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?\n"),
		Inner:   inner,
	})
	if !strings.Contains(err.Error(), "docker said: Cannot connect to the Docker daemon") || strings.Contains(err.Error(), `"ID"`) {
		t.Errorf("error: %v", err)
	}
	if plain := errors.New("no cluster"); withEngineOutput(plain) != plain {
		t.Error("an error from no command was changed")
	}
}
