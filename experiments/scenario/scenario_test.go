package scenario_test

import (
	"errors"
	"flag"
	"github.com/churnlab/churnlab/experiments/scenario"
	"github.com/churnlab/churnlab/experiments/scenariofile"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/invalid-*.err from the current messages")

func TestValidFiles(t *testing.T) {
	files, _ := filepath.Glob("testdata/valid-*.yaml")
	shipped, _ := filepath.Glob("../scenarios/*.yaml")
	nested, _ := filepath.Glob("../scenarios/*/*.yaml")
	files = append(append(files, shipped...), nested...)
	if len(files) < 3 {
		t.Fatalf("found only %d valid scenario files; the globs are wrong", len(files))
	}
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			s, err := scenariofile.Load(f)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if err := s.Validate(); err != nil {
				t.Fatalf("Validate after Load: %v", err)
			}
		})
	}
}

// TestInvalidFiles checks every problem of each invalid file is reported,
// with file, line and field path, against testdata/invalid-*.err.
func TestInvalidFiles(t *testing.T) {
	files, _ := filepath.Glob("testdata/invalid-*.yaml")
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			s, err := scenariofile.Load(f)
			if err == nil {
				t.Fatalf("Load succeeded; want errors (scenario %q)", s.Metadata.Name)
			}
			var list *scenario.Errors
			if !errors.As(err, &list) {
				t.Fatalf("error is %T, want *Errors: %v", err, err)
			}
			for _, fe := range list.List {
				if fe.File != f || fe.Msg == "" {
					t.Errorf("problem without file or message: %#v", fe)
				}
			}
			got := err.Error() + "\n"
			golden := strings.TrimSuffix(f, ".yaml") + ".err"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, rerr := os.ReadFile(golden)
			if rerr != nil {
				t.Fatalf("%v (run go test -update to create it)", rerr)
			}
			if got != string(want) {
				t.Errorf("messages differ from %s\n--- got\n%s--- want\n%s", golden, got, want)
			}
		})
	}
}

// TestAcceptanceTyposAndUnit is the acceptance case spelled out:
// two unknown fields and a bad unit, all three reported with their lines.
func TestAcceptanceTyposAndUnit(t *testing.T) {
	_, err := scenariofile.Load("testdata/invalid-unknown-fields-and-unit.yaml")
	var list *scenario.Errors
	if !errors.As(err, &list) {
		t.Fatalf("want *Errors, got %v", err)
	}
	want := []struct {
		line int
		path string
		msg  string
	}{
		{6, "cluster.nodse", `unknown field "nodse" (did you mean "nodes"?)`},
		{7, "cluster.uplink", `bad bandwidth "1Gbs"`},
		{10, "workload.colour", `unknown field "colour"`},
	}
	if len(list.List) != len(want) {
		t.Fatalf("got %d problems, want %d:\n%v", len(list.List), len(want), err)
	}
	for i, w := range want {
		got := list.List[i]
		if got.Pos.Line != w.line || got.Path != w.path || !strings.Contains(got.Msg, w.msg) {
			t.Errorf("problem %d = line %d %s %q; want line %d %s containing %q", i, got.Pos.Line, got.Path, got.Msg, w.line, w.path, w.msg)
		}
	}
}

func TestDefaultsAreTheIncident(t *testing.T) {
	s, err := scenariofile.Load("testdata/valid-minimal.yaml")
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		id        string
		got, want float64
	}{
		{"F1 players", float64(s.Workload.Players), 250_000},
		{"F2 request rate", s.Workload.RequestRate.PerSecond(), 85_000},
		{"F5 config size", float64(s.Config.TotalSize), 2_000_000},
		{"F6 uplink bytes/s", s.Cluster.Uplink.BytesPerSecond(), 125_000_000},
		{"F9 reconcile interval s", s.Baseline.ReconcileInterval.D().Seconds(), 5},
		{"F11 client QPS", s.Baseline.ClientQPS.PerSecond(), 50},
		{"R3 debounce s", s.Reference.Debounce.D().Seconds(), 10},
		{"R5 L1 entries", float64(s.Reference.L1.Entries), 1000},
		{"R7 keepalive s", s.Reference.Keepalive.D().Seconds(), 30},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.id, c.got, c.want)
		}
	}
	if !s.Baseline.Controller {
		t.Error("the baseline controller is off by default; the incident had it on")
	}
}

