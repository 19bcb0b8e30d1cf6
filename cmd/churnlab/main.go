// Command churnlab reproduces a config-layer collapse under pod churn and
// tests a fix. See README.md for the tour; every subcommand's logic lives
// in a package, and this file only parses flags and maps errors to exit
// codes: 0 ok, 1 the run failed, 2 bad input or usage.
package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/churnlab/churnlab/experiments/metrics"
	"github.com/churnlab/churnlab/experiments/runner"
	"github.com/churnlab/churnlab/experiments/scenario"
	"github.com/churnlab/churnlab/experiments/scenariofile"
	"github.com/churnlab/churnlab/sim"
)

// Exit codes.
const (
	exitOK        = 0
	exitRunFailed = 1
	exitBadInput  = 2
)

// badInput marks an error caused by what the user gave: flags, arguments
// or a scenario file.
type badInput struct{ err error }

func (b badInput) Error() string { return b.err.Error() }
func (b badInput) Unwrap() error { return b.err }

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes one churnlab command line and returns its exit code.
func run(args []string, stdout, stderr io.Writer) int {
	root := newRootCommand(stdout, stderr)
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(stderr, "churnlab: %v\n", err)
	var bad badInput
	if errors.As(err, &bad) {
		return exitBadInput
	}
	return exitRunFailed // also the gate's regression
}

