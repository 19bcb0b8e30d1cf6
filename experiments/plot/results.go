package plot

import (
	"bytes"
	"errors"
	"fmt"
	"image/color"
	"io/fs"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/churnlab/churnlab/experiments/metrics"
	"github.com/churnlab/churnlab/experiments/scenario"
)

// Systems in the order they are drawn, with their colors.
var systems = []struct {
	name  string
	color color.Color
}{{"baseline", BaselineColor}, {"reference", ReferenceColor}}

// modeLabels says what each results mode is, for chart titles.
var modeLabels = map[string]string{
	"sim":      "sim, full scale",
	"sim-live": "sim at live scale",
	"local":    "live, local control plane",
	"kube":     "live, kube",
	"kind":     "live, kind",
}

// Results draws every chart of one scenario's results directory (such as
// results/restart-storm, holding <mode>/<system>/timeseries.csv) into the
// mode directories, and returns the paths written. sc is the scenario the
// results came from, for the uplink's capacity at each scale.
func Results(dir string, sc *scenario.Scenario) ([]string, error) {
	modes, err := modesIn(dir)
	if err != nil {
		return nil, err
	}
	name := filepath.Base(dir)
	var written []string
	write := func(path string, c Chart) error {
		var buf bytes.Buffer
		if err := c.PNG(&buf); err != nil {
			return err
		}
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			return err
		}
		written = append(written, path)
		return nil
	}
	for _, mode := range modes {
		series, err := systemSeries(dir, mode)
		if err != nil {
			return written, err
		}
		scale := sc
		if mode != "sim" {
			scale = sc.AtLiveScale()
		}
		for _, c := range modeCharts(name, mode, series, scale.Cluster.Uplink) {
			if err := write(filepath.Join(dir, mode, c.file), c.Chart); err != nil {
				return written, err
			}
		}
		for _, sys := range systems {
			charts, err := levelCharts(dir, name, mode, sys.name)
			if err != nil {
				return written, err
			}
			for _, c := range charts {
				if err := write(filepath.Join(dir, mode, c.file), c.Chart); err != nil {
					return written, err
				}
			}
		}
		if live := modeLabels[mode]; strings.HasPrefix(live, "live") && slices.Contains(modes, "sim-live") {
			predicted, err := systemSeries(dir, "sim-live")
			if err != nil {
				return written, err
			}
			for _, c := range simVsLiveCharts(name, mode, series, predicted, scale.Cluster.Uplink) {
				if err := write(filepath.Join(dir, mode, c.file), c.Chart); err != nil {
					return written, err
				}
			}
		}
		// kind against the local control plane, same scenario and scale.
		if mode == "kind" && slices.Contains(modes, "local") {
			local, err := systemSeries(dir, "local")
			if err != nil {
				return written, err
			}
			for _, c := range versusCharts(name, "local-vs-kind", "kind", "local", "kind", "local", series, local, scale.Cluster.Uplink) {
				if err := write(filepath.Join(dir, mode, c.file), c.Chart); err != nil {
					return written, err
				}
			}
		}
	}
	sweep := filepath.Join(dir, "sim", "sweep.csv")
	if data, err := os.ReadFile(sweep); err == nil {
		c, err := sweepChart(name, sweep, data)
		if err != nil {
			return written, err
		}
		if err := write(filepath.Join(dir, "sim", "sweep.png"), c); err != nil {
			return written, err
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return written, err
	}
	if len(written) == 0 {
		return nil, fmt.Errorf("%s: nothing to plot: no <mode>/<system>/timeseries.csv and no sim/sweep.csv", dir)
	}
	return written, nil
}

// modesIn lists the mode directories of dir that hold a system's
// timeseries.csv, sorted.
func modesIn(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var modes []string
	for _, e := range entries {
		if _, known := modeLabels[e.Name()]; !known || !e.IsDir() {
			continue
		}
		for _, s := range systems {
			if _, err := os.Stat(filepath.Join(dir, e.Name(), s.name, "timeseries.csv")); err == nil {
				modes = append(modes, e.Name())
				break
			}
		}
	}
	return modes, nil
}

// systemSeries reads each system's timeseries.csv of one mode of dir,
// leaving out the systems that have none.
func systemSeries(dir, mode string) (map[string]*metrics.Timeseries, error) {
	series := map[string]*metrics.Timeseries{}
	for _, s := range systems {
		ts, err := readSeries(filepath.Join(dir, mode, s.name, "timeseries.csv"))
		if err != nil {
			return nil, err
		}
		if ts != nil {
			series[s.name] = ts
		}
	}
	return series, nil
}

