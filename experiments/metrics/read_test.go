package metrics

import (
	"bytes"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestTimeseriesRoundTrip: what WriteTimeseries writes, ReadTimeseries
// reads back, with empty cells as NaN.
func TestTimeseriesRoundTrip(t *testing.T) {
	r := NewRecorder()
	r.Request(500*time.Millisecond, 40*time.Millisecond, true)
	r.Request(2500*time.Millisecond, 80*time.Millisecond, false)
	r.Egress(0, 3*time.Second, 3e6)
	var buf bytes.Buffer
	if err := r.WriteTimeseries(&buf); err != nil {
		t.Fatal(err)
	}
	ts, err := ReadTimeseries(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if ts.Len() != 3 {
		t.Fatalf("%d rows, want 3", ts.Len())
	}
	if got := ts.Column("t_s"); got[2] != 2 {
		t.Errorf("t_s %v, want 0 1 2", got)
	}
	if got := ts.Column("egress_bytes"); got[0] != 1e6 {
		t.Errorf("egress_bytes %v, want 1e6 a second", got)
	}
	if p99 := ts.Column("p99_ms"); !math.IsNaN(p99[1]) || math.Abs(p99[2]-80) > 1 {
		t.Errorf("p99_ms %v, want NaN in the empty second and 80 in the third", p99)
	}
	if ts.Column("no_such_column") != nil {
		t.Error("an unknown column is not nil")
	}
}

func TestReadTimeseriesErrorsNameTheCell(t *testing.T) {
	header := strings.Join(TimeseriesColumns, ",")
	for _, tc := range []struct{ name, csv, want string }{
		{"header", "t,requests\n", "header"},
		{"cell", header + "\n0,1,x,,,,,,,,,,\n", `timeseries.csv:2: column success_ratio: "x" is not a number`},
		{"width", header + "\n0,1\n", "wrong number of fields"},
	} {
		_, err := ReadTimeseries(strings.NewReader(tc.csv))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.want)
		}
	}
}

func TestSummaryValue(t *testing.T) {
	s := NewRecorder().Summary(Run{Duration: time.Second})
	s.Requests.P99Ms = ptr(42.5)
	if v, err := s.Value("requests.p99_ms"); err != nil || v == nil || *v != 42.5 {
		t.Errorf("requests.p99_ms = %v, %v; want 42.5", v, err)
	}
	if v, err := s.Value("etcd.election_p99_ms"); err != nil || v != nil {
		t.Errorf("etcd.election_p99_ms = %v, %v; want null", v, err)
	}
	for _, bad := range []string{"requests.p98_ms", "requests", "scenario", "requests.p99_ms.x"} {
		if _, err := s.Value(bad); err == nil {
			t.Errorf("Value(%q) gave no error", bad)
		}
	}
	keys := SummaryKeys()
	if len(keys) != 31 || keys[0] != "apiserver.peak_rps" {
		t.Errorf("SummaryKeys() = %v, want the 23 numeric keys of DESIGN.md and 4 per controller and per level, sorted", keys)
	}
}

// TestSweepRoundTrip: what SweepTable.CSV writes, ReadSweep reads back,
// knee included; a bad file is an error naming the line and column.
func TestSweepRoundTrip(t *testing.T) {
	want := &SweepTable{Param: "baseline.reconcileInterval", Knee: 1, Points: []SweepPoint{
		{Value: "5s", ReconcilesPerS: 36, P99Ms: 36.767, WorstP99Ms: 36.863, SuccessRatio: 1},
		{Value: "4s", ReconcilesPerS: 39.515, P99Ms: 36.767, WorstP99Ms: 36.863, Throttled429PS: 29.206, SuccessRatio: 0.999876, EgressPeakMBps: 1.5},
	}}
	got, err := ReadSweep(bytes.NewReader(want.CSV()))
	if err != nil {
		t.Fatal(err)
	}
	if got.Param != want.Param || got.Knee != want.Knee || len(got.Points) != 2 || got.Points[1] != want.Points[1] {
		t.Errorf("read back %+v, want %+v", got, want)
	}
	header := "p," + strings.Join(SweepColumns, ",")
	for _, tc := range []struct{ name, csv, want string }{
		{"header", "p,reconciles_per_s\n", "wrong number of fields"},
		{"cell", header + "\n4s,x,1,1,1,1,1,1,false\n", `sweep.csv:2: column reconciles_per_s: "x" is not a number`},
		{"knee", header + "\n4s,1,1,1,1,1,1,1,yes\n", `sweep.csv:2: column knee: "yes"`},
		{"empty", header + "\n", "no points"},
	} {
		if _, err := ReadSweep(strings.NewReader(tc.csv)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.want)
		}
	}
}

func TestLevelSeriesRoundTrip(t *testing.T) {
	r := NewRecorder()
	r.APIClientRequest(500*time.Millisecond, "agent", "agents", false)
	r.APIClientRequest(2500*time.Millisecond, "agent", "agents", true)
	r.LevelSeats(2600*time.Millisecond, "agents", 3)
	r.APIClientRequest(2700*time.Millisecond, "kubelet", "node-high", false)
	var buf bytes.Buffer
	if err := r.WriteLevelSeries(&buf); err != nil {
		t.Fatal(err)
	}
	ls, err := ReadLevelSeries(&buf)
	if err != nil {
		t.Fatal(err)
	}
	a := (*ls)["agents"]
	if a == nil || !slices.Equal(a.T, []float64{0, 2}) || !slices.Equal(a.Throttled429, []float64{0, 1}) || !slices.Equal(a.SeatsPeak, []float64{0, 3}) {
		t.Errorf("agents %+v, want windows 0 and 2, one 429 and 3 seats in the second", a)
	}
	if n := (*ls)["node-high"]; n == nil || !slices.Equal(n.Requests, []float64{1}) {
		t.Errorf("node-high %+v, want one request", n)
	}
	for _, bad := range []struct{ csv, want string }{
		{"t_s,level\n", "header"},
		{strings.Join(LevelSeriesColumns, ",") + "\n0,a,1,x,0\n", "priority-levels.csv:2: column throttled_429: \"x\""},
	} {
		if _, err := ReadLevelSeries(strings.NewReader(bad.csv)); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("ReadLevelSeries(%q) = %v, want an error with %q", bad.csv, err, bad.want)
		}
	}
}
