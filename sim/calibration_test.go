package sim

import (
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"

	"github.com/churnlab/churnlab/experiments/metrics"
	"github.com/churnlab/churnlab/experiments/scenario"
	"github.com/churnlab/churnlab/experiments/scenariofile"
)

// tolerance is how far a simulated value may be from the seed's (±15%).
// Where the seed states a bound (under, at least) the bound is used
// as written instead.
const tolerance = 0.15

// calRun is one simulated run a calibration transcript refers to by name.
type calRun struct {
	w  *World
	sc *scenario.Scenario
	s  *metrics.Summary
}

// TestCalibration replays testdata/calibration.txt: every claim of
// SEED-FACTS.md the simulator reproduces, by ID, each measured on a run
// of a scenario under experiments/scenarios with the profile
// veltrix-2023. The transcript holds the simulated values; rewrite it
// with -rewrite after a model change, then read the diff. A claim outside
// its tolerance fails the test whatever the transcript says.
func TestCalibration(t *testing.T) {
	if testing.Short() {
		t.Skip("simulates the full-scale scenarios; run without -short")
	}
	runs := map[string]*calRun{}
	var outside []string // reported after the transcript, which stops at the first error
	datadriven.RunTest(t, "testdata/calibration.txt", func(t *testing.T, d *datadriven.TestData) string {
		switch d.Cmd {
		case "run":
			var name, file, system string
			d.ScanArgs(t, "name", &name)
			d.ScanArgs(t, "file", &file)
			d.ScanArgs(t, "system", &system)
			var sets []scenario.Set
			for _, arg := range d.CmdArgs {
				if arg.Key != "set" {
					continue
				}
				for _, v := range arg.Vals {
					s, err := scenario.ParseSet(v)
					if err != nil {
						t.Fatal(err)
					}
					sets = append(sets, s)
				}
			}
			sc, err := scenariofile.Load(filepath.Join("../experiments/scenarios", file), sets...)
			if err != nil {
				t.Fatal(err)
			}
			w := runWorld(t, sc, System(system), sc.Seed)
			runs[name] = &calRun{w: w, sc: sc, s: recorderOf(w).Summary(metrics.Run{Duration: sc.Duration.D()})}
			return fmt.Sprintf("%s: %s, %s, seed %d, %s simulated", name, file, system, sc.Seed, sc.Duration)
		case "claim":
			out, ok := claim(t, d, runs)
			if !ok {
				outside = append(outside, out)
			}
			return out
		case "measure": // a figure the report quotes that no claim can check
			what, got, _ := measure(t, d, runs)
			return fmt.Sprintf("%s: %s (measured, not checked)", what, fmtNum(got))
		}
		t.Fatalf("unknown directive %q", d.Cmd)
		return ""
	})
	for _, o := range outside {
		t.Error(o)
	}
}

// claim measures one claim and says whether it is within tolerance.
func claim(t *testing.T, d *datadriven.TestData, runs map[string]*calRun) (string, bool) {
	what, got, r := measure(t, d, runs)
	var verdict string
	var ok bool
	switch {
	case d.HasArg("want"):
		want := floatArg(t, d, "want")
		ok = math.Abs(got-want) <= tolerance*want
		verdict = fmt.Sprintf("want %s ±15%%", fmtNum(want))
	case d.HasArg("max"):
		want := floatArg(t, d, "max")
		ok = got <= want
		verdict = fmt.Sprintf("want <= %s", fmtNum(want))
	case d.HasArg("min"):
		want := floatArg(t, d, "min")
		ok = got >= want
		verdict = fmt.Sprintf("want >= %s", fmtNum(want))
	default:
		t.Fatal("a claim needs want=, max= or min=")
	}
	if !ok {
		return fmt.Sprintf("%s: %s, %s: OUT (seed %d)", what, fmtNum(got), verdict, r.sc.Seed), false
	}
	return fmt.Sprintf("%s: %s, %s: ok", what, fmtNum(got), verdict), true
}

