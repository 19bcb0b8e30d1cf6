package runner

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/churnlab/churnlab/experiments/controlplane"
	"github.com/churnlab/churnlab/experiments/metrics"
	"github.com/churnlab/churnlab/experiments/scenario"
	"github.com/churnlab/churnlab/experiments/scenariofile"
	"github.com/churnlab/churnlab/internal/proctest"
	"github.com/churnlab/churnlab/sim"
)

// liveTarget returns the local target, building the control plane if
// needed, and points TMPDIR at a directory the test checks is left empty.
func liveTarget(t *testing.T) (Target, string) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a control plane")
	}
	binDir, err := controlplane.EnsureBuilt(context.Background(), os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	target, err := NewTarget("local", TargetOptions{BinDir: binDir})
	if err != nil {
		t.Fatal(err)
	}
	return target, tmp
}

// shortStorm is restart-storm cut to its first d of live time, with the
// given overrides.
func shortStorm(t *testing.T, d string, sets ...scenario.Set) *scenario.Scenario {
	t.Helper()
	sets = append([]scenario.Set{{Path: "live.duration", Value: d}}, sets...)
	sc, err := scenariofile.Load("../scenarios/restart-storm.yaml", sets...)
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

// writtenSummary reads the summary.json a run wrote into dir.
func writtenSummary(t *testing.T, dir string) *metrics.Summary {
	t.Helper()
	s, err := metrics.ReadFile(filepath.Join(dir, "summary.json"), metrics.ReadSummary)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// checkCleanedUp fails the test if any process the run started is still
// running or it left anything in tmp.
func checkCleanedUp(t *testing.T, tmp string) {
	t.Helper()
	mine := func(p proctest.Process) bool { return p.Parent == os.Getpid() && p.State != "Z" }
	if pids := proctest.Find(t, mine); len(pids) > 0 {
		t.Errorf("processes left running: %v", pids)
	}
	left, err := os.ReadDir(tmp)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range left {
		t.Errorf("left in TMPDIR: %s", e.Name())
	}
}

// TestLiveRunOfBothSystems plays the first 45 s of the restart storm's
// live version, with its config change moved to 5 s (its churn comes
// later, so it is dropped), against both systems, and checks what each
// wrote and that nothing is left behind.
func TestLiveRunOfBothSystems(t *testing.T) {
	target, tmp := liveTarget(t)
	out := t.TempDir()
	sc := shortStorm(t, "45s", scenario.Set{Path: "events[2].at", Value: "5s"})
	var progress lockedBuffer
	outs, err := RunLive(context.Background(), sc, LiveOptions{Target: target, OutDir: out, Progress: &progress})
	if err != nil {
		t.Fatal(err)
	}
	checkCleanedUp(t, tmp)
	// A run that ended as planned stopped its systems as planned: no line
	// reads like a failure ("operator stopped: context canceled").
	if p := progress.String(); strings.Contains(p, "stopped: ") {
		t.Errorf("the run's progress says a part stopped on its own:\n%s", p)
	}
	if len(outs) != 2 {
		t.Fatalf("%d outputs, want one per system", len(outs))
	}
	for _, o := range outs {
		for _, f := range []string{"summary.json", "timeseries.csv", "vegeta.bin", "vegeta.txt", "notes.txt", "scrapes.csv"} {
			if _, err := os.Stat(filepath.Join(o.Dir, f)); err != nil {
				t.Errorf("%s: %v", o.System, err)
			}
		}
		s := writtenSummary(t, o.Dir)
		// 850 requests a second for 45 s, every pod in rotation first.
		if s.Mode != "local" || *s.Requests.Total < 35_000 || *s.Requests.SuccessRatio < 0.99 {
			t.Errorf("%s: mode %s, %d requests, success %.4f; want local, about 38,250, nearly all ok",
				o.System, s.Mode, *s.Requests.Total, *s.Requests.SuccessRatio)
		}
		// The change reached the pods: the reference's stream at once, the
		// baseline's next reconcile, reload and pulls within the run.
		if s.Config.PropagationP99Ms == nil {
			t.Errorf("%s: the config change at 5 s did not reach any pod within 45 s", o.System)
		} else {
			t.Logf("%s: config propagation p99 %.0f ms", o.System, *s.Config.PropagationP99Ms)
		}
		scrapes, err := os.ReadFile(filepath.Join(o.Dir, "scrapes.csv"))
		if err != nil {
			t.Fatal(err)
		}
		own := map[sim.System]string{sim.Baseline: ",operator,veltrix_reconciles_total,", sim.Reference: ",configd-0,configd_streams,"}[o.System]
		for _, want := range []string{own, ",kube-apiserver,apiserver_flowcontrol_", ",etcd,etcd_server_"} {
			if !bytes.Contains(scrapes, []byte(want)) {
				t.Errorf("%s: scrapes.csv has no %q row", o.System, want)
			}
		}
		if s.APIServer.Requests == nil {
			t.Errorf("%s: the API server's counters were not scraped", o.System)
		} else if o.System == sim.Baseline && *s.APIServer.Requests == 0 {
			t.Errorf("baseline: no operator requests counted at the API server in 30 s of 5 s reconciles")
		}
	}
}

// TestLiveRunCleansUpOnFailure: a run that fails half way (a store that
// cannot run here) stops what it started and writes nothing.
func TestLiveRunCleansUpOnFailure(t *testing.T) {
	target, tmp := liveTarget(t)
	out := t.TempDir()
	sc := shortStorm(t, "30s", scenario.Set{Path: "reference.store.kind", Value: "foundationdb"})
	_, err := RunLive(context.Background(), sc, LiveOptions{Target: target, OutDir: out, Systems: []sim.System{sim.Reference}})
	if err == nil || !strings.Contains(err.Error(), "foundationdb cannot run here") {
		t.Fatalf("err = %v, want the store's refusal", err)
	}
	checkCleanedUp(t, tmp)
	if entries, _ := os.ReadDir(out); len(entries) > 0 {
		t.Errorf("a failed run wrote %d entries into the results directory", len(entries))
	}
}

// TestLiveRunCleansUpOnCancel: cancelling mid-run (Ctrl-C in the CLI)
// stops everything and writes nothing.
func TestLiveRunCleansUpOnCancel(t *testing.T) {
	target, tmp := liveTarget(t)
	out := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	progress := &cancelAt{cancel: cancel, marker: fmt.Sprintf("step %d/%d run: ", stepRun+1, len(liveSteps))}
	_, err := RunLive(ctx, shortStorm(t, "5m"), LiveOptions{Target: target, OutDir: out, Systems: []sim.System{sim.Baseline}, Progress: progress})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if !progress.fired() {
		t.Fatal("the run ended before it reached the run step")
	}
	checkCleanedUp(t, tmp)
	if entries, _ := os.ReadDir(out); len(entries) > 0 {
		t.Errorf("a cancelled run wrote %d entries into the results directory", len(entries))
	}
}

// lockedBuffer is a progress writer the run's goroutines may share.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// cancelAt is a progress writer that cancels once marker is written.
type cancelAt struct {
	cancel func()
	marker string
	mu     sync.Mutex
	done   bool
}

func (c *cancelAt) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.done && bytes.Contains(p, []byte(c.marker)) {
		c.done = true
		c.cancel()
	}
	return len(p), nil
}

func (c *cancelAt) fired() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.done
}