// readSeries reads a timeseries.csv, or nil if there is none.
func readSeries(path string) (*metrics.Timeseries, error) {
	ts, err := metrics.ReadFile(path, metrics.ReadTimeseries)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return ts, err
}

type namedChart struct {
	file string
	Chart
}

// modeCharts are one mode's charts, baseline against reference.
func modeCharts(scenarioName, mode string, series map[string]*metrics.Timeseries, uplink scenario.Bandwidth) []namedChart {
	title := func(what string) string {
		return fmt.Sprintf("%s (%s): %s", scenarioName, modeLabels[mode], what)
	}
	lines := func(column string, scale float64) []Line {
		var out []Line
		for _, s := range systems {
			ts := series[s.name]
			if ts == nil {
				continue
			}
			out = append(out, Line{Name: s.name, X: ts.Column("t_s"), Y: scaled(ts.Column(column), scale), Color: s.color})
		}
		return out
	}
	return []namedChart{
		{"p99.png", Chart{Title: title("p99 latency per second"), XLabel: "time", TimeX: true, YLabel: "p99 latency (ms, log scale)",
			LogY: true, Lines: lines("p99_ms", 1)}},
		{"egress.png", Chart{Title: title("config uplink egress"), XLabel: "time", TimeX: true, YLabel: "egress (MB/s)",
			Lines: lines("egress_bytes", 1e-6), Marks: []Mark{uplinkMark(uplink)}}},
		{"api429.png", Chart{Title: title("API server 429 answers"), XLabel: "time", TimeX: true, YLabel: "429 answers per second",
			Lines: lines("apiserver_429", 1)}},
		{"pods.png", Chart{Title: title("ready pods"), XLabel: "time", TimeX: true, YLabel: "pods ready (with config)",
			Lines: lines("pods_ready", 1)}},
		{"leaderboard.png", Chart{Title: title("leaderboard staleness"), XLabel: "time", TimeX: true, YLabel: "time since the last update (s)",
			Lines: lines("leaderboard_staleness_s", 1)}},
	}
}

// levelColors are the priority levels' lines' colors, in name order.
var levelColors = []color.Color{
	color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}, color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff},
	color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff}, color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff},
	color.RGBA{R: 0x94, G: 0x67, B: 0xbd, A: 0xff}, color.RGBA{R: 0x8c, G: 0x56, B: 0x4b, A: 0xff},
	color.RGBA{R: 0xe3, G: 0x77, B: 0xc2, A: 0xff}, color.RGBA{R: 0x7f, G: 0x7f, B: 0x7f, A: 0xff},
}

// levelCharts are one system's API Priority and Fairness charts in one
// mode, from its priority-levels.csv: each level's 429 answers a second
// and its peak seats in use. None when the file is missing or has no
// level.
func levelCharts(dir, scenarioName, mode, system string) ([]namedChart, error) {
	ls, err := metrics.ReadFile(filepath.Join(dir, mode, system, "priority-levels.csv"), metrics.ReadLevelSeries)
	if errors.Is(err, fs.ErrNotExist) || (err == nil && len(*ls) == 0) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	title := func(what string) string {
		return fmt.Sprintf("%s (%s, %s): %s", scenarioName, modeLabels[mode], system, what)
	}
	var throttled, seats []Line
	for i, level := range slices.Sorted(maps.Keys(*ls)) {
		lw, c := (*ls)[level], levelColors[i%len(levelColors)]
		// A window with no row had no request: no 429 either.
		w := metrics.Window.Seconds()
		windows := int(lw.T[len(lw.T)-1]/w) + 1
		x, y := make([]float64, windows), make([]float64, windows)
		for i := range x {
			x[i] = float64(i) * w
		}
		for j, t := range lw.T {
			y[int(t/w)] = lw.Throttled429[j] / w
		}
		throttled = append(throttled, Line{Name: level, X: x, Y: y, Color: c})
		seats = append(seats, Line{Name: level, X: lw.T, Y: lw.SeatsPeak, Color: c})
	}
	return []namedChart{
		{"levels-429-" + system + ".png", Chart{Title: title("429 answers per priority level"), XLabel: "time", TimeX: true,
			YLabel: "429 answers per second", Lines: throttled}},
		{"levels-seats-" + system + ".png", Chart{Title: title("seats in use per priority level"), XLabel: "time", TimeX: true,
			YLabel: "peak seats in use in the second", Lines: seats}},
	}, nil
}

