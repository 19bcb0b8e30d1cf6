package metrics

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// designKeys is the summary.json interface from DESIGN.md, verbatim,
// with issue 17's controllers and priority_levels, maps keyed by name
// whose entries have apiStatsKeys.
var designKeys = map[string][]string{
	"":            {"scenario", "mode", "system", "seed", "duration_s", "requests", "egress", "apiserver", "etcd", "config", "pods", "leaderboard", "controllers", "priority_levels"},
	"requests":    {"total", "success_ratio", "p50_ms", "p95_ms", "p99_ms", "worst_window_p99_ms"},
	"egress":      {"total_bytes", "peak_bytes_per_s", "bytes_per_pod_start"},
	"apiserver":   {"requests", "throttled_429", "peak_rps"},
	"etcd":        {"leader_elections", "election_p99_ms", "request_p99_ms"},
	"config":      {"propagation_p99_ms", "time_to_config_p99_ms"},
	"pods":        {"restarts", "unhealthy_peak"},
	"leaderboard": {"max_staleness_s", "frozen_s"},
}

// CheckDesignKeys fails t unless summaryJSON has exactly DESIGN.md's keys.
func checkDesignKeys(t *testing.T, summaryJSON []byte) map[string]map[string]any {
	t.Helper()
	var top map[string]json.RawMessage
	if err := json.Unmarshal(summaryJSON, &top); err != nil {
		t.Fatal(err)
	}
	groups := map[string]map[string]any{}
	if got, want := sortedKeys(top), sorted(designKeys[""]); !slices.Equal(got, want) {
		t.Errorf("top-level keys %v, want %v", got, want)
	}
	for group, keys := range designKeys {
		if group == "" || group == "controllers" || group == "priority_levels" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(top[group], &m); err != nil {
			t.Fatalf("%s: %v", group, err)
		}
		if got, want := sortedKeys(m), sorted(keys); !slices.Equal(got, want) {
			t.Errorf("%s keys %v, want %v", group, got, want)
		}
		groups[group] = m
	}
	return groups
}

func sortedKeys[V any](m map[string]V) []string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	return sorted(keys)
}

func sorted(s []string) []string { s = slices.Clone(s); slices.Sort(s); return s }

func TestSummaryHasEveryDesignKey(t *testing.T) {
	rec := NewRecorder()
	rec.Request(0, 10*time.Millisecond, true)
	var buf bytes.Buffer
	if err := rec.Summary(Run{Scenario: "s", Mode: "sim", System: "baseline", Seed: 1, Duration: time.Minute}).Write(&buf); err != nil {
		t.Fatal(err)
	}
	groups := checkDesignKeys(t, buf.Bytes())
	// Not measured by any Recorder method yet: must be null, not 0.
	for _, g := range []string{"apiserver", "etcd", "leaderboard"} {
		for k, v := range groups[g] {
			if v != nil {
				t.Errorf("%s.%s = %v, want null (not measured)", g, k, v)
			}
		}
	}
	// No config change happened: nothing to measure.
	if groups["config"]["propagation_p99_ms"] != nil {
		t.Error("propagation_p99_ms is set without a config change")
	}
	if _, err := ReadSummary(&buf); err != nil {
		t.Errorf("ReadSummary cannot read what Write wrote: %v", err)
	}
}

func TestEmptyRunHasNullPercentiles(t *testing.T) {
	s := NewRecorder().Summary(Run{Duration: time.Second})
	if *s.Requests.Total != 0 || s.Requests.P99Ms != nil || s.Requests.SuccessRatio != nil {
		t.Errorf("empty run: total=%d p99=%v success=%v; want 0, null, null", *s.Requests.Total, s.Requests.P99Ms, s.Requests.SuccessRatio)
	}
}

// TestPercentilesAreOverAllRequests checks that p99 comes from one
// histogram of every request, not from averaging window p99s: one slow
// window among many fast ones must not drag the run's p99 to the average.
func TestPercentilesAreOverAllRequests(t *testing.T) {
	rec := NewRecorder()
	for i := range 10_000 { // 100 windows of 100 requests at 10 ms...
		rec.Request(time.Duration(i)*10*time.Millisecond, 10*time.Millisecond, true)
	}
	for i := range 50 { // ...and 50 slow failures in window 3
		rec.Request(3*time.Second+time.Duration(i)*time.Millisecond, 2*time.Second, false)
	}
	s := rec.Summary(Run{Duration: 100 * time.Second})
	within := func(name string, got *float64, want, tol float64) {
		t.Helper()
		if got == nil || math.Abs(*got-want) > tol*want {
			t.Errorf("%s = %v, want %v within %.1f%%", name, got, want, tol*100)
		}
	}
	within("p50_ms", s.Requests.P50Ms, 10, 0.001)
	within("p99_ms", s.Requests.P99Ms, 10, 0.001) // 50 of 10050 slow: under 1%
	within("worst_window_p99_ms", s.Requests.WorstWindowP99Ms, 2000, 0.01)
	within("success_ratio", s.Requests.SuccessRatio, 10000.0/10050, 1e-6)
}

