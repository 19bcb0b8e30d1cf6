package runner

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/churnlab/churnlab/experiments/metrics"
	"github.com/churnlab/churnlab/experiments/scenario"
	"github.com/churnlab/churnlab/sim"
)

// SimOptions tunes a simulator run.
type SimOptions struct {
	Systems []sim.System // default: every system
	Seed    *uint64      // overrides the scenario's seed when set
	OutDir  string       // results root; files go to OutDir/<scenario>/sim/<system>/
	// LiveScale simulates the scenario as a live run plays it
	// (Scenario.AtLiveScale), into OutDir/<scenario>/sim-live/<system>/,
	// so that the simulator's prediction can be set against the live run.
	LiveScale        bool
	CheckDeterminism bool      // run each system twice and fail on any byte difference
	Progress         io.Writer // progress lines; nil for none
}

// SimOutput is one system's result files, as bytes.
type SimOutput struct {
	System     sim.System
	Summary    []byte // summary.json
	Timeseries []byte // timeseries.csv
	Levels     []byte // priority-levels.csv
	Dir        string // where they were written
}

// SimLiveScaleDir is the results directory, beside sim/ and local/, of a
// simulation at live scale. Its summaries say mode "sim".
const SimLiveScaleDir = "sim-live"

// ErrNondeterministic is returned when --check-determinism finds two runs
// of the same scenario and seed that differ.
var ErrNondeterministic = errors.New("runner: simulator is not deterministic")

// RunSim simulates sc against each system and writes summary.json,
// timeseries.csv and priority-levels.csv for each. Files are written only once a system's run is
// complete (and, with CheckDeterminism, repeated identically), each
// through a temporary file, so a failed run never leaves a half-written
// result.
func RunSim(sc *scenario.Scenario, opts SimOptions) ([]SimOutput, error) {
	systems := opts.Systems
	if len(systems) == 0 {
		systems = sim.Systems
	}
	seed := sc.Seed
	if opts.Seed != nil {
		seed = *opts.Seed
	}
	modeDir := "sim"
	if opts.LiveScale {
		sc, modeDir = sc.AtLiveScale(), SimLiveScaleDir
	}
	progress := newProgress(opts.Progress)
	for _, what := range sim.Unmodelled(sc) {
		progress.note("sim: %s is not modelled by this simulator yet; the run ignores it", what)
	}
	var outs []SimOutput
	for _, system := range systems {
		out, err := simulate(sc, system, seed, progress)
		if err != nil {
			return nil, err
		}
		if opts.CheckDeterminism {
			again, err := simulate(sc, system, seed, progress)
			if err != nil {
				return nil, err
			}
			if what := firstDifference(out, again); what != "" {
				var sets strings.Builder
				for _, s := range sc.Overrides() {
					fmt.Fprintf(&sets, " --set %s=%s", s.Path, s.Value)
				}
				if opts.LiveScale {
					sets.WriteString(" --live-scale")
				}
				return nil, fmt.Errorf("%w: %s/%s seed %d: two runs differ in %s; reproduce with: churnlab sim -f %s --system %s --seed %d%s --check-determinism",
					ErrNondeterministic, sc.Metadata.Name, system, seed, what, sc.File(), system, seed, sets.String())
			}
		}
		out.Dir = filepath.Join(opts.OutDir, sc.Metadata.Name, modeDir, string(system))
		if err := writeFiles(out.Dir, resultFile{"summary.json", out.Summary}, resultFile{"timeseries.csv", out.Timeseries},
			resultFile{"priority-levels.csv", out.Levels}); err != nil {
			return nil, err
		}
		outs = append(outs, out)
	}
	return outs, nil
}

func simulate(sc *scenario.Scenario, system sim.System, seed uint64, progress *progress) (SimOutput, error) {
	rec := metrics.NewRecorder()
	w, err := sim.NewWorld(sc, system, seed, rec)
	if err != nil {
		return SimOutput{}, err
	}
	task := fmt.Sprintf("sim %s/%s", sc.Metadata.Name, system)
	for step := 1; step <= progressSteps; step++ {
		w.RunUntil(w.End() * sim.Time(step) / progressSteps)
		progress.update(task, step, progressSteps, fmt.Sprintf("%s of %s simulated, %d events", w.Now(), w.End(), w.Steps()))
	}
	var summary, series, levels bytes.Buffer
	run := metrics.Run{Scenario: sc.Metadata.Name, Mode: "sim", System: string(system), Seed: seed, Duration: sc.Duration.D()}
	if err := rec.Summary(run).Write(&summary); err != nil {
		return SimOutput{}, err
	}
	if err := rec.WriteTimeseries(&series); err != nil {
		return SimOutput{}, err
	}
	if err := rec.WriteLevelSeries(&levels); err != nil {
		return SimOutput{}, err
	}
	return SimOutput{System: system, Summary: summary.Bytes(), Timeseries: series.Bytes(), Levels: levels.Bytes()}, nil
}

