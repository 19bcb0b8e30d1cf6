package runner

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"sync"

	"github.com/churnlab/churnlab/experiments/metrics"
	"github.com/churnlab/churnlab/experiments/scenario"
	"github.com/churnlab/churnlab/experiments/scenariofile"
	"github.com/churnlab/churnlab/sim"
)

// SweepOptions is one parameter sweep: the scenario file run once per
// value of Param, from From to To in Steps equal steps.
type SweepOptions struct {
	File     string
	Sets     []scenario.Set // fixed overrides, applied before Param
	Param    string         // a scenario field path, e.g. baseline.reconcileInterval
	From, To string         // values as the file would write them, e.g. 3s and 9s
	Steps    int
	System   sim.System
	// Objectives bound what a healthy point may reach, whatever the
	// low-load trend; zero values bound nothing.
	Objectives Objectives
	Workers    int       // parallel runs; default the number of CPUs
	OutDir     string    // sweep.csv goes to OutDir/<scenario>/sim/
	Progress   io.Writer // nil for none
}

// Objectives are absolute bounds of a healthy point: the worst-window
// p99 of game requests, and the slowest declared controller's p99 at the
// API server (such as the upstream API call SLO for its kind of call).
type Objectives struct {
	WorstP99Ms, APIP99Ms float64
}

// Sweep is a finished sweep: its table (sweep.csv), why the knee is
// where it is, and where sweep.csv was written.
type Sweep struct {
	metrics.SweepTable
	Why string
	CSV string
}

var number = regexp.MustCompile(`^([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)(.*)$`)

// sweepValues interpolates from..to in steps points. Both must be a
// number with the same unit suffix (3s and 9s, 120 and 240). Plain whole
// numbers stay whole, as counts must; values with a unit may fall
// between (4.5s).
func sweepValues(from, to string, steps int) ([]string, error) {
	mf, mt := number.FindStringSubmatch(from), number.FindStringSubmatch(to)
	if mf == nil || mt == nil {
		return nil, fmt.Errorf("--from %q --to %q: want numbers, with the same unit if any (e.g. 3s and 9s)", from, to)
	}
	if mf[2] != mt[2] {
		return nil, fmt.Errorf("--from %q and --to %q have different units (%q, %q)", from, to, mf[2], mt[2])
	}
	if steps < 2 {
		return nil, fmt.Errorf("--steps %d: want at least 2", steps)
	}
	a, _ := strconv.ParseFloat(mf[1], 64)
	b, _ := strconv.ParseFloat(mt[1], 64)
	whole := mf[2] == "" && !bytes.ContainsAny([]byte(mf[1]+mt[1]), ".eE")
	var out []string
	for i := range steps {
		v := a + (b-a)*float64(i)/float64(steps-1)
		if whole {
			out = append(out, strconv.FormatInt(int64(math.Round(v)), 10)+mf[2])
		} else {
			out = append(out, strconv.FormatFloat(v, 'g', 6, 64)+mf[2])
		}
	}
	return out, nil
}

// RunSweep runs the sweep, in parallel and deterministically per point
// (each point is its own seeded run), writes sweep.csv and finds the knee.
// Every value is loaded and validated before any run starts, so a bad
// parameter fails at once with the scenario's own error.
func RunSweep(opts SweepOptions) (*Sweep, error) {
	values, err := sweepValues(opts.From, opts.To, opts.Steps)
	if err != nil {
		return nil, err
	}
	scenarios := make([]*scenario.Scenario, len(values))
	for i, v := range values {
		sc, err := scenariofile.Load(opts.File, append(slices.Clone(opts.Sets), scenario.Set{Path: opts.Param, Value: v})...)
		if err != nil {
			return nil, err
		}
		scenarios[i] = sc
	}
	workers := opts.Workers
	if workers <= 0 {
		workers = runtime.NumCPU()
	}
	system := opts.System
	if system == "" {
		system = sim.Baseline
	}
	points := make([]metrics.SweepPoint, len(values))
	errs := make([]error, len(values))
	progress := newProgress(opts.Progress)
	var (
		mu   sync.Mutex
		done int
		wg   sync.WaitGroup
		next = make(chan int)
	)
	for range min(workers, len(values)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				points[i], errs[i] = sweepPoint(scenarios[i], system, values[i])
				mu.Lock()
				done++
				progress.update(fmt.Sprintf("sweep %s", opts.Param), done, len(values), fmt.Sprintf("%d of %d points", done, len(values)))
				mu.Unlock()
			}
		}()
	}
	for i := range values {
		next <- i
	}
	close(next)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	s := &Sweep{SweepTable: metrics.SweepTable{Param: opts.Param, Points: points}}
	s.Knee, s.Why = findKnee(points, opts.Objectives)
	s.CSV = filepath.Join(opts.OutDir, scenarios[0].Metadata.Name, "sim", "sweep.csv")
	if err := writeFiles(filepath.Dir(s.CSV), resultFile{"sweep.csv", s.SweepTable.CSV()}); err != nil {
		return nil, err
	}
	return s, nil
}