func newRootCommand(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "churnlab",
		Short: "Reproduce a config-layer collapse under pod churn, and test a fix",
		Long: `churnlab runs one scenario file against the Veltrix-like baseline and the
streaming reference config service, in a deterministic simulator, and writes
summary.json and timeseries.csv for each.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return badInput{fmt.Errorf("unknown command %q (run churnlab --help for the list)", args[0])}
			}
			// Bare churnlab is a usage error: the usage goes to stderr,
			// and the exit code is 2, as make's bare target prints usage.
			fmt.Fprintf(stderr, "%s\n\n%s", cmd.Long, cmd.UsageString())
			return badInput{errors.New("missing command: churnlab COMMAND [flags], the commands are listed above")}
		},
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return badInput{err} })
	root.AddCommand(newSimCommand(stdout, stderr), newRunCommand(stdout, stderr), newSweepCommand(stdout, stderr), newValidateCommand(stdout),
		newPlotCommand(stdout), newGateCommand(stdout, stderr), newReportCommand(stdout), newKindCommand(stdout, stderr))
	return root
}

// loadScenario loads file with the --set overrides applied.
func loadScenario(file string, sets []string) (*scenario.Scenario, error) {
	if file == "" {
		return nil, badInput{errors.New("missing -f FILE: the scenario to use, e.g. -f experiments/scenarios/restart-storm.yaml")}
	}
	overrides, err := parseSets(sets)
	if err != nil {
		return nil, err
	}
	sc, err := scenariofile.Load(file, overrides...)
	var problems *scenario.Errors
	if errors.As(err, &problems) {
		return nil, badInput{fmt.Errorf("scenario %s is not valid:\n%w", file, err)}
	}
	if err != nil {
		return nil, badInput{err}
	}
	return sc, nil
}

// checkOutDir makes sure results can be written in dir, the --out
// directory, before any work starts: it creates dir if need be, and
// writes and removes a file in it. A run that cannot write its results
// is bad input, found in a moment rather than after the whole run.
func checkOutDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return badInput{fmt.Errorf("--out %s: cannot create the results directory: %w", dir, err)}
	}
	f, err := os.CreateTemp(dir, ".churnlab-write-check-*")
	if err != nil {
		return badInput{fmt.Errorf("--out %s: cannot write in the results directory: %w", dir, err)}
	}
	f.Close()
	return os.Remove(f.Name())
}

func parseSets(sets []string) ([]scenario.Set, error) {
	var out []scenario.Set
	for _, s := range sets {
		set, err := scenario.ParseSet(s)
		if err != nil {
			return nil, badInput{fmt.Errorf("--set: %w", err)}
		}
		out = append(out, set)
	}
	return out, nil
}

const setUsage = "override a scenario field, path=value (e.g. baseline.replicas=12, model.etcd.fsync=2ms); repeatable"

func newValidateCommand(stdout io.Writer) *cobra.Command {
	var file string
	var sets []string
	cmd := &cobra.Command{
		Use:   "validate -f FILE [--set PATH=VALUE ...]",
		Short: "Check a scenario file and print every problem in it",
		Args:  noArgs,
		RunE: func(*cobra.Command, []string) error {
			sc, err := loadScenario(file, sets)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "%s: ok (scenario %s, %s, %d events; live: the first %s, pods x%g, traffic x%g, bytes x%g)\n",
				file, sc.Metadata.Name, sc.Duration, len(sc.Events), sc.Live.Duration, sc.Live.Scale.Pods, sc.Live.Scale.Traffic, sc.Live.Scale.Bytes)
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "scenario file")
	cmd.Flags().StringArrayVar(&sets, "set", nil, setUsage)
	return cmd
}

func newSimCommand(stdout, stderr io.Writer) *cobra.Command {
	var (
		file             string
		system           string
		seed             uint64
		out              string
		checkDeterminism bool
		liveScale        bool
		sets             []string
	)
	cmd := &cobra.Command{
		Use:   "sim -f FILE [--system baseline|reference|both] [--seed N] [--set PATH=VALUE ...] [--out DIR] [--live-scale] [--check-determinism]",
		Short: "Simulate a scenario and write summary.json and timeseries.csv per system",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			systems, err := parseSystem(system)
			if err != nil {
				return err
			}
			sc, err := loadScenario(file, sets)
			if err != nil {
				return err
			}
			if err := checkOutDir(out); err != nil {
				return err
			}
			opts := runner.SimOptions{Systems: systems, OutDir: out, CheckDeterminism: checkDeterminism, LiveScale: liveScale, Progress: stderr}
			if cmd.Flags().Changed("seed") {
				opts.Seed = &seed
			}
			outs, err := runner.RunSim(sc, opts)
			if err != nil {
				return err
			}
			var summaries []*metrics.Summary
			for _, o := range outs {
				fmt.Fprintf(stdout, "wrote %s/{summary.json,timeseries.csv,priority-levels.csv}\n", o.Dir)
				s, err := metrics.ReadSummary(bytes.NewReader(o.Summary))
				if err != nil {
					return err
				}
				summaries = append(summaries, s)
			}
			printComparison(stdout, summaries)
			if checkDeterminism {
				fmt.Fprintln(stdout, "determinism: two runs per system gave identical bytes")
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&file, "file", "f", "", "scenario file")
	f.StringVar(&system, "system", "both", "system to simulate: baseline, reference or both")
	f.Uint64Var(&seed, "seed", 0, "random seed (default: the scenario's seed)")
	f.StringVar(&out, "out", "runs", "results directory (runs/ by default; results/ holds the committed runs: make record)")
	f.BoolVar(&checkDeterminism, "check-determinism", false, "run each system twice and fail on any byte difference")
	f.BoolVar(&liveScale, "live-scale", false, "simulate the scenario shrunk by its live.scale and cut to live.duration, as `churnlab run` plays it, into <out>/<scenario>/sim-live/")
	f.StringArrayVar(&sets, "set", nil, setUsage)
	return cmd
}

// printComparison prints the headline figures of each system side by side.
func printComparison(w io.Writer, summaries []*metrics.Summary) {
	if len(summaries) == 0 {
		return
	}
	first := summaries[0]
	fmt.Fprintf(w, "\n%s, %s, seed %d, %gs\n", first.Scenario, first.Mode, first.Seed, first.DurationS)
	fmt.Fprintf(w, "%-30s", "")
	for _, s := range summaries {
		fmt.Fprintf(w, "%14s", s.System)
	}
	fmt.Fprintln(w)
	row := func(name string, value func(*metrics.Summary) *float64, format string) {
		fmt.Fprintf(w, "%-30s", name)
		for _, s := range summaries {
			if v := value(s); v != nil {
				fmt.Fprintf(w, "%14s", fmt.Sprintf(format, *v))
			} else {
				fmt.Fprintf(w, "%14s", "-")
			}
		}
		fmt.Fprintln(w)
	}
	count := func(v *int64) *float64 {
		if v == nil {
			return nil
		}
		f := float64(*v)
		return &f
	}
	mb := func(v *float64) *float64 {
		if v == nil {
			return nil
		}
		f := *v / 1e6
		return &f
	}
	row("p99 (ms)", func(s *metrics.Summary) *float64 { return s.Requests.P99Ms }, "%.1f")
	row("worst 1 s p99 (ms)", func(s *metrics.Summary) *float64 { return s.Requests.WorstWindowP99Ms }, "%.1f")
	row("success ratio", func(s *metrics.Summary) *float64 { return s.Requests.SuccessRatio }, "%.4f")
	row("egress peak (MB/s)", func(s *metrics.Summary) *float64 { return mb(s.Egress.PeakBytesPerS) }, "%.1f")
	row("config propagation p99 (ms)", func(s *metrics.Summary) *float64 { return s.Config.PropagationP99Ms }, "%.1f")
	row("time to config p99 (ms)", func(s *metrics.Summary) *float64 { return s.Config.TimeToConfigP99Ms }, "%.1f")
	row("API 429s", func(s *metrics.Summary) *float64 { return count(s.APIServer.Throttled429) }, "%.0f")
	row("etcd leader round p99 (ms)", func(s *metrics.Summary) *float64 { return s.Etcd.ElectionP99Ms }, "%.1f")
	row("leaderboard longest gap (s)", func(s *metrics.Summary) *float64 { return s.Leaderboard.MaxStalenessS }, "%.0f")
}

func newSweepCommand(stdout, stderr io.Writer) *cobra.Command {
	opts := runner.SweepOptions{}
	var (
		system         string
		sets           []string
		maxP99, maxAPI time.Duration
	)
	cmd := &cobra.Command{
		Use:   "sweep -f FILE --param PATH --from A --to B --steps N [--system baseline|reference] [--max-p99 D] [--max-api-p99 D] [--set PATH=VALUE ...] [--out DIR]",
		Short: "Simulate a scenario across one parameter, write sweep.csv and print the knee",
		Long: `sweep runs the scenario once per value of one field, in parallel across
cores (each point is its own deterministic run), writes
<out>/<scenario>/sim/sweep.csv, and prints the knee: the first point where
the worst-window p99, the 429 rate or the slowest declared controller's
p99 at the API server departs from its low-load trend, or passes an
objective you set (--max-p99 for the game's worst-window p99,
--max-api-p99 for the slowest controller's, such as the upstream API
call SLO for its calls: 1s for a single object, 5s for a namespace's
LIST, 30s for the cluster's). The point before it is the largest value
that stays healthy.

Example, the reconcile rate of L1 through the reconcile interval:
  churnlab sweep -f experiments/scenarios/steady.yaml \
    --param baseline.reconcileInterval --from 9s --to 3s --steps 13

Example, where an incident's cluster tips as it grows:
  churnlab sweep -f experiments/scenarios/incidents/palark-daemonset-list.yaml \
    --system reference --param cluster.nodes --from 20 --to 200 --steps 10 \
    --max-api-p99 5s`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, err := loadScenario(opts.File, sets); err != nil {
				return err
			}
			var err error
			if opts.Sets, err = parseSets(sets); err != nil {
				return err
			}
			if opts.Param == "" {
				return badInput{errors.New("missing --param PATH, e.g. --param baseline.reconcileInterval")}
			}
			systems, err := parseSystem(system)
			if err != nil || len(systems) != 1 {
				return badInput{fmt.Errorf("--system %q: want baseline or reference", system)}
			}
			if err := checkOutDir(opts.OutDir); err != nil {
				return err
			}
			if maxP99 < 0 || maxAPI < 0 {
				return badInput{fmt.Errorf("--max-p99 %s --max-api-p99 %s: want positive durations (0 for no objective)", maxP99, maxAPI)}
			}
			opts.Objectives = runner.Objectives{WorstP99Ms: float64(maxP99) / 1e6, APIP99Ms: float64(maxAPI) / 1e6}
			opts.System, opts.Progress = systems[0], stderr
			s, err := runner.RunSweep(opts)
			var problems *scenario.Errors
			if errors.As(err, &problems) {
				return badInput{fmt.Errorf("--param %s: %w", opts.Param, err)}
			}
			if err != nil {
				return badInput{err}
			}
			fmt.Fprintf(stdout, "%-14s %12s %10s %12s %8s %11s %8s\n", opts.Param, "reconciles/s", "p99 ms", "worst p99", "429/s", "API p99 ms", "success")
			for i, p := range s.Points {
				mark := ""
				if i == s.Knee {
					mark = "  <- knee"
				}
				fmt.Fprintf(stdout, "%-14s %12.1f %10.1f %12.1f %8.2f %11.1f %8.4f%s\n", p.Value, p.ReconcilesPerS, p.P99Ms, p.WorstP99Ms, p.Throttled429PS, p.APIP99Ms, p.SuccessRatio, mark)
			}
			if s.Knee < 0 {
				fmt.Fprintf(stdout, "no knee: %s\n", s.Why)
			} else {
				k := s.Points[s.Knee]
				fmt.Fprintf(stdout, "knee at %s=%s, %.1f reconciles/s per replica: %s\n", opts.Param, k.Value, k.ReconcilesPerS, s.Why)
			}
			fmt.Fprintf(stdout, "wrote %s\n", s.CSV)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&opts.File, "file", "f", "", "scenario file")
	f.StringVar(&opts.Param, "param", "", "scenario field to vary, as in error messages (e.g. cluster.pods)")
	f.StringVar(&opts.From, "from", "", "first value, as the file would write it")
	f.StringVar(&opts.To, "to", "", "last value, with the same unit")
	f.IntVar(&opts.Steps, "steps", 10, "number of points, ends included")
	f.DurationVar(&maxP99, "max-p99", 0, "objective: the game's worst-window p99 a healthy point stays within (e.g. 200ms; 0 for none)")
	f.DurationVar(&maxAPI, "max-api-p99", 0, "objective: the slowest controller's API p99 a healthy point stays within (e.g. 5s; 0 for none)")
	f.StringVar(&system, "system", "baseline", "system to simulate: baseline or reference")
	f.StringVar(&opts.OutDir, "out", "runs", "results directory (runs/ by default; results/ holds the committed runs: make record)")
	f.StringArrayVar(&sets, "set", nil, setUsage)
	return cmd
}

func parseSystem(s string) ([]sim.System, error) {
	switch s {
	case "both":
		return sim.Systems, nil
	case string(sim.Baseline), string(sim.Reference):
		return []sim.System{sim.System(s)}, nil
	}
	return nil, badInput{fmt.Errorf("--system %q: want baseline, reference or both", s)}
}

func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return badInput{fmt.Errorf("%s takes no arguments, got %q (the scenario goes after -f)", cmd.Name(), args)}
	}
	return nil
}