func TestWrittenZeroIsKept(t *testing.T) {
	s, err := scenario.Parse("zero.yaml", []byte("apiVersion: churnlab/v1\nkind: Scenario\nmetadata: {name: z}\nreference: {debounce: 0s}\nbaseline: {controller: false}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if s.Reference.Debounce != 0 || s.Baseline.Controller {
		t.Errorf("debounce=%s controller=%v; want the written 0s and false, not the defaults", s.Reference.Debounce, s.Baseline.Controller)
	}
}

// TestAtLiveScaleKeepsRatios checks the ratios that decide the outcome:
// config demand per uplink byte, per-pod load, and API calls per seat.
func TestAtLiveScaleKeepsRatios(t *testing.T) {
	full, err := scenariofile.Load("../scenarios/restart-storm.yaml")
	if err != nil {
		t.Fatal(err)
	}
	live := full.AtLiveScale()
	ratios := []struct {
		name string
		of   func(*scenario.Scenario) float64
	}{
		{"config bytes of all pods per uplink byte/s", func(s *scenario.Scenario) float64 {
			return float64(s.Cluster.Pods) * float64(s.Config.TotalSize) / s.Cluster.Uplink.BytesPerSecond()
		}},
		{"pod utilization", func(s *scenario.Scenario) float64 {
			return s.Workload.RequestRate.PerSecond() / (float64(s.Cluster.Pods) * s.Workload.PodCapacity.PerSecond())
		}},
		{"reconciles per operator QPS", func(s *scenario.Scenario) float64 {
			return float64(s.Cluster.Pods) / s.Baseline.ReconcileInterval.D().Seconds() / s.Baseline.ClientQPS.PerSecond()
		}},
		// The operator's token bucket refills its burst in as long (2 s):
		// an unscaled burst of 100 at 5 QPS would be 20 s of requests up
		// front, and the first reloads of a storm would finish at once.
		{"operator burst per QPS (s)", func(s *scenario.Scenario) float64 {
			return float64(s.Baseline.ClientBurst) / s.Baseline.ClientQPS.PerSecond()
		}},
	}
	for _, r := range ratios {
		if f, l := r.of(full), r.of(live); math.Abs(f-l) > 0.001*f {
			t.Errorf("%s: full scale %.4g, live scale %.4g", r.name, f, l)
		}
	}
	if live.Workload.Redis.OpsPerRequest != 0 || live.Model.Pods.ColdOps != 0 || live.Model.Uplink.Buffer != 0 {
		t.Errorf("live scale keeps %g Redis ops a request (%g more cold) and a %d-byte uplink queue in front of etcd; the live harness has neither",
			live.Workload.Redis.OpsPerRequest, live.Model.Pods.ColdOps, live.Model.Uplink.Buffer)
	}
	if live.Cluster.Pods != 12 || live.Events[0].Autoscale.To != 18 {
		t.Errorf("live pods %d -> %d, want 12 -> 18", live.Cluster.Pods, live.Events[0].Autoscale.To)
	}
	if full.Events[0].Autoscale.To != 180 {
		t.Errorf("AtLiveScale changed the original scenario's autoscale target to %d", full.Events[0].Autoscale.To)
	}
	if live.Config.TotalSize != full.Config.TotalSize || live.Baseline.ReconcileInterval != full.Baseline.ReconcileInterval {
		t.Error("sizes and intervals must not scale")
	}
	if err := live.Validate(); err != nil {
		t.Errorf("the live-scale scenario does not validate: %v", err)
	}
	if live.Duration != full.Live.Duration || full.Live.Duration >= full.Duration {
		t.Errorf("live run of %s, want the file's live.duration %s (shorter than its %s)", live.Duration, full.Live.Duration, full.Duration)
	}
}

// TestAtLiveScaleBytesAndCut: live.scale.bytes shrinks the config and the
// uplink together, and events past live.duration are dropped.
func TestAtLiveScaleBytesAndCut(t *testing.T) {
	full, err := scenariofile.Load("../scenarios/restart-storm.yaml", scenario.Set{"live.scale.bytes", "0.1"}, scenario.Set{"live.duration", "200s"})
	if err != nil {
		t.Fatal(err)
	}
	live := full.AtLiveScale()
	if live.Config.TotalSize != 200_000 {
		t.Errorf("config %d bytes at live scale, want 200 KB", live.Config.TotalSize)
	}
	// Every pod's bundle at once keeps the uplink as long either way.
	drain := func(s *scenario.Scenario) float64 {
		return float64(s.Cluster.Pods) * float64(s.Config.TotalSize) / s.Cluster.Uplink.BytesPerSecond()
	}
	if f, l := drain(full), drain(live); math.Abs(f-l) > 1e-6*f {
		t.Errorf("all pods' bundles take %gs on the uplink at full scale, %gs at live scale", f, l)
	}
	for _, e := range live.Events {
		if e.At >= 200*scenario.Duration(time.Second) {
			t.Errorf("event %s at %s kept past live.duration 200s", e.Name(), e.At)
		}
	}
	if len(live.Events) != len(full.Events)-1 {
		t.Errorf("%d events at live scale, want all but the config change at 200s (%d)", len(live.Events), len(full.Events)-1)
	}
}

func TestLiveDurationBounds(t *testing.T) {
	_, err := scenariofile.Load("../scenarios/restart-storm.yaml", scenario.Set{"live.duration", "20m"})
	if err == nil || !strings.Contains(err.Error(), "live.duration: must be at most the scenario's duration 10m0s, got 20m0s") {
		t.Errorf("err = %v, want live.duration named with both durations", err)
	}
}

// FuzzParse feeds the loader arbitrary bytes. It must never panic; a
// scenario it accepts must validate; every problem it reports must name
// a file (the fuzzed one, or one it extends) and say something.
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/*.yaml")
	shipped, _ := filepath.Glob("../scenarios/*.yaml")
	for _, p := range append(seeds, shipped...) {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := scenario.Parse("fuzz.yaml", data)
		if err == nil {
			if verr := s.Validate(); verr != nil {
				t.Fatalf("Parse accepted a scenario that Validate rejects: %v", verr)
			}
			return
		}
		var list *scenario.Errors
		if !errors.As(err, &list) || len(list.List) == 0 {
			t.Fatalf("error is not a non-empty *Errors: %T %v", err, err)
		}
		for _, fe := range list.List {
			if fe.File == "" || fe.Msg == "" {
				t.Fatalf("problem without file or message: %#v", fe)
			}
		}
	})
}

// FuzzSet overrides a field of a valid scenario with an arbitrary path
// and value, as `churnlab sweep --param` and calibration runs do. It must
// never panic; an accepted override must validate; a rejected one must
// say what is wrong and where.
func FuzzSet(f *testing.F) {
	base, err := os.ReadFile("testdata/valid-every-event.yaml")
	if err != nil {
		f.Fatal(err)
	}
	for _, seed := range [][2]string{
		{"baseline.replicas", "12"}, {"events[0].at", "30s"}, {"model.etcd.fsync", "2ms"},
		{"cluster", "3"}, {"events[99].at", "1s"}, {"a..b", "x"}, {"x[", "1"}, {"metadata.name", "Bad Name"},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, path, value string) {
		set := scenario.Set{Path: path, Value: value}
		s, err := scenario.Parse("fuzz.yaml", base, set)
		if err == nil {
			if verr := s.Validate(); verr != nil {
				t.Fatalf("set %q=%q accepted but Validate rejects it: %v", path, value, verr)
			}
			return
		}
		var list *scenario.Errors
		if !errors.As(err, &list) || len(list.List) == 0 {
			t.Fatalf("set %q=%q: error is not a non-empty *Errors: %T %v", path, value, err, err)
		}
		for _, fe := range list.List {
			// A problem is the set's (its value, or a path the file lacks)
			// or the file's (a field the new value conflicts with).
			if (fe.File != "fuzz.yaml" && fe.File != set.String()) || fe.Msg == "" {
				t.Fatalf("set %q=%q: problem without file (or --set) or message: %#v", path, value, fe)
			}
			if fe.File == set.String() && fe.Pos != (scenario.Pos{}) {
				t.Fatalf("set %q=%q: problem of the --set placed at a line: %#v", path, value, fe)
			}
		}
	})
}