// progressSteps is how many times a sim run reports progress.
const progressSteps = 20

func firstDifference(a, b SimOutput) string {
	for _, f := range []struct {
		name string
		x, y []byte
	}{{"summary.json", a.Summary, b.Summary}, {"timeseries.csv", a.Timeseries, b.Timeseries}, {"priority-levels.csv", a.Levels, b.Levels}} {
		if !bytes.Equal(f.x, f.y) {
			line := 1 + bytes.Count(f.x[:commonPrefix(f.x, f.y)], []byte("\n"))
			return fmt.Sprintf("%s (first at line %d)", f.name, line)
		}
	}
	return ""
}

func commonPrefix(a, b []byte) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}

type resultFile struct {
	name string
	data []byte
}

// writeFiles writes each file into dir through a temporary file and a
// rename, so readers never see a partial file.
func writeFiles(dir string, files ...resultFile) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("runner: %w", err)
	}
	for _, f := range files {
		path := filepath.Join(dir, f.name)
		tmp, err := os.CreateTemp(dir, "."+f.name+".*")
		if err != nil {
			return fmt.Errorf("runner: %w", err)
		}
		_, werr := tmp.Write(f.data)
		// Results are for reading by anyone, not 0600 as CreateTemp makes them.
		if err := errors.Join(werr, tmp.Chmod(0o644), tmp.Close()); err != nil {
			os.Remove(tmp.Name())
			return fmt.Errorf("runner: writing %s: %w", path, err)
		}
		if err := os.Rename(tmp.Name(), path); err != nil {
			os.Remove(tmp.Name())
			return fmt.Errorf("runner: %w", err)
		}
	}
	return nil
}

// progress prints what a run is doing and how far it has to go: one line
// rewritten in place on a terminal, a line per quarter otherwise.
type progress struct {
	w        io.Writer
	terminal bool
}

func newProgress(w io.Writer) *progress {
	p := &progress{w: w}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			p.terminal = true
		}
	}
	return p
}

func (p *progress) update(task string, step, of int, detail string) {
	if p.w == nil {
		return
	}
	line := progressLine(task, step, of, detail)
	switch {
	case p.terminal && step < of:
		fmt.Fprintf(p.w, "\r\033[K%s", line)
	case p.terminal:
		fmt.Fprintf(p.w, "\r\033[K%s\n", line)
	case step*4%of == 0:
		fmt.Fprintln(p.w, line)
	}
}

// show is update for rare lines (a live run's steps, its status every few
// seconds): on a file or pipe each one is printed, not only the quarters.
func (p *progress) show(task string, step, of int, detail string) {
	if p.w == nil {
		return
	}
	if p.terminal {
		p.update(task, step, of, detail)
		return
	}
	fmt.Fprintln(p.w, progressLine(task, step, of, detail))
}

func progressLine(task string, step, of int, detail string) string {
	return fmt.Sprintf("%s [%-20s] %3d%%  %s", task, strings.Repeat("=", step*20/of), step*100/of, detail)
}

// note prints a line of its own; on a terminal it takes the progress
// line's place, which the next update draws again below it.
func (p *progress) note(format string, args ...any) {
	if p.w == nil {
		return
	}
	if p.terminal {
		fmt.Fprint(p.w, "\r\033[K")
	}
	fmt.Fprintf(p.w, format+"\n", args...)
}

// Write shows each line written to it as a note: the progress writer for
// a Target, whose steps and clean-up troubles are worth seeing.
func (p *progress) Write(b []byte) (int, error) {
	for line := range strings.SplitSeq(strings.TrimRight(string(b), "\n"), "\n") {
		p.note("%s", line)
	}
	return len(b), nil
}
