package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/spf13/cobra"

	"github.com/churnlab/churnlab/experiments/gate"
	"github.com/churnlab/churnlab/experiments/runner"
	"github.com/churnlab/churnlab/sim"
)

// errRegressed is the gate's verdict when a rule failed: exit 1.
var errRegressed = errors.New("the gate found a regression")

func newGateCommand(stdout, stderr io.Writer) *cobra.Command {
	var thresholds, only string
	var sets []string
	cmd := &cobra.Command{
		Use:   "gate --thresholds FILE [--rules sim|live|all] [--set PATH=VALUE ...] [RESULTS...]",
		Short: "Fail (exit 1) when results regress past the thresholds file's rules",
		Long: `gate checks results against a thresholds file (results/gate.yaml): each rule
bounds one summary.json metric of one scenario, mode and system, absolutely
(max, min) or against the committed reference runs (maxIncrease,
maxDecrease). Sim results are compared exactly; live results need several
repetitions on each side and a change counts only if a Mann-Whitney U test
finds it significant.

With RESULTS (results directories, e.g. from churnlab run --out; a live
rule takes every repetition found under them), the --rules chosen (default
all) are checked against them. Without, gate simulates afresh every
scenario its sim rules name, with the --set overrides (to see what a change
would do), and checks those; live rules are then skipped.

Exit codes: 0 no regression, 1 a regression, 2 bad input (a bad thresholds
file, missing results, a metric a run did not measure).`,
		RunE: func(_ *cobra.Command, roots []string) error {
			if thresholds == "" {
				return badInput{errors.New("missing --thresholds FILE, e.g. --thresholds results/gate.yaml")}
			}
			th, err := gate.Load(thresholds)
			if err != nil {
				return badInput{err}
			}
			switch only {
			case "all":
			case "sim", "live":
				th.Rules = slices.DeleteFunc(th.Rules, func(r gate.Rule) bool { return r.Live() != (only == "live") })
			default:
				return badInput{fmt.Errorf("--rules %q: want sim, live or all", only)}
			}
			if len(th.Rules) == 0 {
				return badInput{fmt.Errorf("%s has no %s rules", thresholds, only)}
			}
			if len(roots) == 0 {
				if roots, err = simulateForGate(th, sets, stderr); err != nil {
					return err
				}
				defer os.RemoveAll(roots[0])
			} else if len(sets) > 0 {
				return badInput{errors.New("--set applies to the runs gate simulates itself; with RESULTS given, rerun them with the override instead")}
			}
			report, err := gate.Check(th, roots)
			if report != nil {
				if werr := report.Write(stdout); werr != nil {
					return werr
				}
			}
			if err != nil {
				return badInput{err}
			}
			if report.Regressed() {
				return errRegressed
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&thresholds, "thresholds", "", "the thresholds file (results/gate.yaml)")
	cmd.Flags().StringVar(&only, "rules", "all", "which rules to check: sim, live or all")
	cmd.Flags().StringArrayVar(&sets, "set", nil, "override a scenario field in the runs gate simulates, path=value (e.g. workload.baseLatency=75ms); repeatable")
	return cmd
}

// simulateForGate runs the sim for every scenario and sim mode th's sim
// rules name, into a new temporary directory, and keeps only the sim
// rules in th. It returns the directory.
func simulateForGate(th *gate.Thresholds, sets []string, stderr io.Writer) (_ []string, err error) {
	dir, err := os.MkdirTemp("", "churnlab-gate-")
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(dir)
		}
	}()
	type run struct{ scenario, mode string }
	systems := map[run][]sim.System{}
	var order []run
	var kept []gate.Rule
	for _, r := range th.Rules {
		if r.Live() {
			fmt.Fprintf(stderr, "gate: skipping %s:%d (%s/%s/%s %s): a live rule needs live results given as RESULTS (make gate-live)\n",
				th.File, r.Line, r.Scenario, r.Mode, r.System, r.Metric)
			continue
		}
		kept = append(kept, r)
		k := run{r.Scenario, r.Mode}
		if _, seen := systems[k]; !seen {
			order = append(order, k)
		}
		if s := sim.System(r.System); !slices.Contains(systems[k], s) {
			systems[k] = append(systems[k], s)
		}
	}
	th.Rules = kept
	for _, k := range order {
		file, err := scenarioFileFor(k.scenario)
		if err != nil {
			return nil, err
		}
		sc, err := loadScenario(file, sets)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(stderr, "gate: simulating %s (%s) for %d system(s)\n", k.scenario, k.mode, len(systems[k]))
		if _, err := runner.RunSim(sc, runner.SimOptions{Systems: systems[k], OutDir: dir, LiveScale: k.mode == "sim-live"}); err != nil {
			return nil, err
		}
	}
	return []string{dir}, nil
}
