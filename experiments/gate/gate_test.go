package gate

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/churnlab/churnlab/experiments/metrics"
)

// writeSummary writes root/<scenario>/<mode>/<system>[/sub]/summary.json
// with the given p99 and success ratio.
func writeSummary(t *testing.T, root, scenario, mode, system, sub string, p99, success float64) {
	t.Helper()
	s := metrics.NewRecorder().Summary(metrics.Run{Scenario: scenario, Mode: mode, System: system, Duration: time.Minute})
	s.Requests.P99Ms, s.Requests.SuccessRatio = &p99, &success
	dir := filepath.Join(root, scenario, mode, system, sub)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := s.Write(&buf); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "summary.json"), buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func parse(t *testing.T, reference, rules string) *Thresholds {
	t.Helper()
	th, err := Parse("gate.yaml", []byte("apiVersion: churnlab/v1\nkind: Gate\nreference: "+reference+"\nrules:\n"+rules))
	if err != nil {
		t.Fatal(err)
	}
	return th
}

func TestParseReportsEveryProblem(t *testing.T) {
	_, err := Parse("gate.yaml", []byte(`apiVersion: churnlab/v1
kind: Gate
reference: results
rules:
  - {scenario: restart-storm, mode: sim, system: reference, metric: requests.p98_ms, max: 40}
  - {scenario: restart-storm, mode: live, system: fix, metric: requests.p99_ms, maxIncrease: lots}
  - {scenario: restart-storm, mode: sim, system: reference, metric: requests.p99_ms}
  - {scenario: restart-storm, mode: sim, system: reference, metric: requests.p99_ms, max: 1, alpha: 0.05}
  - {scenario: restart-storm, mode: sim, system: reference, metric: requests.p99_ms, mx: 1}
`))
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		`gate.yaml:5: rules[0].metric: "requests.p98_ms" is not a summary.json number`,
		`gate.yaml:6: rules[1].mode: "live", want one of sim, sim-live, local, kube, kind`,
		`gate.yaml:6: rules[1].system: "fix", want baseline or reference`,
		`gate.yaml:6: rules[1].maxIncrease: "lots" is not a percentage such as 10%`,
		`gate.yaml:7: rules[2]: want exactly one of max, min, maxIncrease, maxDecrease; got 0`,
		`gate.yaml:8: rules[3].alpha: only live rules test significance`,
		`gate.yaml:9: rules[4]: unknown field "mx"`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if _, err := Parse("gate.yaml", []byte("kind: Gate\nbogus: 1\n")); err == nil || !strings.Contains(err.Error(), "bogus") {
		t.Errorf("unknown top-level field: %v", err)
	}
}

// TestParseEmptyFile: a thresholds file with nothing in it (or only
// blanks and comments) is named and said to be empty, not just EOF.
func TestParseEmptyFile(t *testing.T) {
	for _, c := range []struct{ name, data string }{
		{"no bytes", ""},
		{"blank lines", "\n  \n"},
		{"only comments", "# rules go here\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("empty.yaml", []byte(c.data))
			if err == nil || !strings.Contains(err.Error(), "thresholds file empty.yaml is empty") || strings.Contains(err.Error(), "EOF") {
				t.Errorf("Parse(%q) = %v; want an error saying empty.yaml is empty", c.data, err)
			}
		})
	}
}

