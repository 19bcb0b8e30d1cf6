package report

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/template"

	"golang.org/x/perf/benchfmt"
	"golang.org/x/perf/benchmath"

	"github.com/churnlab/churnlab/experiments/metrics"
)

//go:embed REPORT.md.tmpl
var reportTemplate string

// Files the report reads, relative to the repository's root.
const (
	ResultsDir      = "results"
	CalibrationFile = "sim/testdata/calibration.txt"
	BenchFile       = "results/bench.txt"
)

// Generate writes REPORT.md's contents, from the repository rooted at
// root, to w.
func Generate(root string, w io.Writer) error {
	return GenerateFrom(root, reportTemplate, w)
}

// GenerateFrom is Generate with another template (for tests).
func GenerateFrom(root, tmpl string, w io.Writer) error {
	g := &generator{root: root, summaries: map[string]*metrics.Summary{}}
	t, err := template.New("REPORT.md.tmpl").Option("missingkey=error").Funcs(g.funcs()).Parse(tmpl)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, nil); err != nil {
		return err
	}
	_, err = w.Write(buf.Bytes())
	return err
}

type generator struct {
	root       string
	summaries  map[string]*metrics.Summary
	transcript []string
	benchmarks *benchmarks // results/bench.txt, once read
}

func (g *generator) funcs() template.FuncMap {
	return template.FuncMap{
		"v":              g.value,
		"num":            num,
		"int":            thousands,
		"mb":             func(b float64) string { return num(b/1e6, 1) },
		"s":              func(ms float64) string { return num(ms/1000, 1) },
		"errPct":         errPct,
		"div":            func(a, b float64) float64 { return a / b },
		"claim":          g.claim,
		"claimRow":       g.claimRow,
		"measured":       g.measured,
		"simTable":       g.simTable,
		"simVsLive":      g.simVsLive,
		"ablations":      g.ablations,
		"sweepTable":     g.sweepTable,
		"benchTable":     g.benchTable,
		"plot":           g.plot,
		"successBetween": g.successBetween,
		"fewestReady":    g.fewestReady,
		"bench":          g.bench,
		"knee":           g.knee,
		"liveErr":        g.liveErr,
	}
}

// summary reads results/<scenario>/<mode>/<system>/summary.json.
func (g *generator) summary(scenario, mode, system string) (*metrics.Summary, error) {
	key := filepath.Join(scenario, mode, system)
	if s, ok := g.summaries[key]; ok {
		return s, nil
	}
	s, err := metrics.ReadFile(filepath.Join(g.root, ResultsDir, key, "summary.json"), metrics.ReadSummary)
	if err != nil {
		return nil, err
	}
	g.summaries[key] = s
	return s, nil
}

// value is one summary.json number; a null is an error, since the
// template only names what the run measures.
func (g *generator) value(scenario, mode, system, path string) (float64, error) {
	v, err := g.optional(scenario, mode, system, path)
	if err != nil {
		return 0, err
	}
	if v == nil {
		return 0, fmt.Errorf("results/%s/%s/%s: %s was not measured", scenario, mode, system, path)
	}
	return *v, nil
}

// optional is one summary.json number, nil where the run did not
// measure it.
func (g *generator) optional(scenario, mode, system, path string) (*float64, error) {
	s, err := g.summary(scenario, mode, system)
	if err != nil {
		return nil, err
	}
	return s.Value(path)
}

// num formats v with the given decimals.
func num(v float64, decimals int) string { return strconv.FormatFloat(v, 'f', decimals, 64) }

// thousands formats v rounded to a whole number, with thousands separators.
func thousands(v float64) string {
	s := strconv.FormatFloat(math.Round(math.Abs(v)), 'f', 0, 64)
	var out []byte
	for i := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	if v < 0 {
		return "−" + string(out)
	}
	return string(out)
}

// errPct is the prediction error (predicted - measured) / measured.
func errPct(measured, predicted float64) string {
	switch {
	case measured == 0 && predicted == 0:
		return "exact"
	case measured == 0:
		return "—"
	}
	e := math.Round(100 * (predicted - measured) / math.Abs(measured))
	if e == 0 {
		return "±0%"
	}
	sign := "+"
	if e < 0 {
		sign = "−"
	}
	return fmt.Sprintf("%s%.0f%%", sign, math.Abs(e))
}

// claimLine matches a claim's result in the transcript:
// "F2 worst-window-p99-ms of storm: 1179.647, want 1200 ±15%: ok".
var claimLine = regexp.MustCompile(`^(.+): (-?[0-9.]+|NaN), want (.+): (ok|OUT.*)$`)

