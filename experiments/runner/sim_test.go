package runner

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/churnlab/churnlab/experiments/scenario"
	"github.com/churnlab/churnlab/sim"
)

func TestFirstDifferenceNamesFileAndLine(t *testing.T) {
	a := SimOutput{Summary: []byte("{\n\"x\": 1\n}\n"), Timeseries: []byte("h\n1\n2\n")}
	b := SimOutput{Summary: a.Summary, Timeseries: []byte("h\n1\n3\n")}
	if got := firstDifference(a, a); got != "" {
		t.Errorf("identical outputs reported as %q", got)
	}
	if got := firstDifference(a, b); got != "timeseries.csv (first at line 3)" {
		t.Errorf("firstDifference = %q", got)
	}
}

func TestRunSimReportsAnUnwritableOutDir(t *testing.T) {
	sc := tinyScenario(t)
	blocker := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(blocker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := RunSim(sc, SimOptions{Systems: []sim.System{sim.Baseline}, OutDir: blocker})
	if err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("err = %v, want one saying the out dir is not a directory", err)
	}
}

func TestRunSimWritesOnlyFinishedFiles(t *testing.T) {
	sc := tinyScenario(t)
	out := t.TempDir()
	var progress strings.Builder
	outs, err := RunSim(sc, SimOptions{OutDir: out, CheckDeterminism: true, Progress: &progress})
	if err != nil {
		t.Fatal(err)
	}
	if len(outs) != 2 {
		t.Fatalf("%d outputs, want one per system", len(outs))
	}
	entries, _ := os.ReadDir(filepath.Join(out, "tiny", "sim", "baseline"))
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if strings.Join(names, " ") != "priority-levels.csv summary.json timeseries.csv" {
		t.Errorf("files %v, want exactly priority-levels.csv, summary.json and timeseries.csv", names)
	}
	if !strings.Contains(progress.String(), "sim tiny/reference [====================] 100%") {
		t.Errorf("progress lacks the final line:\n%s", progress.String())
	}
}

// tinyScenario is a two-second, two-pod run: enough to write every file.
func tinyScenario(t *testing.T) *scenario.Scenario {
	t.Helper()
	sc, err := scenario.Parse("tiny.yaml", []byte("apiVersion: churnlab/v1\nkind: Scenario\nmetadata: {name: tiny}\nduration: 2s\ncluster: {pods: 2}\nworkload: {requestRate: 100/s}\n"))
	if err != nil {
		t.Fatal(err)
	}
	return sc
}
