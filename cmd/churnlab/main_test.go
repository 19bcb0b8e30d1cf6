package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/churnlab/churnlab/experiments/metrics"
)

const stormFile = "../../experiments/scenarios/restart-storm.yaml"

func churnlab(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestExitCodes(t *testing.T) {
	out := t.TempDir() // where a command that gets as far as its --out check may make it
	cases := []struct {
		name string
		args []string
		code int
		want string // in stdout or stderr
	}{
		// happy
		{"validate ok", []string{"validate", "-f", stormFile}, exitOK, "ok (scenario restart-storm"},
		{"help", []string{"--help"}, exitOK, "Usage:"},
		// sad: bad input is 2
		{"no file", []string{"sim"}, exitBadInput, "missing -f FILE"},
		{"file not found", []string{"validate", "-f", "nope.yaml"}, exitBadInput, "nope.yaml"},
		{"unknown flag", []string{"sim", "--bogus"}, exitBadInput, "unknown flag: --bogus"},
		{"bad system", []string{"sim", "-f", stormFile, "--system", "all"}, exitBadInput, `--system "all"`},
		{"bad seed", []string{"sim", "-f", stormFile, "--seed", "-3"}, exitBadInput, "--seed"},
		{"stray argument", []string{"sim", stormFile}, exitBadInput, "takes no arguments"},
		{"unknown command", []string{"frob"}, exitBadInput, `unknown command "frob"`},
		{"set without =", []string{"sim", "-f", stormFile, "--set", "baseline.replicas"}, exitBadInput, "want path=value"},
		{"set unknown field", []string{"validate", "-f", stormFile, "--set", "baseline.replicaz=3"}, exitBadInput, `unknown field "replicaz"`},
		{"set bad value", []string{"validate", "-f", stormFile, "--set", "baseline.replicas=0"}, exitBadInput, "baseline.replicas"},
		{"sweep without param", []string{"sweep", "-f", stormFile}, exitBadInput, "missing --param"},
		{"sweep bad range", []string{"sweep", "-f", stormFile, "--param", "cluster.pods", "--from", "3s", "--to", "9", "--out", out}, exitBadInput, "different units"},
		{"sweep negative objective", []string{"sweep", "-f", stormFile, "--param", "cluster.pods", "--from", "100", "--to", "120", "--max-api-p99", "-5s", "--out", out}, exitBadInput, "--max-api-p99 -5s"},
		{"sweep objective not a duration", []string{"sweep", "-f", stormFile, "--param", "cluster.pods", "--from", "100", "--to", "120", "--max-p99", "fast", "--out", out}, exitBadInput, "fast"},
		{"run estimate", []string{"run", "-f", stormFile, "--estimate"}, exitOK, "about 12m0s: 2 system(s) x (5m0s of live time"},
		{"run kubeconfig without kube", []string{"run", "-f", stormFile, "--target", "kind", "--kubeconfig", "x"}, exitBadInput, "--kubeconfig and --context are for --target kube, not kind"},
		{"run unknown target", []string{"run", "-f", stormFile, "--target", "mars"}, exitBadInput, `unknown target "mars"`},
		{"run bad uplink", []string{"run", "-f", stormFile, "--uplink", "wifi"}, exitBadInput, `--uplink "wifi": want token-bucket or tc`},
		{"plot no dir", []string{"plot"}, exitBadInput, "plot takes one results directory"},
		{"plot missing dir", []string{"plot", "no/such/dir"}, exitBadInput, "no/such/dir is not a results directory"},
		{"plot unknown scenario", []string{"plot", "."}, exitBadInput, "no scenario file"},
		{"kind without a command", []string{"kind"}, exitBadInput, "churnlab kind: missing command"},
		{"kind unknown command", []string{"kind", "boot"}, exitBadInput, `churnlab kind: unknown command "boot"`},
		{"kind engine without up or down", []string{"kind", "engine"}, exitBadInput, "churnlab kind engine: want up or down"},
		{"kind engine sideways", []string{"kind", "engine", "sideways"}, exitBadInput, `want up or down, got ["sideways"]`},
		{"kind node-image stray argument", []string{"kind", "node-image", "x"}, exitBadInput, "node-image takes no arguments"},
		{"run live.duration too long", []string{"run", "-f", stormFile, "--estimate", "--set", "live.duration=1h"}, exitBadInput, "live.duration: must be at most the scenario's duration 10m0s"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, stdout, stderr := churnlab(t, c.args...)
			if code != c.code || !strings.Contains(stdout+stderr, c.want) {
				t.Errorf("exit %d, want %d; output should contain %q:\n%s%s", code, c.code, c.want, stdout, stderr)
			}
		})
	}
}

