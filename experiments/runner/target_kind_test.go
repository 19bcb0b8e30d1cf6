package runner

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	kindexec "sigs.k8s.io/kind/pkg/exec"

	"github.com/churnlab/churnlab/experiments/controlplane"
	"github.com/churnlab/churnlab/experiments/engine"
	"github.com/churnlab/churnlab/experiments/metrics"
	"github.com/churnlab/churnlab/experiments/scenario"
	"github.com/churnlab/churnlab/sim"
)

// TestKindTargetPlaysAStorm: the kind target brings up what it needs
// itself (the node image's binaries, an engine, with Debian's docker.io
// installed and a private dockerd started where none answers, and the
// node image, built offline), creates a one-node kind cluster for each
// system, plays a 60 s restart storm with a config change on it, sets
// the reference against the simulator's prediction, and leaves nothing
// behind: no cluster container, no temp file, no process,
// and no private daemon or its state when the test started that daemon.
func TestKindTargetPlaysAStorm(t *testing.T) {
	target, tmp, kept := kindTestTarget(t)
	// restart-storm's events moved into one minute: one hunt changed at
	// 5 s, the autoscale to 18 pods from 15 s, 45% of them restarted from
	// 25 s.
	sc := shortStorm(t, "60s",
		scenario.Set{Path: "events[2].at", Value: "5s"},
		scenario.Set{Path: "events[0].at", Value: "15s"},
		scenario.Set{Path: "events[1].at", Value: "25s"})
	if sc.AtLiveScale().Cluster.Nodes != 1 {
		t.Fatalf("the live scenario has %d nodes; this test wants a one-node cluster", sc.AtLiveScale().Cluster.Nodes)
	}
	// The simulator's prediction of this run, at the same scale.
	predicted := map[sim.System]*metrics.Summary{}
	sims, err := RunSim(sc, SimOptions{OutDir: t.TempDir(), LiveScale: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range sims {
		predicted[o.System] = writtenSummary(t, o.Dir)
	}
	var progress lockedBuffer
	outs, err := RunLive(context.Background(), sc, LiveOptions{Target: target, OutDir: t.TempDir(), Progress: &progress})
	if err != nil {
		t.Fatalf("%v\nprogress:\n%s", err, progress.String())
	}
	// Every program ran from its own image, loaded into the node.
	for _, want := range []string{"kind target: cluster churnlab-", "1 node(s) of churnlab.local/kind-node:v1.34.4-",
		"kind target: churnlab.local/veltrix:", "kind target: churnlab.local/podagent:", "kind target: churnlab.local/configd:", "kind target: churnlab.local/nodeagent:"} {
		if !strings.Contains(progress.String(), want) {
			t.Errorf("the progress lacks %q:\n%s", want, progress.String())
		}
	}
	if len(outs) != 2 {
		t.Fatalf("%d outputs, want one per system", len(outs))
	}
	got := map[sim.System]*metrics.Summary{}
	for _, o := range outs {
		s := writtenSummary(t, o.Dir)
		got[o.System] = s
		checkInCluster(t, sc, o.System, o.Dir)
		// 850 requests a second for 60 s; the baseline's storm costs some.
		if s.Mode != "kind" || *s.Requests.Total < 40_000 {
			t.Errorf("%s: mode %s, %d requests; want kind, about 51,000", o.System, s.Mode, *s.Requests.Total)
		}
		// The storm happened: kind's kubelet replaced deleted pods.
		if s.Pods.Restarts == nil || *s.Pods.Restarts == 0 {
			t.Errorf("%s: no pod restarted; the storm restarts 45%% of the pods", o.System)
		}
		if s.Config.PropagationP99Ms == nil {
			t.Errorf("%s: the config change at 5 s reached no pod within 60 s (the sim: %.0f ms)", o.System, *predicted[o.System].Config.PropagationP99Ms)
		}
		if s.Etcd.LeaderElections != nil {
			t.Errorf("%s: leader_elections %d, but kind's etcd is not scraped", o.System, *s.Etcd.LeaderElections)
		}
		p := predicted[o.System]
		t.Logf("%s: %d requests, success %.4f (sim %.4f), p99 %.1f ms (sim %.1f), restarts %d",
			o.System, *s.Requests.Total, *s.Requests.SuccessRatio, *p.Requests.SuccessRatio, *s.Requests.P99Ms, *p.Requests.P99Ms, *s.Pods.Restarts)
	}
	// The fix holds on kind: the reference serves as the sim predicts it
	// (within 5 points of success), and far faster than the baseline.
	ref, base := got[sim.Reference], got[sim.Baseline]
	if want := *predicted[sim.Reference].Requests.SuccessRatio - 0.05; *ref.Requests.SuccessRatio < want {
		t.Errorf("reference: success %.4f; the sim predicts %.4f, want at least %.4f", *ref.Requests.SuccessRatio, *predicted[sim.Reference].Requests.SuccessRatio, want)
	}
	if *ref.Requests.P99Ms*3 > *base.Requests.P99Ms {
		t.Errorf("reference p99 %.1f ms is not a third of the baseline's %.1f ms", *ref.Requests.P99Ms, *base.Requests.P99Ms)
	}
	checkKindCleanedUp(t, tmp, kept)
}

// checkInCluster checks that every part of system ran as a Running pod
// of its own image, as the run's cluster-pods.txt listed the cluster's
// pods when the load started.
func checkInCluster(t *testing.T, sc *scenario.Scenario, system sim.System, dir string) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, "cluster-pods.txt"))
	if err != nil {
		t.Fatal(err)
	}
	// What must run, by pod name (a trailing "-" is a prefix), and the
	// image it runs.
	want := map[string]string{"kube-apiserver-": "registry.k8s.io/kube-apiserver:", "etcd-": "registry.k8s.io/etcd:", "game-": "churnlab.local/podagent:"}
	switch system {
	case sim.Baseline:
		want["veltrix-operator-"] = "churnlab.local/veltrix:"
	case sim.Reference:
		for i := range sc.Reference.Replicas {
			want[fmt.Sprintf("configd-%d", i)] = "churnlab.local/configd:"
		}
		want["configd-store-"] = "registry.k8s.io/etcd:"
		want["nodeagent-"] = "churnlab.local/nodeagent:"
	}
	running := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n")[1:] {
		f := strings.Fields(line) // NAMESPACE NAME NODE PHASE READY IMAGES
		if len(f) != 6 {
			t.Fatalf("cluster-pods.txt: line %q", line)
		}
		for name, image := range want {
			matches := f[1] == name || (strings.HasSuffix(name, "-") && strings.HasPrefix(f[1], name))
			if matches && f[3] == "Running" && strings.HasPrefix(f[5], image) {
				running[name]++
			}
		}
	}
	for name, image := range want {
		if running[name] == 0 {
			t.Errorf("%s: no pod %s* Running %s*:\n%s", system, name, image, raw)
		}
	}
	if pods := sc.AtLiveScale().Cluster.Pods; running["game-"] != pods {
		t.Errorf("%s: %d game pods Running podagent, want %d", system, running["game-"], pods)
	}
}