// TestLiveRunOverTC: with --uplink tc the operator's bundle endpoint
// listens inside the run's network namespace; a config change sends every
// pod its bundle across the shaped veth, and the namespace goes with the
// run.
func TestLiveRunOverTC(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	target, tmp := liveTarget(t)
	out := t.TempDir()
	sc := shortStorm(t, "40s", scenario.Set{Path: "events[2].at", Value: "5s"})
	outs, err := RunLive(context.Background(), sc, LiveOptions{Target: target, OutDir: out, Systems: []sim.System{sim.Baseline}, Uplink: UplinkTC})
	if err != nil {
		t.Fatal(err)
	}
	checkCleanedUp(t, tmp)
	s := outs[0].Summary
	// 12 pods pull the 2 MB bundle again after the change.
	if *s.Egress.TotalBytes < 12*2e6 || s.Config.PropagationP99Ms == nil {
		t.Errorf("egress %.0f bytes, propagation %v; want every pod's bundle across the veth", *s.Egress.TotalBytes, s.Config.PropagationP99Ms)
	}
	if peak, limit := *s.Egress.PeakBytesPerS, sc.AtLiveScale().Cluster.Uplink.BytesPerSecond(); peak > 1.1*limit {
		t.Errorf("egress peaked at %.0f bytes/s through a tbf of %.0f", peak, limit)
	}
	netns, _ := exec.Command("ip", "netns", "list").CombinedOutput()
	if bytes.Contains(netns, []byte(fmt.Sprintf("churnlab-%d-", os.Getpid()%100000))) {
		t.Errorf("network namespace left behind: %s", netns)
	}
}

