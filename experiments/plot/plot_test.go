package plot

import (
	"bytes"
	"flag"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/churnlab/churnlab/experiments/metrics"
	"github.com/churnlab/churnlab/experiments/scenariofile"
)

var regen = flag.Bool("regen", false, "rewrite the golden PNGs in testdata/")

// seeded returns n points of a noisy curve from a fixed seed.
func seeded(seed uint64, n int, level float64) (x, y []float64) {
	rng := rand.New(rand.NewPCG(seed, 7))
	for i := range n {
		x = append(x, float64(i))
		y = append(y, level*(1+0.2*rng.Float64()))
	}
	return x, y
}

// TestGoldenCharts renders charts of seeded data and compares them with
// testdata/*.png byte for byte; -regen rewrites them after a deliberate
// change (look at them first).
func TestGoldenCharts(t *testing.T) {
	bx, by := seeded(1, 120, 40)
	for i := 50; i < 80; i++ {
		by[i] *= 25 // the storm
	}
	by[90] = math.NaN() // a second with no requests breaks the line
	rx, ry := seeded(2, 120, 35)
	ex, ey := seeded(3, 120, 100)
	kx := []float64{3, 4, 5, 6, 7, 8, 9}
	lx, ly := seeded(4, 1500, 60) // 25 min: marked in minutes
	charts := map[string]Chart{
		"p99-log": {Title: "golden (sim, full scale): p99 latency per second", XLabel: "time", TimeX: true, YLabel: "p99 latency (ms, log scale)", LogY: true,
			Lines: []Line{{Name: "baseline", X: bx, Y: by, Color: BaselineColor}, {Name: "reference", X: rx, Y: ry, Color: ReferenceColor, Dashed: true}}},
		"egress-cap": {Title: "golden (sim, full scale): config uplink egress", XLabel: "time", TimeX: true, YLabel: "egress (MB/s)",
			Lines: []Line{{Name: "baseline", X: ex, Y: ey, Color: BaselineColor}}, Marks: []Mark{{Label: "uplink cap 125 MB/s (1Gbps)", Value: 125}}},
		"long-run-minutes": {Title: "golden (sim, full scale): a 25 min run", XLabel: "time", TimeX: true, YLabel: "pods ready (with config)",
			Lines: []Line{{Name: "reference", X: lx, Y: ly, Color: ReferenceColor}}},
		"knee": {Title: "golden (sweep, sim): knee", XLabel: "interval (s)", YLabel: "429 answers per second",
			Lines: []Line{{Name: "429 answers per second", X: kx, Y: []float64{31, 30, 0, 0, 0, 0, 0}, Color: BaselineColor}},
			Marks: []Mark{{Label: "knee: 4 s", Value: 4, Vertical: true}}},
	}
	for name, c := range charts {
		var got bytes.Buffer
		if err := c.PNG(&got); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		golden := filepath.Join("testdata", name+".png")
		if *regen {
			if err := os.WriteFile(golden, got.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(golden)
		if err != nil {
			t.Fatalf("%s: %v (run go test ./experiments/plot -regen to write it)", name, err)
		}
		if !bytes.Equal(got.Bytes(), want) {
			out := filepath.Join(t.TempDir(), name+".png")
			_ = os.WriteFile(out, got.Bytes(), 0o644)
			t.Errorf("%s: rendering differs from %s (got %s); after a deliberate change, look at it and run with -regen", name, golden, out)
		}
	}
}

// TestTimeTicks: a time axis is marked at whole seconds, at most 8 major
// ticks, or in whole minutes past 10 min; never with decimals.
func TestTimeTicks(t *testing.T) {
	cases := []struct {
		name     string
		minutes  bool
		min, max float64
		want     string // the major ticks' labels
		minor    int    // how many unlabelled ticks
	}{
		// happy
		{"10 s", false, 0, 10, "0 2 4 6 8 10", 5},
		{"2 min", false, 0, 119, "0 15 30 45 60 75 90 105", 16},
		{"a 250 s live run", false, 0, 250, "0 60 120 180 240", 12},
		{"the 500 s a chart showed as 0.00 250.00 500.00", false, 0, 500, "0 120 240 360 480", 12},
		{"10 min, the last in seconds", false, 0, 600, "0 120 240 360 480 600", 15},
		{"starting late", false, 47, 133, "60 75 90 105 120", 12},
		{"a second", false, 0, 1, "0 1", 0},
		{"25 min in minutes", true, 0, 1500, "0 5 10 15 20 25", 20},
		{"3 h in minutes", true, 0, 3 * 3600, "0 30 60 90 120 150 180", 12},
		// sad: nothing to mark
		{"empty range", false, 5, 5, "5", 0},
		{"backwards", false, 10, 0, "", 0},
		{"NaN", false, math.NaN(), 10, "", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var labels []string
			minor := 0
			for _, tk := range (TimeTicks{Minutes: c.minutes}).Ticks(c.min, c.max) {
				if tk.IsMinor() {
					minor++
					continue
				}
				labels = append(labels, tk.Label)
				unit := 1.0
				if c.minutes {
					unit = 60
				}
				if v := tk.Value / unit; v != math.Trunc(v) || strings.Contains(tk.Label, ".") {
					t.Errorf("tick %q at %g is not a whole %s", tk.Label, tk.Value, map[bool]string{false: "second", true: "minute"}[c.minutes])
				}
			}
			if got := strings.Join(labels, " "); got != c.want || minor != c.minor {
				t.Errorf("ticks %q with %d minor, want %q with %d", got, minor, c.want, c.minor)
			}
		})
	}
}

// writeRun writes one system's timeseries.csv of a synthetic run.
func writeRun(t *testing.T, dir string, p99 time.Duration, egress float64) {
	t.Helper()
	r := metrics.NewRecorder()
	for s := range 30 {
		at := time.Duration(s) * time.Second
		r.Request(at, p99, true)
		r.Egress(at, at+time.Second, egress)
		r.Pods(at, 10, 10)
		r.APIRequests(at, 5, int64(s%3))
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(dir, "timeseries.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := r.WriteTimeseries(f); err != nil {
		t.Fatal(err)
	}
}

// writeLevels writes a priority-levels.csv into dir: two levels, one of
// them answering 429s.
func writeLevels(t *testing.T, dir string) {
	t.Helper()
	r := metrics.NewRecorder()
	for s := range 30 {
		at := time.Duration(s) * time.Second
		r.APIClientRequest(at, "agent", "agents", s%2 == 0)
		r.LevelSeats(at, "agents", 3)
		r.APIClientRequest(at, "kubelet", "node-high", false)
		r.LevelSeats(at, "node-high", 1)
	}
	var buf bytes.Buffer
	if err := r.WriteLevelSeries(&buf); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "priority-levels.csv"), buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestResultsDrawsEveryChart: a results directory with a sim run, a sim
// prediction at live scale and a live run of both systems, and a sweep,
// gets every chart, each a PNG of the chart size.
func TestResultsDrawsEveryChart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "restart-storm")
	for _, mode := range []string{"sim", "sim-live", "local"} {
		writeRun(t, filepath.Join(dir, mode, "baseline"), 900*time.Millisecond, 2e6)
		writeRun(t, filepath.Join(dir, mode, "reference"), 40*time.Millisecond, 1e4)
	}
	writeLevels(t, filepath.Join(dir, "sim", "baseline"))
	sweep := "baseline.reconcileInterval,reconciles_per_s,p99_ms,worst_window_p99_ms,throttled_429_per_s,api_p99_ms,success_ratio,egress_peak_MBps,knee\n" +
		"5s,36,36.8,36.9,0,100,1,0,false\n4s,39.5,36.8,36.9,29.2,2000,1,0,true\n"
	if err := os.WriteFile(filepath.Join(dir, "sim", "sweep.csv"), []byte(sweep), 0o644); err != nil {
		t.Fatal(err)
	}
	sc, err := scenariofile.Load("../scenarios/restart-storm.yaml")
	if err != nil {
		t.Fatal(err)
	}
	paths, err := Results(dir, sc)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range paths {
		rel, _ := filepath.Rel(dir, p)
		names = append(names, rel)
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(f)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", rel, err)
		}
		if b := img.Bounds(); b.Dx() != int(Width.Dots(96)) || b.Dy() != int(Height.Dots(96)) {
			t.Errorf("%s: %dx%d pixels", rel, b.Dx(), b.Dy())
		}
	}
	want := []string{
		"local/p99.png", "local/egress.png", "local/api429.png", "local/pods.png", "local/leaderboard.png",
		"local/sim-vs-live-p99.png", "local/sim-vs-live-egress.png",
		"sim/p99.png", "sim/egress.png", "sim/api429.png", "sim/pods.png", "sim/leaderboard.png",
		"sim/levels-429-baseline.png", "sim/levels-seats-baseline.png",
		"sim-live/p99.png", "sim-live/egress.png", "sim-live/api429.png", "sim-live/pods.png", "sim-live/leaderboard.png",
		"sim/sweep.png",
	}
	if strings.Join(names, " ") != strings.Join(want, " ") {
		t.Errorf("wrote\n  %s\nwant\n  %s", strings.Join(names, " "), strings.Join(want, " "))
	}
}