// Claim is one claim's result in the calibration transcript.
type Claim struct {
	Value   float64
	Want    string // "1200 ±15%", ">= 1", "<= 100"
	Within  bool
	Verdict string // within, reproduced, OUT
}

// measuredLine matches a figure the transcript measures without checking:
// "T2 etcd-requests of t2 / storm: 1.19 (measured, not checked)".
var measuredLine = regexp.MustCompile(`^(.+): (-?[0-9.]+|NaN) \(measured, not checked\)$`)

func (g *generator) transcriptLines() ([]string, error) {
	if g.transcript == nil {
		data, err := os.ReadFile(filepath.Join(g.root, CalibrationFile))
		if err != nil {
			return nil, err
		}
		g.transcript = strings.Split(string(data), "\n")
	}
	return g.transcript, nil
}

// measured is a figure the calibration transcript measures but no claim
// checks, by its key, such as "T2 etcd-requests of t2 / storm".
func (g *generator) measured(key string) (float64, error) {
	lines, err := g.transcriptLines()
	if err != nil {
		return 0, err
	}
	for _, line := range lines {
		if m := measuredLine.FindStringSubmatch(line); m != nil && m[1] == key {
			return strconv.ParseFloat(m[2], 64)
		}
	}
	return 0, fmt.Errorf("%s measures no %q", CalibrationFile, key)
}

// claim finds the result of the claim whose transcript line starts with
// key, such as "F2 worst-window-p99-ms of storm".
func (g *generator) claim(key string) (Claim, error) {
	lines, err := g.transcriptLines()
	if err != nil {
		return Claim{}, err
	}
	for _, line := range lines {
		m := claimLine.FindStringSubmatch(line)
		if m == nil || m[1] != key {
			continue
		}
		v, _ := strconv.ParseFloat(m[2], 64)
		c := Claim{Value: v, Want: m[3], Within: m[4] == "ok"}
		switch {
		case !c.Within:
			c.Verdict = "**OUT**"
		case strings.Contains(c.Want, "±"):
			c.Verdict = "within"
		default:
			c.Verdict = "reproduced"
		}
		return c, nil
	}
	return Claim{}, fmt.Errorf("%s has no claim %q", CalibrationFile, key)
}

// claimRow is a calibration table row: the ID, the seed's claim, what it
// is measured on, the simulated value with its unit, and the verdict.
func (g *generator) claimRow(id, seed, measuredOn, key, unit string, decimals int) (string, error) {
	c, err := g.claim(key)
	if err != nil {
		return "", err
	}
	value := num(c.Value, decimals)
	if c.Value >= 10000 {
		value = thousands(c.Value)
	}
	if unit != "" {
		value += " " + unit
	}
	return fmt.Sprintf("| %s | %s | %s | %s | %s (want %s) |", id, seed, measuredOn, value, c.Verdict, c.Want), nil
}

// row is one line of a generated table: a label and how to read and
// format each system's value.
type row struct {
	label  string
	path   string
	format func(float64) string
}

func fixed(decimals int, scale float64) func(float64) string {
	return func(v float64) string { return num(v*scale, decimals) }
}

var whole = func(v float64) string { return thousands(v) }

// cell formats v, or "–" where the run did not measure it.
func (r row) cell(v *float64) string {
	if v == nil {
		return "–"
	}
	return r.format(*v)
}