// measure reads a claim's metric on its run (over from-to, as a ratio to
// another run's with per=) and says what it measured, and on which run.
func measure(t *testing.T, d *datadriven.TestData, runs map[string]*calRun) (string, float64, *calRun) {
	var id, runName, metric string
	d.ScanArgs(t, "id", &id)
	d.ScanArgs(t, "run", &runName)
	d.ScanArgs(t, "metric", &metric)
	r := runs[runName]
	if r == nil {
		t.Fatalf("no run named %q", runName)
	}
	measure := calMetrics[metric]
	if measure == nil {
		t.Fatalf("unknown metric %q", metric)
	}
	from, to := 0*time.Second, r.sc.Duration.D()
	if d.HasArg("from") {
		var s int
		d.ScanArgs(t, "from", &s)
		from = time.Duration(s) * time.Second
	}
	if d.HasArg("to") {
		var s int
		d.ScanArgs(t, "to", &s)
		to = time.Duration(s) * time.Second
	}
	got := measure(r, from, to)
	what := fmt.Sprintf("%s %s of %s", id, metric, runName)
	if from != 0 || to != r.sc.Duration.D() {
		what += fmt.Sprintf(" [%gs,%gs)", from.Seconds(), to.Seconds())
	}
	if d.HasArg("per") { // a ratio to the same metric of another run
		var base string
		d.ScanArgs(t, "per", &base)
		if runs[base] == nil {
			t.Fatalf("no run named %q", base)
		}
		got /= measure(runs[base], from, to)
		what += " / " + base
	}
	return what, got, r
}

func floatArg(t *testing.T, d *datadriven.TestData, key string) float64 {
	var s string
	d.ScanArgs(t, key, &s)
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatalf("%s=%q: %v", key, s, err)
	}
	return f
}

func fmtNum(f float64) string {
	return strings.TrimSuffix(strings.TrimRight(strconv.FormatFloat(f, 'f', 3, 64), "0"), ".")
}

// calMetrics measure one run between from and to (whole-run metrics
// ignore the range).
var calMetrics = map[string]func(r *calRun, from, to time.Duration) float64{
	"p99-ms": func(r *calRun, from, to time.Duration) float64 {
		return deref(recorderOf(r.w).Between(from, to).RequestP99Ms())
	},
	"worst-window-p99-ms": func(r *calRun, _, _ time.Duration) float64 { return deref(r.s.Requests.WorstWindowP99Ms) },
	"success-ratio": func(r *calRun, from, to time.Duration) float64 {
		return deref(recorderOf(r.w).Between(from, to).SuccessRatio())
	},
	"bytes-per-pod-start-KB": func(r *calRun, _, _ time.Duration) float64 { return deref(r.s.Egress.BytesPerPodStart) / 1e3 },
	"peak-pods-reading": func(r *calRun, _, _ time.Duration) float64 {
		return float64(r.w.delivery.(*bundleDelivery).peakPodsReading)
	},
	"max-ready-pods": func(r *calRun, _, _ time.Duration) float64 { return float64(r.w.cluster.peakReady) },
	// median time from a container's start to its config
	"config-fetch-p50-ms": func(r *calRun, _, _ time.Duration) float64 {
		f := slices.Clone(r.w.cluster.fetchTimes)
		if len(f) == 0 {
			return math.NaN()
		}
		slices.Sort(f)
		return float64(f[len(f)/2]) / float64(Millisecond)
	},
	"pods-without-config-at-end": func(r *calRun, _, _ time.Duration) float64 {
		return float64(len(r.w.cluster.pods) - r.w.cluster.ready)
	},
	"egress-peak-MBps": func(r *calRun, _, _ time.Duration) float64 { return deref(r.s.Egress.PeakBytesPerS) / 1e6 },
	"leaderboard-max-staleness-s": func(r *calRun, _, _ time.Duration) float64 {
		return deref(r.s.Leaderboard.MaxStalenessS)
	},
	// reconciles a second of one replica
	"reconciles-per-s": func(r *calRun, from, to time.Duration) float64 {
		return r.w.ReconcileRate(Time(from), Time(to))
	},
	// API requests a second of one replica
	"api-rps-per-replica": func(r *calRun, from, to time.Duration) float64 {
		n, _ := recorderOf(r.w).Between(from, to).APIRequests()
		return float64(n) / (to - from).Seconds() / float64(len(r.w.delivery.(*bundleDelivery).op.live()))
	},
	"api-429": func(r *calRun, from, to time.Duration) float64 {
		_, throttled := recorderOf(r.w).Between(from, to).APIRequests()
		return float64(throttled)
	},
	"etcd-requests": func(r *calRun, _, _ time.Duration) float64 { return float64(r.w.etcd.served) },
	"etcd-round-p99-ms": func(r *calRun, from, to time.Duration) float64 {
		return deref(recorderOf(r.w).Between(from, to).EtcdRoundP99Ms())
	},
	"propagation-p99-ms": func(r *calRun, _, _ time.Duration) float64 { return deref(r.s.Config.PropagationP99Ms) },
}

func deref(f *float64) float64 {
	if f == nil {
		return math.NaN()
	}
	return *f
}