// TestKindTargetCleansUpOnFailureAndCancel: a run that fails once its
// cluster is up (a store that cannot run here), and a run cancelled in
// its run step (Ctrl-C), leave no cluster, file, process or engine behind
// and write no results.
func TestKindTargetCleansUpOnFailureAndCancel(t *testing.T) {
	target, tmp, kept := kindTestTarget(t)
	out := t.TempDir()
	sc := shortStorm(t, "30s", scenario.Set{Path: "reference.store.kind", Value: "foundationdb"})
	_, err := RunLive(context.Background(), sc, LiveOptions{Target: target, OutDir: out, Systems: []sim.System{sim.Reference}})
	if err == nil || !strings.Contains(err.Error(), "foundationdb cannot run here") {
		t.Fatalf("err = %v, want the store's refusal", err)
	}
	checkKindCleanedUp(t, tmp, kept)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	progress := &cancelAt{cancel: cancel, marker: fmt.Sprintf("step %d/%d run: ", stepRun+1, len(liveSteps))}
	_, err = RunLive(ctx, shortStorm(t, "5m"), LiveOptions{Target: target, OutDir: out, Systems: []sim.System{sim.Baseline}, Progress: progress})
	if !errors.Is(err, context.Canceled) || !progress.fired() {
		t.Fatalf("err = %v (cancelled in the run step: %v), want context.Canceled there", err, progress.fired())
	}
	checkKindCleanedUp(t, tmp, kept)
	if entries, _ := os.ReadDir(out); len(entries) > 0 {
		t.Errorf("the failed and cancelled runs wrote %d entries into the results directory", len(entries))
	}
}

// kindTestTarget returns the kind target with the machine's cache, and
// whether a private engine kept by an earlier run is up (the target
// reuses it and leaves it up); TMPDIR points at a directory that
// checkKindCleanedUp checks is left empty.
func kindTestTarget(t *testing.T) (Target, string, bool) {
	t.Helper()
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
	_, err = os.Stat(filepath.Join(engine.DefaultExecRoot, "docker.sock"))
	kept := err == nil
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	target, err := NewTarget("kind", TargetOptions{BinDir: binDir, Cache: filepath.Join(cache, "churnlab")})
	if err != nil {
		t.Fatal(err)
	}
	return target, tmp, kept
}

// checkKindCleanedUp fails the test if a run left a process, a temp file
// or a kind node container, or, when the run started the private engine,
// the engine's daemon, state or exec root.
func checkKindCleanedUp(t *testing.T, tmp string, kept bool) {
	t.Helper()
	checkCleanedUp(t, tmp)
	routes, err := netlink.RouteList(nil, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	_, pods, _ := net.ParseCIDR("10.244.0.0/16") // kind's pod subnet
	for _, r := range routes {
		if r.Dst != nil && pods.Contains(r.Dst.IP) {
			t.Errorf("a route to kind's pods is left: %s via %s", r.Dst, r.Gw)
		}
	}
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
	cache, _ := os.UserCacheDir()
	state := filepath.Join(cache, "churnlab", "engine")
	for _, dir := range []string{state, engine.DefaultExecRoot} {
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the private engine's %s is left (%v)", dir, err)
		}
	}
	if out, err := exec.Command("pgrep", "-f", "dockerd --config-file "+state).Output(); err == nil {
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