func sweepPoint(sc *scenario.Scenario, system sim.System, value string) (metrics.SweepPoint, error) {
	rec := metrics.NewRecorder()
	w, err := sim.NewWorld(sc, system, sc.Seed, rec)
	if err != nil {
		return metrics.SweepPoint{}, err
	}
	w.RunUntil(w.End())
	s := rec.Summary(metrics.Run{Duration: sc.Duration.D()})
	p := metrics.SweepPoint{
		Value:          value,
		ReconcilesPerS: w.ReconcileRate(0, w.End()),
		P99Ms:          orZero(s.Requests.P99Ms),
		WorstP99Ms:     orZero(s.Requests.WorstWindowP99Ms),
		SuccessRatio:   orZero(s.Requests.SuccessRatio),
		EgressPeakMBps: orZero(s.Egress.PeakBytesPerS) / 1e6,
	}
	if s.APIServer.Throttled429 != nil {
		p.Throttled429PS = float64(*s.APIServer.Throttled429) / sc.Duration.D().Seconds()
	}
	for _, c := range s.Controllers {
		p.APIP99Ms = max(p.APIP99Ms, orZero(c.P99Ms))
	}
	return p, nil
}

func orZero(f *float64) float64 {
	if f == nil {
		return 0
	}
	return *f
}

// Knee tolerances: a point is off the low-load trend when it exceeds the
// trend by half again, and by more than a floor that keeps noise in tiny
// values from counting.
const (
	kneeRatio        = 1.5
	kneeFloorP99Ms   = 10
	kneeFloor429PerS = 0.5
)

// findKnee returns the first point past an objective, or where p99, the
// 429 rate or the slowest controller's API p99 departs from the trend of
// the low-load points (the first quarter of the sweep, at least three),
// and says which and by how much. The trend is their least-squares line,
// but never below their lowest value, so that a falling start (p99 easing
// as capacity grows) does not read as a rise.
func findKnee(points []metrics.SweepPoint, obj Objectives) (int, string) {
	k := max(3, len(points)/4)
	for i, p := range points[:min(k, len(points))] {
		if why := obj.missed(p); why != "" {
			return i, why
		}
	}
	if len(points) <= k {
		return -1, fmt.Sprintf("too few points to fit a low-load trend (want more than %d)", k)
	}
	p99 := make([]float64, len(points))
	rate := make([]float64, len(points))
	api := make([]float64, len(points))
	for i, p := range points {
		p99[i], rate[i], api[i] = p.WorstP99Ms, p.Throttled429PS, p.APIP99Ms
	}
	p99Trend, rateTrend, apiTrend := trend(p99[:k]), trend(rate[:k]), trend(api[:k])
	for i := k; i < len(points); i++ {
		if why := obj.missed(points[i]); why != "" {
			return i, why
		}
		if t := p99Trend(i); p99[i] > t*kneeRatio && p99[i]-t > kneeFloorP99Ms {
			return i, fmt.Sprintf("worst-window p99 %.1f ms against a trend of %.1f ms", p99[i], t)
		}
		if t := rateTrend(i); rate[i] > t*kneeRatio && rate[i]-t > kneeFloor429PerS {
			return i, fmt.Sprintf("%.2f 429s a second against a trend of %.2f", rate[i], t)
		}
		if t := apiTrend(i); api[i] > t*kneeRatio && api[i]-t > kneeFloorP99Ms {
			return i, fmt.Sprintf("the slowest controller's API p99 %.1f ms against a trend of %.1f ms", api[i], t)
		}
	}
	return -1, "no point departs from the low-load trend"
}

// missed says which objective p misses, or "" if none.
func (o Objectives) missed(p metrics.SweepPoint) string {
	switch {
	case o.WorstP99Ms > 0 && p.WorstP99Ms > o.WorstP99Ms:
		return fmt.Sprintf("worst-window p99 %.1f ms past the objective of %.0f ms", p.WorstP99Ms, o.WorstP99Ms)
	case o.APIP99Ms > 0 && p.APIP99Ms > o.APIP99Ms:
		return fmt.Sprintf("the slowest controller's API p99 %.1f ms past the objective of %.0f ms", p.APIP99Ms, o.APIP99Ms)
	}
	return ""
}

// trend is the low-load trend of y: its least-squares line, floored at
// its lowest value.
func trend(y []float64) func(i int) float64 {
	line, floor := linearFit(y), slices.Min(y)
	return func(i int) float64 { return max(line(i), floor) }
}

// linearFit returns the least-squares line through (i, y[i]).
func linearFit(y []float64) func(i int) float64 {
	n := float64(len(y))
	var sx, sy, sxx, sxy float64
	for i, v := range y {
		x := float64(i)
		sx, sy, sxx, sxy = sx+x, sy+v, sxx+x*x, sxy+x*v
	}
	slope := 0.0
	if d := n*sxx - sx*sx; d != 0 {
		slope = (n*sxy - sx*sy) / d
	}
	intercept := (sy - slope*sx) / n
	return func(i int) float64 { return intercept + slope*float64(i) }
}
