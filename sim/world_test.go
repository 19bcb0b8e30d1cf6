package sim

import (
	"bytes"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/churnlab/churnlab/experiments/metrics"
	"github.com/churnlab/churnlab/experiments/scenario"
	"github.com/churnlab/churnlab/experiments/scenariofile"
)

func load(t *testing.T, yaml string) *scenario.Scenario {
	t.Helper()
	sc, err := scenario.Parse("test.yaml", []byte("apiVersion: churnlab/v1\nkind: Scenario\nmetadata: {name: test}\n"+yaml))
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

func runWorld(t *testing.T, sc *scenario.Scenario, system System, seed uint64) *World {
	t.Helper()
	w, err := NewWorld(sc, system, seed, metrics.NewRecorder())
	if err != nil {
		t.Fatal(err)
	}
	w.RunUntil(w.End())
	return w
}

// recorderOf is the recorder a test's world reports to.
func recorderOf(w *World) *metrics.Recorder { return w.rec.(*metrics.Recorder) }

// summarize condenses what w measured so far.
func summarize(w *World) *metrics.Summary {
	return recorderOf(w).Summary(metrics.Run{Duration: dur(w.End())})
}

func outputs(t *testing.T, w *World, sc *scenario.Scenario, system System, seed uint64) (summary, series []byte) {
	t.Helper()
	var s, ts bytes.Buffer
	run := metrics.Run{Scenario: sc.Metadata.Name, Mode: "sim", System: string(system), Seed: seed, Duration: sc.Duration.D()}
	if err := recorderOf(w).Summary(run).Write(&s); err != nil {
		t.Fatal(err)
	}
	if err := recorderOf(w).WriteTimeseries(&ts); err != nil {
		t.Fatal(err)
	}
	return s.Bytes(), ts.Bytes()
}

// TestDeterminism: the same scenario and seed give byte-identical
// summary.json and timeseries.csv, for both systems.
func TestDeterminism(t *testing.T) {
	if testing.Short() {
		t.Skip("simulates the full-scale restart storm; run without -short")
	}
	sc, err := scenariofile.Load("../experiments/scenarios/restart-storm.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, system := range Systems {
		s1, ts1 := outputs(t, runWorld(t, sc, system, sc.Seed), sc, system, sc.Seed)
		s2, ts2 := outputs(t, runWorld(t, sc, system, sc.Seed), sc, system, sc.Seed)
		if !bytes.Equal(s1, s2) || !bytes.Equal(ts1, ts2) {
			t.Errorf("%s seed %d: two runs differ; reproduce with: churnlab sim -f experiments/scenarios/restart-storm.yaml --system %s --seed %d --check-determinism",
				system, sc.Seed, system, sc.Seed)
		}
	}
}

func TestSteadyClusterServesEverything(t *testing.T) {
	sc := load(t, "duration: 20s\ncluster: {pods: 10, nodes: 2}\nworkload: {requestRate: 2k/s, podCapacity: 1k/s}\n")
	s := summarize(runWorld(t, sc, Baseline, 1))
	if *s.Requests.SuccessRatio != 1 || *s.Pods.UnhealthyPeak != 0 || *s.Egress.TotalBytes != 0 {
		t.Errorf("steady run: success %v, unhealthy peak %d, egress %v; want 1, 0, 0", *s.Requests.SuccessRatio, *s.Pods.UnhealthyPeak, *s.Egress.TotalBytes)
	}
	// 2k/s for 20 s is 40k requests give or take Poisson noise (sd 200).
	if total := *s.Requests.Total; total < 39_000 || total > 41_000 {
		t.Errorf("%d requests, want about 40000", total)
	}
}

func TestAutoscaleReachesTarget(t *testing.T) {
	sc := load(t, "duration: 60s\ncluster: {pods: 10}\nevents:\n- {at: 5s, autoscale: {to: 30, over: 10s}}\n- {at: 40s, autoscale: {to: 20}}\n")
	w := runWorld(t, sc, Reference, 1)
	if n := len(w.cluster.pods); n != 20 || w.cluster.ready != 20 {
		t.Errorf("%d pods, %d ready; want 20 and 20", n, w.cluster.ready)
	}
	if len(w.cluster.byID) != 30 {
		t.Errorf("%d pods ever created, want 30 (scale-down creates none)", len(w.cluster.byID))
	}
}

// TestRestartStormBaselineEgress: a storm restarting every pod of a
// 100-pod cluster at once pulls 100 bundles, each after a reload of every
// config object through the operator's rate-limited client, and the
// uplink carries them at no more than its capacity (F4, F5, F6).
func TestRestartStormBaselineEgress(t *testing.T) {
	sc := load(t, "duration: 90s\ncluster: {pods: 100, uplink: 1Gbps}\nconfig: {totalSize: 2MB, objects: 40}\nmodel: {pods: {livenessDeadline: 5m}}\nevents:\n- {at: 10s, restartStorm: {fraction: 1}}\n")
	s := summarize(runWorld(t, sc, Baseline, 1))
	if *s.Pods.Restarts != 100 || *s.Egress.BytesPerPodStart != 2e6 {
		t.Errorf("restarts %d, per start %v; want 100 and 2e6", *s.Pods.Restarts, *s.Egress.BytesPerPodStart)
	}
	// Every reload is a new generation, which the pods already serving
	// get again at their next reconcile: more than one bundle per start.
	if total := *s.Egress.TotalBytes; total <= 200e6 {
		t.Errorf("egress %v bytes, want more than the 100 starts' 2e8 (re-sent generations)", total)
	}
	if peak := *s.Egress.PeakBytesPerS; peak > 125e6 {
		t.Errorf("peak egress %v B/s exceeds the 1 Gbps uplink", peak)
	}
	// 100 reloads of 40 objects are 4,000 GETs through 3 clients of 50
	// QPS and burst 100, which the reconcile loops share: the last pod
	// waits at least (4000-300)/150 s = 24.7 s.
	if p99 := *s.Config.TimeToConfigP99Ms; p99 < 24_700 || p99 > 60_000 {
		t.Errorf("time to config p99 %v ms, want 24.7-60 s", p99)
	}
	// Dead pods stay in rotation until the health check notices, so some
	// requests fail (F7).
	if *s.Requests.SuccessRatio >= 1 {
		t.Error("no request failed while deleted pods were still in rotation")
	}
}

// TestReloadParallelism: a reload's GETs go k at a time, each still
// through the client's rate limiter, so the same GETs reach the API
// server whatever k is, and a burst of reloads holds more APF seats at
// once: with one seat for the operator (a level of its own that neither
// lends nor borrows) and no queue, k = 8 gets more 429s. The config is
// small, so that its LIST is one seat wide too.
func TestReloadParallelism(t *testing.T) {
	const base = "duration: 60s\nconfig: {totalSize: 80KB, objects: 40}\nevents:\n- {at: 10s, restartStorm: {fraction: 0.5}}\n" +
		"cluster:\n  pods: 20\n  apiServer:\n    maxRequestsInflight: 1\n    maxMutatingRequestsInflight: 1\n" +
		"    priorityLevels: [{name: one-seat, shares: 1, lendablePercent: 0, borrowingLimitPercent: 0}]\n"
	one := summarize(runWorld(t, load(t, base+"baseline: {reloadParallelism: 1, replicas: 1, priorityLevel: one-seat}\n"), Baseline, 1))
	eight := summarize(runWorld(t, load(t, base+"baseline: {reloadParallelism: 8, replicas: 1, priorityLevel: one-seat}\n"), Baseline, 1))
	if seats := *one.PriorityLevels["one-seat"].SeatsPeak; seats != 1 {
		t.Fatalf("the operator's level had %d seats in use at most; want 1", seats)
	}
	t.Logf("429s: %d at k=1, %d at k=8", *one.APIServer.Throttled429, *eight.APIServer.Throttled429)
	if *eight.APIServer.Throttled429 <= *one.APIServer.Throttled429 {
		t.Error("eight GETs at a time against one seat and no queue got no more 429s than one at a time")
	}
	// Every 429 is retried, so the successful requests are the same.
	ok1 := *one.APIServer.Requests - *one.APIServer.Throttled429
	ok8 := *eight.APIServer.Requests - *eight.APIServer.Throttled429
	if d := ok8 - ok1; d < -int64(float64(ok1)*0.05) || d > int64(float64(ok1)*0.05) {
		t.Errorf("%d requests served at k=8, %d at k=1; want the same GETs and reconciles (within 5%%)", ok8, ok1)
	}
}

// TestReferenceServesRestartsFromL2: restarted pods land on nodes that
// already cache their hunt, so the storm costs the uplink nothing.
func TestReferenceServesRestartsFromL2(t *testing.T) {
	sc := load(t, "duration: 60s\ncluster: {pods: 100, nodes: 10}\nconfig: {hunts: 10}\nevents:\n- {at: 10s, restartStorm: {fraction: 1, over: 10s}}\n")
	s := summarize(runWorld(t, sc, Reference, 1))
	if *s.Pods.Restarts != 100 || *s.Egress.TotalBytes != 0 {
		t.Errorf("restarts %d, egress %v bytes; want 100 and 0", *s.Pods.Restarts, *s.Egress.TotalBytes)
	}
}

func TestRollingUpdateReplacesEveryPod(t *testing.T) {
	for _, surge := range []string{"25%", "1", "0"} {
		t.Run("maxSurge="+surge, func(t *testing.T) {
			sc := load(t, fmt.Sprintf("duration: 5m\ncluster: {pods: 20}\nevents:\n- {at: 10s, rollingUpdate: {maxSurge: %s, maxUnavailable: 1}}\n", surge))
			w, err := NewWorld(sc, Baseline, 1, metrics.NewRecorder())
			if err != nil {
				t.Fatal(err)
			}
			minReady := w.cluster.ready
			for at := Time(0); at <= w.End(); at += 10 * Millisecond {
				w.RunUntil(at)
				minReady = min(minReady, w.cluster.ready)
			}
			// maxUnavailable 1: never more than one pod short of ready.
			if minReady < 19 {
				t.Errorf("ready pods fell to %d during the update; maxUnavailable 1 allows 19", minReady)
			}
			if w.cluster.rollout != nil {
				t.Fatal("rollout still running at the end")
			}
			for _, p := range w.cluster.pods {
				if p.old {
					t.Fatalf("pod %d of the old revision survived", p.id)
				}
			}
			s := summarize(w)
			if *s.Pods.Restarts != 20 || len(w.cluster.pods) != 20 || w.cluster.ready != 20 {
				t.Errorf("restarts %d, pods %d, ready %d; want 20 each", *s.Pods.Restarts, len(w.cluster.pods), w.cluster.ready)
			}
		})
	}
}

// TestConfigChangePropagation: the reference pushes a changed fragment to
// each node at once. The baseline's replicas find the change in their
// next reconcile's LIST and reload every object, GET by GET (as the real
// operator does); each pod's next reconcile then PATCHes its bundle
// annotation and sends it the whole bundle: within the 5 s interval
// (F9), after the reload.
func TestConfigChangePropagation(t *testing.T) {
	sc := load(t, "duration: 30s\ncluster: {pods: 40, nodes: 4}\nconfig: {hunts: 4}\nevents:\n- {at: 10s, configChange: {hunts: 1}}\n")
	p99 := map[System]float64{}
	var baseline *World
	for _, system := range Systems {
		w := runWorld(t, sc, system, 1)
		s := summarize(w)
		if s.Config.PropagationP99Ms == nil {
			t.Fatalf("%s: no propagation measured", system)
		}
		p99[system] = *s.Config.PropagationP99Ms
		if system == Baseline {
			baseline = w
		}
	}
	// The store commits, each replica reads the fragment, then sends it
	// to the 4 nodes at once: the last 4 x 500 KB later on the shared
	// uplink.
	fanout := (sc.Model.Reference.StoreCommit + sc.Model.Reference.StoreRead).D()
	transfers := 4 * float64(sc.Config.FragmentSize()) / (sc.Cluster.Uplink.BytesPerSecond() * sc.Model.Uplink.WireEfficiency)
	lo, hi := ms(fanout), ms(fanout)+transfers*1000+1
	if p99[Reference] < lo || p99[Reference] > hi {
		t.Errorf("reference propagation p99 %v ms, want %.1f-%.1f ms", p99[Reference], lo, hi)
	}
	if p99[Baseline] < 1000 || p99[Baseline] > 5000+200 {
		t.Errorf("baseline propagation p99 %v ms, want within the 5 s reconcile interval plus the bundle transfer", p99[Baseline])
	}
	// The reconciles LIST as many times in the 10 s after the change as
	// in the 10 s before; on top come each replica's GET of every object,
	// and one PATCH per pod for each generation it is sent (one to three:
	// each replica's reload makes one).
	before, _ := recorderOf(baseline).Between(0, 10*time.Second).APIRequests()
	after, _ := recorderOf(baseline).Between(10*time.Second, 20*time.Second).APIRequests()
	reloads := int64(sc.Baseline.Replicas * sc.Config.Objects)
	pods := int64(sc.Cluster.Pods)
	if extra := after - before; extra < reloads+pods || extra > reloads+int64(sc.Baseline.Replicas)*pods {
		t.Errorf("API requests %d in the 10 s after the change, %d before: %d more, want %d-%d (%d GETs of reloads, a PATCH per pod and generation)",
			after, before, extra, reloads+pods, reloads+int64(sc.Baseline.Replicas)*pods, reloads)
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func TestUnknownSystem(t *testing.T) {
	sc := load(t, "")
	if _, err := NewWorld(sc, "veltrix", 1, metrics.NewRecorder()); err == nil {
		t.Error("NewWorld accepted an unknown system")
	}
}

func TestUnmodelledEventsAreNamed(t *testing.T) {
	sc := load(t, "baseline: {gzip: true}\nevents:\n- {at: 1s, storeOutage: {for: 30s}}\n- {at: 2s, autoscale: {to: 3}}\n")
	got := Unmodelled(sc)
	if len(got) != 1 || got[0] != "events[0] storeOutage at 1s" {
		t.Errorf("Unmodelled = %q", got)
	}
}

// TestDebounceKeepsTheStream: a pod restarting within reference.debounce
// of its node's last pod of its hunt leaving is served from L2 at once
// (R3); with no debounce the hunt has left the node's stream, and the
// pod also waits for the agent to put it back (a replica's store read).
func TestDebounceKeepsTheStream(t *testing.T) {
	timeToConfig := map[string]float64{}
	for _, debounce := range []string{"10s", "0s"} {
		sc := load(t, "duration: 20s\ncluster: {pods: 1, nodes: 1}\nconfig: {hunts: 1}\nreference: {debounce: "+debounce+"}\nevents:\n- {at: 5s, restartStorm: {fraction: 1, over: 1s}}\n")
		s := summarize(runWorld(t, sc, Reference, 1))
		timeToConfig[debounce] = *s.Config.TimeToConfigP99Ms
	}
	sc := load(t, "")
	storeRead := ms(sc.Model.Reference.StoreRead.D())
	t.Logf("time to config: %.3f ms with a 10 s debounce, %.3f ms with none", timeToConfig["10s"], timeToConfig["0s"])
	// The same seed starts the container at the same time in both runs;
	// the whole-run histograms hold 3 significant figures (2 ms here).
	if diff := timeToConfig["0s"] - timeToConfig["10s"]; math.Abs(diff-storeRead) > 2 {
		t.Errorf("time to config %.3f ms with no debounce, %.3f ms with 10 s: %.3f ms apart, want a store read, %.0f ms",
			timeToConfig["0s"], timeToConfig["10s"], diff, storeRead)
	}
}

var _ Observer = (*metrics.Recorder)(nil)