// simTable is the full-scale sim run of scenario, both systems side by side.
func (g *generator) simTable(scenario string) (string, error) {
	rows := []row{
		{"requests", "requests.total", whole},
		{"success ratio", "requests.success_ratio", fixed(4, 1)},
		{"p50 (ms)", "requests.p50_ms", fixed(1, 1)},
		{"p95 (ms)", "requests.p95_ms", fixed(1, 1)},
		{"p99 (ms)", "requests.p99_ms", fixed(1, 1)},
		{"worst 1 s window p99 (ms)", "requests.worst_window_p99_ms", fixed(1, 1)},
		{"uplink egress, total (MB)", "egress.total_bytes", fixed(1, 1e-6)},
		{"uplink egress, peak 1 s (MB/s)", "egress.peak_bytes_per_s", fixed(1, 1e-6)},
		{"uplink bytes per pod start", "egress.bytes_per_pod_start", whole},
		{"API requests", "apiserver.requests", whole},
		{"API 429s", "apiserver.throttled_429", whole},
		{"API peak requests/s", "apiserver.peak_rps", whole},
		{"etcd request p99 (ms)", "etcd.request_p99_ms", fixed(1, 1)},
		{"etcd leader round p99 (ms)", "etcd.election_p99_ms", fixed(1, 1)},
		{"time to config p99 (s)", "config.time_to_config_p99_ms", fixed(1, 1e-3)},
		{"config propagation p99 (ms)", "config.propagation_p99_ms", fixed(1, 1)},
		{"pod restarts", "pods.restarts", whole},
		{"unhealthy pods, peak", "pods.unhealthy_peak", whole},
		{"leaderboard longest freeze (s)", "leaderboard.max_staleness_s", whole},
	}
	var b strings.Builder
	b.WriteString("| metric | baseline (Veltrix) | reference (config service) |\n|---|---|---|\n")
	for _, r := range rows {
		var cells []string
		for _, system := range []string{"baseline", "reference"} {
			v, err := g.optional(scenario, "sim", system, r.path)
			if err != nil {
				return "", err
			}
			cells = append(cells, r.cell(v))
		}
		fmt.Fprintf(&b, "| %s | %s | %s |\n", r.label, cells[0], cells[1])
	}
	return strings.TrimSuffix(b.String(), "\n"), nil
}

// simVsLive is the live run of scenario in mode against the sim's
// prediction at live scale: each metric, for each system given, and the
// prediction error.
func (g *generator) simVsLive(scenario, mode string, systems ...string) (string, error) {
	rows := []row{
		{"**p99 (ms)**", "requests.p99_ms", fixed(1, 1)},
		{"worst 1 s p99 (ms)", "requests.worst_window_p99_ms", fixed(1, 1)},
		{"success ratio", "requests.success_ratio", fixed(4, 1)},
		{"**egress, total (MB)**", "egress.total_bytes", fixed(2, 1e-6)},
		{"egress, peak (MB/s)", "egress.peak_bytes_per_s", fixed(2, 1e-6)},
		{"bytes per pod start", "egress.bytes_per_pod_start", whole},
		{"API requests (operator's APF level)", "apiserver.requests", whole},
		{"**API 429s**", "apiserver.throttled_429", whole},
		{"time to config p99 (s)", "config.time_to_config_p99_ms", fixed(2, 1e-3)},
		{"config propagation p99 (ms)", "config.propagation_p99_ms", fixed(1, 1)},
		{"unhealthy pods, peak", "pods.unhealthy_peak", whole},
	}
	var b strings.Builder
	b.WriteString("| metric |")
	sep := "|---|"
	for _, system := range systems {
		fmt.Fprintf(&b, " live %s | sim %s | error |", system, system)
		sep += "---|---|---|"
	}
	b.WriteString("\n" + sep + "\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s |", r.label)
		for _, system := range systems {
			live, err := g.optional(scenario, mode, system, r.path)
			if err != nil {
				return "", err
			}
			predicted, err := g.optional(scenario, "sim-live", system, r.path)
			if err != nil {
				return "", err
			}
			e := "–"
			if live != nil && predicted != nil {
				e = errPct(*live, *predicted)
			}
			fmt.Fprintf(&b, " %s | %s | %s |", r.cell(live), r.cell(predicted), e)
		}
		b.WriteString("\n")
	}
	return strings.TrimSuffix(b.String(), "\n"), nil
}

// ablations is the table of the baseline under each ablation in
// results/t*/sim/, set against the restart storm.
func (g *generator) ablations() (string, error) {
	dirs, err := filepath.Glob(filepath.Join(g.root, ResultsDir, "t[0-9]*", "sim", "baseline", "summary.json"))
	if err != nil {
		return "", err
	}
	if len(dirs) == 0 {
		return "", errors.New("no ablation results (results/t*/sim/baseline/summary.json): run make ablations")
	}
	names := []string{"restart-storm"}
	for _, d := range dirs {
		names = append(names, filepath.Base(filepath.Dir(filepath.Dir(filepath.Dir(d)))))
	}
	rows := []row{
		{"p99 (ms)", "requests.p99_ms", fixed(1, 1)},
		{"worst 1 s p99 (ms)", "requests.worst_window_p99_ms", fixed(1, 1)},
		{"success ratio", "requests.success_ratio", fixed(4, 1)},
		{"egress peak (MB/s)", "egress.peak_bytes_per_s", fixed(1, 1e-6)},
		{"bytes per pod start", "egress.bytes_per_pod_start", whole},
		{"API 429s", "apiserver.throttled_429", whole},
		{"leader round p99 (ms)", "etcd.election_p99_ms", fixed(1, 1)},
		{"time to config p99 (s)", "config.time_to_config_p99_ms", fixed(1, 1e-3)},
		{"leaderboard freeze (s)", "leaderboard.max_staleness_s", whole},
	}
	var b strings.Builder
	b.WriteString("| run |")
	sep := "|---|"
	for _, r := range rows {
		b.WriteString(" " + r.label + " |")
		sep += "---|"
	}
	b.WriteString("\n" + sep + "\n")
	for _, name := range names {
		fmt.Fprintf(&b, "| %s |", name)
		for _, r := range rows {
			v, err := g.optional(name, "sim", "baseline", r.path)
			if err != nil {
				return "", err
			}
			b.WriteString(" " + r.cell(v) + " |")
		}
		b.WriteString("\n")
	}
	return strings.TrimSuffix(b.String(), "\n"), nil
}