func TestEgressSpreadsAcrossWindows(t *testing.T) {
	rec := NewRecorder()
	// 3 MB evenly over [0.5 s, 3.5 s): 0.5 MB, 1 MB, 1 MB, 0.5 MB.
	rec.Egress(500*time.Millisecond, 3500*time.Millisecond, 3e6)
	var got []float64
	for _, w := range rec.windows {
		got = append(got, math.Round(w.egressBytes))
	}
	if want := []float64{5e5, 1e6, 1e6, 5e5}; !slices.Equal(got, want) {
		t.Errorf("egress per window = %v, want %v", got, want)
	}
	s := rec.Summary(Run{Duration: 4 * time.Second})
	if *s.Egress.TotalBytes != 3e6 || *s.Egress.PeakBytesPerS != 1e6 {
		t.Errorf("total=%v peak=%v, want 3e6 and 1e6", *s.Egress.TotalBytes, *s.Egress.PeakBytesPerS)
	}
}

func TestTimeseriesRows(t *testing.T) {
	rec := NewRecorder()
	rec.Pods(0, 10, 10)
	rec.Request(100*time.Millisecond, 20*time.Millisecond, true)
	rec.Request(200*time.Millisecond, 40*time.Millisecond, false)
	rec.Pods(1500*time.Millisecond, 10, 6) // 4 unhealthy from 1.5 s...
	rec.Pods(1700*time.Millisecond, 10, 9) // ...1 from 1.7 s
	rec.Egress(2*time.Second, 3*time.Second, 2e6)
	rec.PodConfigLoaded(2500*time.Millisecond, time.Second, 2e6)
	var buf bytes.Buffer
	if err := rec.WriteTimeseries(&buf); err != nil {
		t.Fatal(err)
	}
	want := strings.Join(TimeseriesColumns, ",") + "\n" +
		"0,2,0.5000,40.191,0,10,10,0,0,,,,\n" + // 40 ms at the window histogram's 1% precision
		"1,0,,,0,10,9,4,0,,,,\n" + // the peak inside the window, not just its end
		"2,0,,,2000000,10,9,1,1,,,,\n" // gauges carry forward
	if buf.String() != want {
		t.Errorf("timeseries.csv:\n%s\nwant:\n%s", buf.String(), want)
	}
	s := rec.Summary(Run{Duration: 3 * time.Second})
	if *s.Pods.UnhealthyPeak != 4 || *s.Egress.BytesPerPodStart != 2e6 {
		t.Errorf("unhealthy_peak=%d bytes_per_pod_start=%v, want 4 and 2e6", *s.Pods.UnhealthyPeak, *s.Egress.BytesPerPodStart)
	}
}

func TestReadSummaryRejectsUnknownKeys(t *testing.T) {
	if _, err := ReadSummary(strings.NewReader(`{"scenario":"x","p99":3}`)); err == nil || !strings.Contains(err.Error(), "p99") {
		t.Errorf("err = %v, want one naming the unknown key", err)
	}
	path := filepath.Join(t.TempDir(), "summary.json")
	if err := os.WriteFile(path, []byte(`{"scenario":"x","p99":3}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadFile(path, ReadSummary); err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "p99") {
		t.Errorf("err = %v, want one naming the file and the unknown key", err)
	}
}

// A live run on a cluster whose etcd is out of reach (kube, kind)
// measures the API server but not etcd: its etcd keys are null, not 0.
func TestEtcdUnmeasuredIsNull(t *testing.T) {
	apiOnly := NewRecorder()
	apiOnly.APIRequests(0, 10, 1)
	s := apiOnly.Summary(Run{Duration: time.Second})
	if s.APIServer.Requests == nil || *s.APIServer.Requests != 10 {
		t.Errorf("api requests %v, want 10", s.APIServer.Requests)
	}
	if s.Etcd.LeaderElections != nil {
		t.Errorf("leader_elections = %d with etcd never scraped; want null", *s.Etcd.LeaderElections)
	}
	both := NewRecorder()
	both.APIRequests(0, 10, 1)
	both.Elections(0, 0)
	if s := both.Summary(Run{Duration: time.Second}); s.Etcd.LeaderElections == nil || *s.Etcd.LeaderElections != 0 {
		t.Errorf("leader_elections = %v with etcd scraped and no election; want 0", s.Etcd.LeaderElections)
	}
}