// simVsLiveCharts set a live mode's p99 and egress against the sim's
// prediction at the same scale, for both systems.
func simVsLiveCharts(scenarioName, mode string, live, predicted map[string]*metrics.Timeseries, uplink scenario.Bandwidth) []namedChart {
	return versusCharts(scenarioName, "sim-vs-live", mode, "sim-live", "live", "sim", live, predicted, uplink)
}

// versusCharts sets one mode's p99 and egress (solid, labelled label)
// against another's (dashed, otherLabel), both systems, in files named
// <prefix>-p99.png and <prefix>-egress.png.
func versusCharts(scenarioName, prefix, mode, other, label, otherLabel string, series, others map[string]*metrics.Timeseries, uplink scenario.Bandwidth) []namedChart {
	title := func(what string) string {
		return fmt.Sprintf("%s (%s vs %s): %s", scenarioName, modeLabels[mode], modeLabels[other], what)
	}
	lines := func(column string, scale float64) []Line {
		var out []Line
		for _, s := range systems {
			if ts := series[s.name]; ts != nil {
				out = append(out, Line{Name: s.name + ", " + label, X: ts.Column("t_s"), Y: scaled(ts.Column(column), scale), Color: s.color})
			}
			if ts := others[s.name]; ts != nil {
				out = append(out, Line{Name: s.name + ", " + otherLabel, X: ts.Column("t_s"), Y: scaled(ts.Column(column), scale), Color: s.color, Dashed: true})
			}
		}
		return out
	}
	return []namedChart{
		{prefix + "-p99.png", Chart{Title: title("p99 latency"), XLabel: "time", TimeX: true, YLabel: "p99 latency (ms, log scale)",
			LogY: true, Lines: lines("p99_ms", 1)}},
		{prefix + "-egress.png", Chart{Title: title("uplink egress"), XLabel: "time", TimeX: true, YLabel: "egress (MB/s)",
			Lines: lines("egress_bytes", 1e-6), Marks: []Mark{uplinkMark(uplink)}}},
	}
}

func uplinkMark(uplink scenario.Bandwidth) Mark {
	return Mark{Label: fmt.Sprintf("uplink cap %.3g MB/s (%s)", uplink.BytesPerSecond()/1e6, uplink), Value: uplink.BytesPerSecond() / 1e6}
}

func scaled(v []float64, by float64) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = x * by
	}
	return out
}

// sweepChart draws a sweep.csv (written by churnlab sweep): p99 and the
// 429 rate against the swept parameter, the knee marked.
func sweepChart(scenarioName, path string, data []byte) (Chart, error) {
	sweep, err := metrics.ReadSweep(bytes.NewReader(data))
	if err != nil {
		return Chart{}, fmt.Errorf("%s: %w", path, err)
	}
	unit := ""
	var x, p99, throttled []float64
	var marks []Mark
	for i, p := range sweep.Points {
		v, u, err := paramValue(p.Value)
		if err != nil {
			return Chart{}, fmt.Errorf("%s:%d: %s %q: %w", path, i+2, sweep.Param, p.Value, err)
		}
		unit = u
		x, p99, throttled = append(x, v), append(p99, p.P99Ms), append(throttled, p.Throttled429PS)
		if i == sweep.Knee {
			marks = append(marks, Mark{Label: fmt.Sprintf("knee: %s = %s, %.3f reconciles/s per replica", sweep.Param, p.Value, p.ReconcilesPerS), Value: v, Vertical: true})
		}
	}
	xlabel := sweep.Param
	if unit != "" {
		xlabel += " (" + unit + ")"
	}
	return Chart{
		Title:  fmt.Sprintf("%s (sweep, sim): where the operator's load leaves its low-load trend", scenarioName),
		XLabel: xlabel, YLabel: "p99 latency (ms) · 429 answers per second",
		Lines: []Line{
			{Name: "p99 latency (ms)", X: x, Y: p99, Color: ReferenceColor},
			{Name: "429 answers per second", X: x, Y: throttled, Color: BaselineColor},
		},
		Marks: marks,
	}, nil
}

// paramValue reads a swept value: a duration in seconds, or a number.
func paramValue(s string) (float64, string, error) {
	if d, err := time.ParseDuration(s); err == nil {
		return d.Seconds(), "s", nil
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) {
		return 0, "", errors.New("neither a duration nor a number")
	}
	return v, "", nil
}