// TestSimRulesCompareExactly: a sim run is one value, compared with the
// bound or the reference as it is; a regression names the scenario, the
// metric, and the old and new values.
func TestSimRulesCompareExactly(t *testing.T) {
	ref, now := t.TempDir(), t.TempDir()
	writeSummary(t, ref, "storm", "sim", "reference", "", 40, 0.99)
	writeSummary(t, now, "storm", "sim", "reference", "", 42.5, 0.99)
	th := parse(t, ref, `
  - {scenario: storm, mode: sim, system: reference, metric: requests.p99_ms, max: 45}
  - {scenario: storm, mode: sim, system: reference, metric: requests.p99_ms, maxIncrease: 5%}
  - {scenario: storm, mode: sim, system: reference, metric: requests.p99_ms, maxIncrease: 7%}
  - {scenario: storm, mode: sim, system: reference, metric: requests.success_ratio, maxDecrease: 0.5%}
  - {scenario: storm, mode: sim, system: reference, metric: requests.success_ratio, min: 0.995}
`)
	rep, err := Check(th, []string{now})
	if err != nil {
		t.Fatal(err)
	}
	var got []bool
	for _, v := range rep.Verdicts {
		got = append(got, v.Regress)
	}
	if want := []bool{false, true, false, false, true}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("regressions %v, want %v (40 -> 42.5 is +6.25%%)", got, want)
	}
	var out bytes.Buffer
	if err := rep.Write(&out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"regression: storm, sim reference, requests.p99_ms: 40 -> 42.5 (up more than the 5% allowed; gate.yaml:7)",
		"regression: storm, sim reference, requests.success_ratio: 0.99 (below the minimum 0.995; gate.yaml:10)",
		"+6.25%",
		"gate: 2 of 5 rules regressed",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}

// TestLiveRulesNeedSignificance: live repetitions are compared by their
// medians, and a change past the bound counts only when the U test finds
// it significant at alpha.
func TestLiveRulesNeedSignificance(t *testing.T) {
	ref := t.TempDir()
	for i, p99 := range []float64{98, 100, 101, 99, 102} {
		writeSummary(t, ref, "steady", "local", "reference", fmt.Sprintf("run-%d", i), p99, 1)
	}
	th := parse(t, ref, "  - {scenario: steady, mode: local, system: reference, metric: requests.p99_ms, maxIncrease: 10%}\n")
	cases := []struct {
		name    string
		p99s    []float64
		regress bool
		why     string
	}{
		{"slower", []float64{128, 131, 130, 127, 133}, true, "up more than the 10% allowed, significant (p=0.008 n=5)"},
		{"noise", []float64{97, 103, 100, 99, 101}, false, "no significant change"},
		{"too few runs to tell", []float64{130, 131}, false, "no significant change"},
		{"significant but small", []float64{103, 104, 105, 103, 104}, false, "within the 10% increase allowed (significant"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			now := t.TempDir()
			for i, p99 := range c.p99s {
				writeSummary(t, now, "steady", "local", "reference", fmt.Sprintf("run-%d", i), p99, 1)
			}
			rep, err := Check(th, []string{now})
			if err != nil {
				t.Fatal(err)
			}
			v := rep.Verdicts[0]
			if v.Regress != c.regress || !strings.Contains(v.Why, c.why) {
				t.Errorf("regress=%v (%s), want %v (%s)", v.Regress, v.Why, c.regress, c.why)
			}
		})
	}
}

// TestMissingResultsAreAnError: a gate that cannot find what a rule
// names must not pass.
func TestMissingResultsAreAnError(t *testing.T) {
	ref, now := t.TempDir(), t.TempDir()
	writeSummary(t, now, "storm", "sim", "reference", "", 40, 0.99)
	th := parse(t, ref, `
  - {scenario: storm, mode: sim, system: baseline, metric: requests.p99_ms, max: 45}
  - {scenario: storm, mode: sim, system: reference, metric: requests.p99_ms, maxIncrease: 5%}
  - {scenario: storm, mode: sim, system: reference, metric: etcd.election_p99_ms, max: 5}
`)
	_, err := Check(th, []string{now})
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		"gate.yaml:6: storm/sim/baseline requests.p99_ms: new results: no summary.json under " + filepath.Join(now, "storm", "sim", "baseline"),
		"gate.yaml:7: storm/sim/reference requests.p99_ms: reference runs in " + ref,
		"etcd.election_p99_ms is null: the run did not measure it",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}