// sweep reads results/<scenario>/sim/sweep.csv.
func (g *generator) sweep(scenario string) (*metrics.SweepTable, error) {
	path := filepath.Join(g.root, ResultsDir, scenario, "sim", "sweep.csv")
	return metrics.ReadFile(path, metrics.ReadSweep)
}

// sweepTable is results/<scenario>/sim/sweep.csv as a table, its knee in
// bold.
func (g *generator) sweepTable(scenario string) (string, error) {
	t, err := g.sweep(scenario)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "| %s | reconciles/s per replica | p99 (ms) | 429 answers/s | success |\n|---|---|---|---|---|\n", t.Param)
	for i, p := range t.Points {
		cells := []string{p.Value, num(p.ReconcilesPerS, 1), num(p.P99Ms, 1), num(p.Throttled429PS, 1), num(p.SuccessRatio, 4)}
		if i == t.Knee {
			for i := range cells {
				cells[i] = "**" + cells[i] + "**"
			}
		}
		fmt.Fprintf(&b, "| %s |\n", strings.Join(cells, " | "))
	}
	return strings.TrimSuffix(b.String(), "\n"), nil
}

// benchmarks is results/bench.txt: every value of each benchmark and
// unit, in the order they first appear, and the CPU it ran on.
type benchKey struct{ name, unit string }

type benchmarks struct {
	values map[benchKey][]float64
	order  []benchKey
	cpu    string
}

func (g *generator) benchResults() (*benchmarks, error) {
	if g.benchmarks != nil {
		return g.benchmarks, nil
	}
	f, err := os.Open(filepath.Join(g.root, BenchFile))
	if err != nil {
		return nil, fmt.Errorf("%w (make bench writes it)", err)
	}
	defer f.Close()
	bm := &benchmarks{values: map[benchKey][]float64{}}
	reader := benchfmt.NewReader(f, BenchFile)
	for reader.Scan() {
		res, ok := reader.Result().(*benchfmt.Result)
		if !ok {
			continue
		}
		if v := res.GetConfig("cpu"); v != "" {
			bm.cpu = v
		}
		name := benchProcs.ReplaceAllString(string(res.Name), "")
		for _, v := range res.Values {
			k := benchKey{name, v.Unit}
			if _, seen := bm.values[k]; !seen {
				bm.order = append(bm.order, k)
			}
			bm.values[k] = append(bm.values[k], v.Value)
		}
	}
	if err := reader.Err(); err != nil {
		return nil, err
	}
	if len(bm.order) == 0 {
		return nil, fmt.Errorf("%s: no benchmark results", BenchFile)
	}
	g.benchmarks = bm
	return bm, nil
}

// benchProcs is the -GOMAXPROCS suffix of a benchmark's name.
var benchProcs = regexp.MustCompile(`-[0-9]+$`)

func summarize(values []float64) benchmath.Summary {
	return benchmath.AssumeNothing.Summary(benchmath.NewSample(slices.Clone(values), &benchmath.DefaultThresholds), 0.95)
}

// bench is the median of one benchmark (named without its -GOMAXPROCS
// suffix) in unit.
func (g *generator) bench(name, unit string) (float64, error) {
	bm, err := g.benchResults()
	if err != nil {
		return 0, err
	}
	v, ok := bm.values[benchKey{name, unit}]
	if !ok {
		return 0, fmt.Errorf("%s has no %s in %s", BenchFile, name, unit)
	}
	return summarize(v).Center, nil
}

