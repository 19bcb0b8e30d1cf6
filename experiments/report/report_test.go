package report

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReportIsCurrent: REPORT.md is exactly what the template makes of
// the committed results, so its numbers are results/'s and nobody edited
// it by hand.
func TestReportIsCurrent(t *testing.T) {
	var got bytes.Buffer
	if err := Generate("../..", &got); err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile("../../REPORT.md")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), want) {
		gl, wl := strings.Split(got.String(), "\n"), strings.Split(string(want), "\n")
		for i := range min(len(gl), len(wl)) {
			if gl[i] != wl[i] {
				t.Fatalf("REPORT.md differs from the generated report at line %d:\n  REPORT.md: %s\n  generated: %s\nedit experiments/report/REPORT.md.tmpl, not REPORT.md, and run make report", i+1, wl[i], gl[i])
			}
		}
		t.Fatalf("REPORT.md has %d lines, the generated report %d: run make report", len(wl), len(gl))
	}
}

// TestNumbersComeFromResults: a template's numbers are read from the
// files, and what a template names that is not there is an error.
func TestNumbersComeFromResults(t *testing.T) {
	root := "../.."
	var out bytes.Buffer
	tmpl := `{{ v "restart-storm" "sim" "reference" "requests.p99_ms" | printf "%.3f" }} {{ (claim "F8 leaderboard-max-staleness-s of storm").Verdict }} {{ 1234567.4 | int }} {{ errPct 100.0 93.0 }} {{ errPct 0.0 0.0 }}`
	if err := GenerateFrom(root, tmpl, &out); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(root, "results/restart-storm/sim/reference/summary.json"))
	if err != nil {
		t.Fatal(err)
	}
	fields := strings.Fields(out.String())
	if !strings.Contains(string(data), `"p99_ms": `+fields[0]) {
		t.Errorf("p99 %s is not the summary's:\n%s", fields[0], data)
	}
	if want := []string{"within", "1,234,567", "−7%", "exact"}; strings.Join(fields[1:], " ") != strings.Join(want, " ") {
		t.Errorf("got %q, want %q", fields[1:], want)
	}
	for _, bad := range []struct{ tmpl, want string }{
		{`{{ v "no-such-scenario" "sim" "baseline" "requests.p99_ms" }}`, "no-such-scenario"},
		{`{{ v "restart-storm" "sim" "baseline" "requests.p98_ms" }}`, `no key "requests.p98_ms"`},
		{`{{ claim "F99 made-up of storm" }}`, `no claim "F99 made-up of storm"`},
		{`{{ plot "restart-storm/sim/nope.png" "x" }}`, "chart results/restart-storm/sim/nope.png is missing"},
		{`{{ v "restart-storm" "sim" "reference" "etcd.request_p99_ms" }}`, "etcd.request_p99_ms was not measured"},
	} {
		err := GenerateFrom(root, bad.tmpl, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%s: error %v, want one containing %q", bad.tmpl, err, bad.want)
		}
	}
}
