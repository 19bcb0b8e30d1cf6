package gate

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"

	"golang.org/x/perf/benchmath"

	"github.com/churnlab/churnlab/experiments/metrics"
)

// Verdict is one rule's outcome.
type Verdict struct {
	Rule     Rule
	Old, New []float64 // the reference's values and the new ones (Old empty for an absolute bound)
	OldMid   float64   // medians (the value itself for a sim rule)
	NewMid   float64
	Change   float64 // (new - old) / old; NaN for an absolute bound
	Test     string  // the U test's result, live rules
	Regress  bool
	Why      string
}

// Report is every rule's verdict.
type Report struct {
	Thresholds *Thresholds
	Verdicts   []Verdict
}

// Regressed says whether any rule failed.
func (r *Report) Regressed() bool {
	return slices.ContainsFunc(r.Verdicts, func(v Verdict) bool { return v.Regress })
}

// Check applies th's rules to the results under roots (each a results
// directory holding <scenario>/<mode>/<system>/summary.json, or several
// repetitions of it below that directory). A rule whose new or reference
// results are missing, or whose metric a run did not measure, is an
// error: a gate that cannot look must not pass.
func Check(th *Thresholds, roots []string) (*Report, error) {
	rep := &Report{Thresholds: th}
	var problems []string
	for _, r := range th.Rules {
		where := fmt.Sprintf("%s:%d: %s/%s/%s %s", th.File, r.Line, r.Scenario, r.Mode, r.System, r.Metric)
		newValues, err := values(roots, r)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: new results: %v", where, err))
			continue
		}
		v := Verdict{Rule: r, New: newValues, NewMid: median(newValues), Change: math.NaN()}
		if r.Max != nil || r.Min != nil {
			v.Regress, v.Why = absolute(r, v.NewMid)
			rep.Verdicts = append(rep.Verdicts, v)
			continue
		}
		if v.Old, err = values([]string{th.Reference}, r); err != nil {
			problems = append(problems, fmt.Sprintf("%s: reference runs in %s: %v", where, th.Reference, err))
			continue
		}
		v.OldMid = median(v.Old)
		v.Change = change(v.OldMid, v.NewMid)
		if !r.Live() {
			if len(v.New) > 1 || len(v.Old) > 1 {
				problems = append(problems, fmt.Sprintf("%s: %d new and %d reference runs; a sim rule compares one run with one", where, len(v.New), len(v.Old)))
				continue
			}
			v.Regress, v.Why = relative(r, v.Change)
			rep.Verdicts = append(rep.Verdicts, v)
			continue
		}
		thresholds := benchmath.DefaultThresholds
		thresholds.CompareAlpha = r.Alpha
		cmp := benchmath.AssumeNothing.Compare(benchmath.NewSample(slices.Clone(v.Old), &thresholds), benchmath.NewSample(slices.Clone(v.New), &thresholds))
		v.Test = cmp.String()
		beyond, why := relative(r, v.Change)
		switch {
		case cmp.P >= cmp.Alpha:
			v.Why = fmt.Sprintf("no significant change (%s, alpha %g)", v.Test, cmp.Alpha)
			for _, w := range cmp.Warnings {
				v.Why += "; " + w.Error()
			}
		case beyond:
			v.Regress, v.Why = true, why+fmt.Sprintf(", significant (%s)", v.Test)
		default:
			v.Why = why + fmt.Sprintf(" (significant: %s)", v.Test)
		}
		rep.Verdicts = append(rep.Verdicts, v)
	}
	if len(problems) > 0 {
		return rep, errors.New(strings.Join(problems, "\n"))
	}
	return rep, nil
}

func absolute(r Rule, got float64) (bool, string) {
	if r.Max != nil {
		if got > *r.Max {
			return true, fmt.Sprintf("above the maximum %s", num(*r.Max))
		}
		return false, fmt.Sprintf("within the maximum %s", num(*r.Max))
	}
	if got < *r.Min {
		return true, fmt.Sprintf("below the minimum %s", num(*r.Min))
	}
	return false, fmt.Sprintf("within the minimum %s", num(*r.Min))
}