// benchTable summarises results/bench.txt (raw `go test -bench` output
// of several runs) as benchstat does: each benchmark's median with its
// 95% confidence interval, per unit.
func (g *generator) benchTable() (string, error) {
	bm, err := g.benchResults()
	if err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "| benchmark | unit | median | 95%% CI | runs |\n|---|---|---|---|---|\n")
	for _, k := range bm.order {
		if k.unit == "B/op" || k.unit == "allocs/op" {
			continue
		}
		sum := summarize(bm.values[k])
		fmt.Fprintf(&b, "| %s | %s | %s | ± %s | %d |\n", k.name, k.unit, humanize(sum.Center, k.unit), sum.PctRangeString(), len(bm.values[k]))
	}
	if bm.cpu != "" {
		fmt.Fprintf(&b, "\n(%s, %s)", bm.cpu, BenchFile)
	}
	return strings.TrimSuffix(b.String(), "\n"), nil
}

// humanize formats a benchmark value in its unit's natural scale.
func humanize(v float64, unit string) string {
	if unit == "sec/op" {
		switch {
		case v < 1e-6:
			return num(v*1e9, 1) + " ns"
		case v < 1e-3:
			return num(v*1e6, 1) + " µs"
		case v < 1:
			return num(v*1e3, 1) + " ms"
		}
		return num(v, 3) + " s"
	}
	if v >= 1000 {
		return thousands(v)
	}
	return num(v, 1)
}

// plot is a chart under results/ as a Markdown image; a missing chart is
// an error (make compare draws them).
func (g *generator) plot(path, alt string) (string, error) {
	full := filepath.Join(g.root, ResultsDir, path)
	if _, err := os.Stat(full); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("chart %s is missing: run make compare SCENARIO=%s", filepath.Join(ResultsDir, path), strings.Split(path, "/")[0])
		}
		return "", err
	}
	return fmt.Sprintf("![%s](%s)", alt, filepath.ToSlash(filepath.Join(ResultsDir, path))), nil
}

// successBetween is the success ratio of the requests a run's
// timeseries.csv counts in [from, to) seconds.
func (g *generator) successBetween(scenario, mode, system string, from, to float64) (float64, error) {
	ts, path, err := g.timeseries(scenario, mode, system)
	if err != nil {
		return 0, err
	}
	t, n, ok := ts.Column("t_s"), ts.Column("requests"), ts.Column("success_ratio")
	var total, good float64
	for i := range t {
		if t[i] >= from && t[i] < to && !math.IsNaN(ok[i]) {
			total += n[i]
			good += n[i] * ok[i]
		}
	}
	if total == 0 {
		return 0, fmt.Errorf("%s: no requests in [%g s, %g s)", path, from, to)
	}
	return good / total, nil
}

// fewestReady is the fewest pods with config in any second of a run
// (timeseries.csv's pods_ready).
func (g *generator) fewestReady(scenario, mode, system string) (float64, error) {
	ts, path, err := g.timeseries(scenario, mode, system)
	if err != nil {
		return 0, err
	}
	ready := ts.Column("pods_ready")
	if len(ready) == 0 {
		return 0, fmt.Errorf("%s: no rows", path)
	}
	return slices.Min(ready), nil
}

// timeseries reads results/<scenario>/<mode>/<system>/timeseries.csv.
func (g *generator) timeseries(scenario, mode, system string) (*metrics.Timeseries, string, error) {
	path := filepath.Join(g.root, ResultsDir, scenario, mode, system, "timeseries.csv")
	ts, err := metrics.ReadFile(path, metrics.ReadTimeseries)
	return ts, path, err
}

// knee is the reconcile rate per replica at the knee of
// results/<scenario>/sim/sweep.csv.
func (g *generator) knee(scenario string) (float64, error) {
	t, err := g.sweep(scenario)
	if err != nil {
		return 0, err
	}
	if t.Knee < 0 {
		return 0, fmt.Errorf("results/%s/sim/sweep.csv: the sweep found no knee", scenario)
	}
	return t.Points[t.Knee].ReconcilesPerS, nil
}

// liveErr is the sim's prediction error at live scale for one metric of
// one system's local run: (sim-live - local) / local.
func (g *generator) liveErr(scenario, system, path string) (string, error) {
	live, err := g.value(scenario, "local", system, path)
	if err != nil {
		return "", err
	}
	predicted, err := g.value(scenario, "sim-live", system, path)
	if err != nil {
		return "", err
	}
	return errPct(live, predicted), nil
}
