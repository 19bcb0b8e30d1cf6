package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/churnlab/churnlab/experiments/plot"
)

func newPlotCommand(stdout io.Writer) *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "plot DIR [-f FILE]",
		Short: "Draw the charts of one scenario's results directory (e.g. results/restart-storm)",
		Long: `plot reads DIR/<mode>/<system>/timeseries.csv (and DIR/sim/sweep.csv) and
writes PNG charts into each mode directory: p99, egress against the uplink's
cap, 429s, ready pods and leaderboard staleness, baseline against reference;
sim against live where both exist; the sweep with its knee.

The scenario file gives the uplink's capacity; by default it is found by the
directory's name under experiments/scenarios (or its ablations or incidents).`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return badInput{errors.New("plot takes one results directory, e.g. churnlab plot results/restart-storm")}
			}
			return nil
		},
		RunE: func(_ *cobra.Command, args []string) error {
			dir := args[0]
			if info, err := os.Stat(dir); err != nil || !info.IsDir() {
				return badInput{fmt.Errorf("%s is not a results directory", dir)}
			}
			if file == "" {
				var err error
				if file, err = scenarioFileFor(filepath.Base(filepath.Clean(dir))); err != nil {
					return err
				}
			}
			sc, err := loadScenario(file, nil)
			if err != nil {
				return err
			}
			paths, err := plot.Results(dir, sc)
			for _, p := range paths {
				fmt.Fprintf(stdout, "wrote %s\n", p)
			}
			if err != nil {
				return badInput{err}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "the scenario the results came from (default: found by the directory's name)")
	return cmd
}

// scenarioFileFor finds the scenario file named name under
// experiments/scenarios or its ablations or incidents.
func scenarioFileFor(name string) (string, error) {
	for _, dir := range []string{"experiments/scenarios", "experiments/scenarios/ablations", "experiments/scenarios/incidents"} {
		path := filepath.Join(dir, name+".yaml")
		if _, err := os.Stat(path); err == nil {
			return path, nil
		} else if !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
	}
	return "", badInput{fmt.Errorf("no scenario file %s.yaml under experiments/scenarios, its ablations or its incidents; give it with -f", name)}
}