// TestBadInputIsNamed: each kind of bad input exits 2 at once, before any
// simulating or building, with a message that names what is wrong and
// where (and not a wrong place).
func TestBadInputIsNamed(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.yaml")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	notADir := filepath.Join(dir, "file")
	if err := os.WriteFile(notADir, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	badOut := filepath.Join(notADir, "results")
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kubeconfig, []byte("apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: https://127.0.0.1:1}\ncontexts:\n- name: here\n  context: {cluster: c, user: u}\ncurrent-context: here\nusers:\n- name: u\n  user: {token: t}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	steady := "../../experiments/scenarios/steady.yaml"
	cases := []struct {
		name string
		args []string
		want []string // each in stdout or stderr
		not  []string // none in them
	}{
		{"no arguments", nil, []string{"Usage:", "Available Commands:", "churnlab: missing command"}, nil},
		{"set bad value in a file that extends another", []string{"sim", "-f", steady, "--set", "workload.baseLatency=abc", "--out", filepath.Join(dir, "out")},
			[]string{`--set workload.baseLatency=abc: workload.baseLatency: bad duration "abc"`}, []string{"steady.yaml:", "restart-storm.yaml:"}},
		{"set a path no scenario has", []string{"validate", "-f", steady, "--set", "no.such.path=1"},
			[]string{`--set no.such.path=1: no: unknown field "no"`}, []string{"steady.yaml:"}},
		{"empty thresholds file", []string{"gate", "--thresholds", empty}, []string{"thresholds file " + empty + " is empty"}, []string{"EOF"}},
		{"sim --out cannot be created", []string{"sim", "-f", stormFile, "--out", badOut}, []string{"--out " + badOut + ": cannot create the results directory"}, []string{"wrote", "100%"}},
		{"sweep --out cannot be created", []string{"sweep", "-f", stormFile, "--param", "cluster.pods", "--from", "100", "--to", "120", "--steps", "2", "--out", badOut},
			[]string{"--out " + badOut + ": cannot create the results directory"}, []string{"wrote", "knee"}},
		{"run --out cannot be created", []string{"run", "-f", stormFile, "--target", "kube", "--kubeconfig", kubeconfig, "--out", badOut},
			[]string{"--out " + badOut + ": cannot create the results directory"}, []string{"wrote"}},
		{"run with a kubeconfig that is not there", []string{"run", "-f", stormFile, "--target", "kube", "--kubeconfig", "/nonexistent"},
			[]string{"--target kube: cannot use kubeconfig /nonexistent", "no such file or directory"}, nil},
		{"run with an unknown context", []string{"run", "-f", stormFile, "--target", "kube", "--kubeconfig", kubeconfig, "--context", "elsewhere"},
			[]string{"--target kube: cannot use kubeconfig " + kubeconfig + ", context elsewhere", `context "elsewhere" does not exist`}, nil},
		{"run with a kubeconfig that is not one", []string{"run", "-f", stormFile, "--target", "kube", "--kubeconfig", notADir},
			[]string{"--target kube: cannot use kubeconfig " + notADir}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, stdout, stderr := churnlab(t, c.args...)
			if code != exitBadInput {
				t.Errorf("exit %d, want %d:\n%s%s", code, exitBadInput, stdout, stderr)
			}
			for _, w := range c.want {
				if !strings.Contains(stdout+stderr, w) {
					t.Errorf("output lacks %q:\n%s%s", w, stdout, stderr)
				}
			}
			for _, n := range c.not {
				if strings.Contains(stdout+stderr, n) {
					t.Errorf("output has %q:\n%s%s", n, stdout, stderr)
				}
			}
		})
	}
}

// TestValidatePrintsEveryProblem is the acceptance case: two unknown
// fields and a bad unit give three problems with line numbers, exit 2.
func TestValidatePrintsEveryProblem(t *testing.T) {
	code, _, stderr := churnlab(t, "validate", "-f", "../../experiments/scenario/testdata/invalid-unknown-fields-and-unit.yaml")
	if code != exitBadInput {
		t.Errorf("exit %d, want %d", code, exitBadInput)
	}
	for _, want := range []string{
		`:6:3: cluster.nodse: unknown field "nodse"`,
		`:7:11: cluster.uplink: bad bandwidth "1Gbs"`,
		`:10:3: workload.colour: unknown field "colour"`,
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
}

func TestSimWritesBothSystems(t *testing.T) {
	if testing.Short() {
		t.Skip("simulates the full-scale restart storm; run without -short")
	}
	out := t.TempDir()
	code, stdout, stderr := churnlab(t, "sim", "-f", stormFile, "--out", out, "--check-determinism")
	if code != exitOK {
		t.Fatalf("exit %d:\n%s%s", code, stdout, stderr)
	}
	if !strings.Contains(stderr, "100%") {
		t.Errorf("no progress on stderr:\n%s", stderr)
	}
	for _, system := range []string{"baseline", "reference"} {
		dir := filepath.Join(out, "restart-storm", "sim", system)
		s, err := metrics.ReadFile(filepath.Join(dir, "summary.json"), metrics.ReadSummary)
		if err != nil {
			t.Fatal(err)
		}
		if s.System != system || s.Mode != "sim" || s.Seed != 2023 || *s.Requests.Total == 0 {
			t.Errorf("%s: summary names system %q mode %q seed %d with %d requests", system, s.System, s.Mode, s.Seed, *s.Requests.Total)
		}
		series, err := os.ReadFile(filepath.Join(dir, "timeseries.csv"))
		if err != nil {
			t.Fatal(err)
		}
		if rows := strings.Count(string(series), "\n"); rows != 601 {
			t.Errorf("%s: timeseries.csv has %d lines, want a header and 600 one-second rows (10 min)", system, rows)
		}
		leftovers, _ := filepath.Glob(filepath.Join(dir, ".*"))
		if len(leftovers) > 0 {
			t.Errorf("temporary files left behind: %v", leftovers)
		}
	}
}

func TestSimSeedFlagChangesTheRun(t *testing.T) {
	if testing.Short() {
		t.Skip("simulates the full-scale restart storm; run without -short")
	}
	read := func(seed string) []byte {
		out := t.TempDir()
		if code, _, stderr := churnlab(t, "sim", "-f", stormFile, "--system", "reference", "--seed", seed, "--out", out); code != exitOK {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		data, err := os.ReadFile(filepath.Join(out, "restart-storm", "sim", "reference", "timeseries.csv"))
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	if bytes.Equal(read("1"), read("2")) {
		t.Error("seeds 1 and 2 gave identical time series")
	}
}

// TestSimSetOverridesAndComparison: --set changes the run (12 operator
// replicas get 429s from the API server, T2), and the run ends with a
// side-by-side table of both systems.
func TestSimSetOverridesAndComparison(t *testing.T) {
	out := t.TempDir()
	code, stdout, stderr := churnlab(t, "sim", "-f", stormFile, "--out", out, "--set", "baseline.replicas=12")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	s, err := metrics.ReadFile(filepath.Join(out, "restart-storm", "sim", "baseline", "summary.json"), metrics.ReadSummary)
	if err != nil {
		t.Fatal(err)
	}
	if *s.APIServer.Throttled429 == 0 {
		t.Error("no 429 with 12 operator replicas: --set did not take effect")
	}
	for _, want := range []string{"baseline", "reference", "success ratio", "egress peak (MB/s)", "API 429s"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("the comparison table lacks %q:\n%s", want, stdout)
		}
	}
}

// TestGateFailsOnAnInjectedRegression: on the committed results the gate
// passes; with 50 ms more service latency injected into the runs it
// simulates, it fails (exit 1) and names the scenario, the metric, and the
// old and new values.
func TestGateFailsOnAnInjectedRegression(t *testing.T) {
	t.Chdir("../..") // the gate finds scenarios and results/ from the repository's root
	committed, err := metrics.ReadFile("results/restart-storm/sim/reference/summary.json", metrics.ReadSummary)
	if err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := churnlab(t, "gate", "--thresholds", "results/gate.yaml")
	if code != exitOK || !strings.Contains(stdout, "no regression") {
		t.Fatalf("gate on the committed results: exit %d\n%s%s", code, stdout, stderr)
	}
	code, stdout, stderr = churnlab(t, "gate", "--thresholds", "results/gate.yaml", "--set", "workload.baseLatency=75ms")
	want := fmt.Sprintf("regression: restart-storm, sim reference, requests.p99_ms: %s -> ", strconv.FormatFloat(*committed.Requests.P99Ms, 'f', -1, 64))
	if code != exitRunFailed || !strings.Contains(stdout, want) {
		t.Errorf("gate with +50 ms latency: exit %d, want %d and %q in:\n%s%s", code, exitRunFailed, want, stdout, stderr)
	}
	code, _, stderr = churnlab(t, "gate", "--thresholds", "no-such.yaml")
	if code != exitBadInput || !strings.Contains(stderr, "no-such.yaml") {
		t.Errorf("missing thresholds file: exit %d, %s", code, stderr)
	}
}