func relative(r Rule, c float64) (bool, string) {
	if r.MaxIncrease != nil {
		if c > *r.MaxIncrease {
			return true, fmt.Sprintf("up more than the %s allowed", pct(*r.MaxIncrease))
		}
		return false, fmt.Sprintf("within the %s increase allowed", pct(*r.MaxIncrease))
	}
	if -c > *r.MaxDecrease {
		return true, fmt.Sprintf("down more than the %s allowed", pct(*r.MaxDecrease))
	}
	return false, fmt.Sprintf("within the %s decrease allowed", pct(*r.MaxDecrease))
}

// change is (new - old) / old; a change from 0 is 0 if new is 0 too, and
// infinite otherwise.
func change(old, new float64) float64 {
	if old == 0 {
		if new == 0 {
			return 0
		}
		return math.Copysign(math.Inf(1), new)
	}
	return (new - old) / math.Abs(old)
}

// values reads the rule's metric from every summary.json under
// root/<scenario>/<mode>/<system>/ of each root, sorted.
func values(roots []string, r Rule) ([]float64, error) {
	var out []float64
	var looked []string
	for _, root := range roots {
		dir := filepath.Join(root, r.Scenario, r.Mode, r.System)
		looked = append(looked, dir)
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) && path == dir {
					return fs.SkipAll
				}
				return err
			}
			if d.IsDir() || d.Name() != "summary.json" {
				return nil
			}
			s, err := metrics.ReadFile(path, metrics.ReadSummary)
			if err != nil {
				return err
			}
			v, err := s.Value(r.Metric)
			if err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			if v == nil {
				return fmt.Errorf("%s: %s is null: the run did not measure it", path, r.Metric)
			}
			out = append(out, *v)
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no summary.json under %s", strings.Join(looked, ", "))
	}
	slices.Sort(out)
	return out, nil
}

func median(sorted []float64) float64 {
	n := len(sorted)
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}

func num(v float64) string {
	return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.4f", v), "0"), ".")
}

func pct(f float64) string { return num(100*f) + "%" }

// Write prints the report as benchstat prints a comparison: per scenario,
// mode and system, each metric's old and new value (medians of live
// repetitions, with their count), the change, and the verdict.
func (r *Report) Write(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	group := ""
	for _, v := range r.Verdicts {
		rule := v.Rule
		if g := fmt.Sprintf("%s/%s/%s", rule.Scenario, rule.Mode, rule.System); g != group {
			if group != "" {
				fmt.Fprintln(tw)
			}
			group = g
			fmt.Fprintf(tw, "%s\told\tnew\tdelta\tverdict\n", g)
		}
		old, delta := "", ""
		if len(v.Old) > 0 {
			old = sample(v.OldMid, len(v.Old))
			delta = fmt.Sprintf("%+.2f%%", 100*v.Change)
			if rule.Live() && strings.HasPrefix(v.Why, "no significant change") {
				delta = "~"
			}
		}
		verdict := "ok: " + v.Why
		if v.Regress {
			verdict = "REGRESSION: " + v.Why
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", rule.Metric, old, sample(v.NewMid, len(v.New)), delta, verdict)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	regressions := 0
	for _, v := range r.Verdicts {
		if v.Regress {
			regressions++
			rule := v.Rule
			old := ""
			if len(v.Old) > 0 {
				old = fmt.Sprintf("%s -> ", num(v.OldMid))
			}
			fmt.Fprintf(w, "regression: %s, %s %s, %s: %s%s (%s; %s:%d)\n", rule.Scenario, rule.Mode, rule.System, rule.Metric,
				old, num(v.NewMid), v.Why, r.Thresholds.File, rule.Line)
		}
	}
	if regressions == 0 {
		fmt.Fprintf(w, "gate: %d rules, no regression\n", len(r.Verdicts))
	} else {
		fmt.Fprintf(w, "gate: %d of %d rules regressed\n", regressions, len(r.Verdicts))
	}
	return nil
}

// sample formats a value, with the number of runs behind it when more
// than one.
func sample(v float64, n int) string {
	if n > 1 {
		return fmt.Sprintf("%s (median of %d)", num(v), n)
	}
	return num(v)
}
