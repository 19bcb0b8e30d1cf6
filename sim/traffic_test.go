package sim

import (
	"math"
	"testing"
	"time"

	"github.com/churnlab/churnlab/experiments/metrics"
	"github.com/churnlab/churnlab/experiments/scenario"
	"github.com/churnlab/churnlab/experiments/scenariofile"
)

// TestAggregateMatchesPerRequest: the aggregate traffic model, which the
// full-scale runs use for speed, gives the same p99 as simulating every
// request, within 5%, over the whole run and in its worst second (F2's
// measure, which the storm's full queues set), on the restart storm at
// 1/10 scale (18 pods at peak, 8.5k requests/s) and at full scale (180
// pods, 85k requests/s), where the calibration measures it, for both
// systems, over the whole 10 minutes.
func TestAggregateMatchesPerRequest(t *testing.T) {
	if testing.Short() {
		t.Skip("simulates 110M requests one by one; run without -short")
	}
	for _, scale := range []string{"0.1", "1"} {
		type p99s struct{ run, worst float64 }
		got := map[string]map[System]p99s{}
		for _, mode := range scenario.TrafficModes {
			sc, err := scenariofile.Load("../experiments/scenarios/restart-storm.yaml",
				scenario.Set{Path: "model.traffic.mode", Value: mode},
				scenario.Set{Path: "live.scale.pods", Value: scale},
				scenario.Set{Path: "live.scale.traffic", Value: scale},
				scenario.Set{Path: "live.duration", Value: "10m"})
			if err != nil {
				t.Fatal(err)
			}
			// AtLiveScale shrinks pods and traffic; the live harness's lack
			// of Redis is put back, Redis scaled with the traffic.
			full := sc
			sc = sc.AtLiveScale()
			sc.Workload.Redis = full.Workload.Redis
			sc.Workload.Redis.CapacityPerShard = scenario.Rate(float64(full.Workload.Redis.CapacityPerShard) * full.Live.Scale.Traffic)
			sc.Model.Pods.ColdOps = full.Model.Pods.ColdOps
			got[mode] = map[System]p99s{}
			for _, system := range Systems {
				s := summarize(runWorld(t, sc, system, sc.Seed)).Requests
				got[mode][system] = p99s{*s.P99Ms, *s.WorstWindowP99Ms}
			}
		}
		for _, system := range Systems {
			exact, aggregate := got["perRequest"][system], got["aggregate"][system]
			t.Logf("scale %s, %s: p99 %.1f ms aggregate, %.1f ms per request; worst second %.1f ms aggregate, %.1f ms per request",
				scale, system, aggregate.run, exact.run, aggregate.worst, exact.worst)
			if math.Abs(aggregate.run-exact.run) > 0.05*exact.run {
				t.Errorf("scale %s, %s: p99 %.1f ms aggregate, %.1f ms per request: more than 5%% apart", scale, system, aggregate.run, exact.run)
			}
			if math.Abs(aggregate.worst-exact.worst) > 0.05*exact.worst {
				t.Errorf("scale %s, %s: worst second's p99 %.1f ms aggregate, %.1f ms per request: more than 5%% apart", scale, system, aggregate.worst, exact.worst)
			}
		}
	}
}

// TestRoundRobinQueue: with one pod the queue is M/M/1 (sigma = rho);
// behind a balancer over many pods, arrivals are nearly regular and
// sigma solves the D/M/1 equation sigma = exp(-(1-sigma)/rho).
func TestRoundRobinQueue(t *testing.T) {
	var q roundRobinQueue
	if s := q.sigma(1, 0.7); math.Abs(s-0.7) > 1e-6 {
		t.Errorf("sigma(k=1, rho=0.7) = %v, want 0.7", s)
	}
	s := q.sigma(10_000, 0.7)
	if d := s - math.Exp(-(1-s)/0.7); math.Abs(d) > 1e-3 {
		t.Errorf("sigma(k=10000, rho=0.7) = %v does not solve the D/M/1 equation (off by %v)", s, d)
	}
	if s >= 0.7 {
		t.Errorf("sigma %v, want below rho: regular arrivals queue less than Poisson ones", s)
	}
}

// TestStallDelaysQueuedRequests: a pod whose request loop stalls (T4's
// decompression) delays the requests already in its queue, not only the
// ones that arrive during the stall (its full queue sheds those), in both
// traffic models. One pod is offered twice what it serves, so its queue
// sits at model.pods.maxQueue (850 ms), and the slowest requests around
// the stall wait the stall longer than the slowest before it.
func TestStallDelaysQueuedRequests(t *testing.T) {
	const stall = 300 * Millisecond
	for _, mode := range scenario.TrafficModes {
		t.Run(mode, func(t *testing.T) {
			sc := load(t, "duration: 20s\ncluster: {pods: 1, nodes: 1}\nbaseline: {gzip: true}\nworkload: {requestRate: 2k/s, podCapacity: 1k/s}\nmodel: {traffic: {mode: "+mode+"}, players: {retries: 0}}\n")
			w, err := NewWorld(sc, Baseline, 1, metrics.NewRecorder())
			if err != nil {
				t.Fatal(err)
			}
			w.RunUntil(10 * Second)
			before := *recorderOf(w).Between(5*time.Second, 10*time.Second).RequestP99Ms()
			w.traffic.stall(w.Now(), w.cluster.pods[0], stall)
			w.RunUntil(w.End())
			around := *recorderOf(w).Between(9*time.Second, 11*time.Second).RequestP99Ms()
			t.Logf("p99 %.0f ms before the stall, %.0f ms around it (stall %v)", before, around, dur(stall))
			// Less the per-window histograms' resolution (within 1%).
			if want := (before + float64(dur(stall).Milliseconds())) * 0.99; around < want {
				t.Errorf("p99 around the stall %.0f ms, want at least the stall more than before it, %.0f ms", around, want)
			}
		})
	}
}

// TestBusyPodsListEveryPodThatNeedsALook follows the restart storm with
// gzip (stalls) second by second: every pod in rotation that a step
// must look at on its own (deleted, stalled or with a backlog) is listed,
// in rotation order, so that a step that counts the rest together comes
// to what one that looks at every pod would.
func TestBusyPodsListEveryPodThatNeedsALook(t *testing.T) {
	sc, err := scenariofile.Load("../experiments/scenarios/ablations/t4-gzip.yaml")
	if err != nil {
		t.Fatal(err)
	}
	w, err := NewWorld(sc, Baseline, 1, metrics.NewRecorder())
	if err != nil {
		t.Fatal(err)
	}
	looked, idle := 0, 0
	for now := Second; now < Time(sc.Duration); now += Second {
		w.RunUntil(now)
		listed := map[*pod]bool{}
		for i, p := range w.traffic.busy.list {
			listed[p] = true
			if !p.inRotation || (i > 0 && w.traffic.busy.list[i-1].rotationSeq >= p.rotationSeq) {
				t.Fatalf("at %v: listed pod %d out of rotation or out of rotation order", now, p.id)
			}
		}
		for _, p := range w.lb.rotation {
			switch {
			case needsLook(p, w.Now()) && !listed[p]:
				t.Fatalf("at %v: pod %d needs a look (phase %v, backlog %v, stalled %v) and is not listed", now, p.id, p.phase, p.backlog, p.stalled(w.Now()))
			case listed[p]:
				looked++
			default:
				idle++
			}
		}
	}
	if looked == 0 || idle == 0 {
		t.Errorf("%d listed and %d idle pod-seconds: the storm should make both", looked, idle)
	}
	t.Logf("%d listed, %d idle pod-seconds", looked, idle)
}
