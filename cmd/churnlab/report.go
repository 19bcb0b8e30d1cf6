package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/churnlab/churnlab/experiments/report"
)

func newReportCommand(stdout io.Writer) *cobra.Command {
	var out string
	var check bool
	cmd := &cobra.Command{
		Use:   "report [--out REPORT.md] [--check]",
		Short: "Regenerate REPORT.md from results/, the calibration transcript and results/bench.txt",
		Long: `report writes REPORT.md from experiments/report/REPORT.md.tmpl, reading every
number from results/ (summaries, time series, the sweep, bench.txt) and the
calibration transcript. Run it from the repository's root. --check writes
nothing and fails (exit 1) if REPORT.md differs from what it would write.`,
		Args: noArgs,
		RunE: func(*cobra.Command, []string) error {
			var buf bytes.Buffer
			if err := report.Generate(".", &buf); err != nil {
				return fmt.Errorf("generating %s: %w", out, err)
			}
			if check {
				current, err := os.ReadFile(out)
				if err != nil {
					return badInput{err}
				}
				if !bytes.Equal(current, buf.Bytes()) {
					return errors.New(out + " is not what churnlab report writes: edit experiments/report/REPORT.md.tmpl, not " + out + ", and run make report")
				}
				fmt.Fprintf(stdout, "%s is current\n", out)
				return nil
			}
			if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "wrote %s\n", out)
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "REPORT.md", "the file to write")
	cmd.Flags().BoolVar(&check, "check", false, "only check that the file is current")
	return cmd
}