func TestResultsErrorsNameWhatIsWrong(t *testing.T) {
	sc, err := scenariofile.Load("../scenarios/restart-storm.yaml")
	if err != nil {
		t.Fatal(err)
	}
	empty := t.TempDir()
	if _, err := Results(empty, sc); err == nil || !strings.Contains(err.Error(), "nothing to plot") {
		t.Errorf("empty directory: %v", err)
	}
	bad := t.TempDir()
	if err := os.MkdirAll(filepath.Join(bad, "sim", "baseline"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bad, "sim", "baseline", "timeseries.csv"), []byte("t,x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Results(bad, sc); err == nil || !strings.Contains(err.Error(), filepath.Join("sim", "baseline", "timeseries.csv")) {
		t.Errorf("bad timeseries.csv: %v", err)
	}
	writeRun(t, filepath.Join(bad, "sim", "baseline"), time.Second, 1)
	if err := os.WriteFile(filepath.Join(bad, "sim", "baseline", "priority-levels.csv"), []byte("t_s,level\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Results(bad, sc); err == nil || !strings.Contains(err.Error(), filepath.Join("sim", "baseline", "priority-levels.csv")) {
		t.Errorf("bad priority-levels.csv: %v", err)
	}
	if err := os.WriteFile(filepath.Join(bad, "sim", "baseline", "timeseries.csv"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bad, "sim", "sweep.csv"), []byte("p,reconciles_per_s,p99_ms,throttled_429_per_s,knee\nx,1,2,3,false\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Results(bad, sc); err == nil {
		t.Error("an empty timeseries.csv and a bad sweep.csv gave no error")
	}
}