// TestLiveRollingUpdateWaitsForConfig: game pods are Ready only with
// config (a readiness gate the realizer sets), so the Deployment's
// rolling update, 25% surge and 25% unavailable, keeps at least 75% of the
// pods with config at every second, as the simulator's rollout does.
// Before the gate, kwok marked new pods Ready at once, and the baseline's
// 18 were all replaced while none had config (0 of 18 for the rest of
// the run); the reference's config comes too fast to show it.
func TestLiveRollingUpdateWaitsForConfig(t *testing.T) {
	target, tmp := liveTarget(t)
	out := t.TempDir()
	sc, err := scenariofile.Load("../scenarios/rolling-update.yaml",
		scenario.Set{Path: "live.duration", Value: "50s"}, scenario.Set{Path: "events[0].at", Value: "5s"})
	if err != nil {
		t.Fatal(err)
	}
	outs, err := RunLive(context.Background(), sc, LiveOptions{Target: target, OutDir: out})
	if err != nil {
		t.Fatal(err)
	}
	checkCleanedUp(t, tmp)
	want := sc.AtLiveScale().Cluster.Pods
	for _, o := range outs {
		ts, err := metrics.ReadFile(filepath.Join(o.Dir, "timeseries.csv"), metrics.ReadTimeseries)
		if err != nil {
			t.Fatal(err)
		}
		ready, starts := ts.Column("pods_ready"), ts.Column("pod_starts")
		var started float64
		for i, n := range ready {
			started += starts[i]
			if n < 0.75*float64(want) {
				t.Errorf("%s at %d s: %.0f of %d pods with config, under the 75%% the rollout's maxUnavailable keeps", o.System, i, n, want)
			}
		}
		// The reference's rollout is done within the run: every pod
		// replaced. The baseline's is still going: each new pod costs a
		// reload of every config object through the operator's rate
		// limiter, and waits for it.
		if o.System == sim.Reference && started < float64(want) {
			t.Errorf("%s: %.0f new pods got config during the run; want all %d replaced", o.System, started, want)
		}
	}
}

// TestLiveControllersInTheirPriorityLevels plays the APF experiment's
// first 40 s: the driver's controllers against the real API server, whose
// flow-control metrics give each of their levels its seats and queue
// waits, written into summary.json and priority-levels.csv.
func TestLiveControllersInTheirPriorityLevels(t *testing.T) {
	target, tmp := liveTarget(t)
	out := t.TempDir()
	sc, err := scenariofile.Load("../scenarios/apf-levels.yaml", scenario.Set{Path: "live.duration", Value: "40s"})
	if err != nil {
		t.Fatal(err)
	}
	outs, err := RunLive(context.Background(), sc, LiveOptions{Target: target, OutDir: out, Systems: []sim.System{sim.Reference}})
	if err != nil {
		t.Fatal(err)
	}
	checkCleanedUp(t, tmp)
	s := writtenSummary(t, outs[0].Dir)
	for name, level := range map[string]string{"sidecar": "agents", "kubelet": "node-high", "config-operator": "workload-high"} {
		c, ok := s.Controllers[name]
		if !ok || *c.Requests == 0 {
			t.Errorf("controller %s made no requests the driver saw: %+v", name, c)
		}
		l, ok := s.PriorityLevels[level]
		switch {
		case !ok:
			t.Errorf("no priority level %s in summary.json", level)
		case l.SeatsPeak == nil:
			t.Errorf("level %s: seats never scraped", level)
		// The sidecars' level is full all along: a scrape a second sees
		// its seats in use. The others' requests take milliseconds.
		case level == "agents" && *l.SeatsPeak < 1:
			t.Errorf("level agents: seats peak 0, want its seats scraped in use")
		case l.QueueWaitP99Ms == nil:
			t.Errorf("level %s: no queue waits from the API server's histogram", level)
		default:
			t.Logf("level %s: %d requests, %d 429s, p99 %.1f ms, queue wait p99 %.2f ms, seats peak %d",
				level, *l.Requests, *l.Throttled429, *l.P99Ms, *l.QueueWaitP99Ms, *l.SeatsPeak)
		}
	}
	if _, ok := s.PriorityLevels["exempt"]; ok {
		t.Errorf("level exempt is in summary.json: only the controllers' levels are followed")
	}
	levels, err := os.ReadFile(filepath.Join(outs[0].Dir, "priority-levels.csv"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(levels, []byte(",agents,")) {
		t.Errorf("priority-levels.csv has no row for agents:\n%s", levels)
	}
}
