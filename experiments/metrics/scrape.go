package metrics

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"maps"
	"math"
	"net/http"
	"slices"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Families is one scrape of a Prometheus endpoint, by metric name.
type Families map[string]*dto.MetricFamily

// Scrape reads the Prometheus text endpoint at url.
func Scrape(ctx context.Context, client *http.Client, url string) (Families, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("metrics: scraping %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("metrics: scraping %s: %s", url, resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("metrics: parsing %s: %w", url, err)
	}
	return families, nil
}

// Sum adds up the counter (or gauge) samples of the family name whose
// labels include every pair in match.
func (f Families) Sum(name string, match map[string]string) float64 {
	total := 0.0
	for _, m := range f[name].GetMetric() {
		if matches(m, match) {
			total += m.GetCounter().GetValue() + m.GetGauge().GetValue() + m.GetUntyped().GetValue()
		}
	}
	return total
}

func matches(m *dto.Metric, match map[string]string) bool {
	found := 0
	for _, l := range m.GetLabel() {
		if v, ok := match[l.GetName()]; ok {
			if v != l.GetValue() {
				return false
			}
			found++
		}
	}
	return found == len(match)
}

// ScrapeLog is a CSV of scraped samples, one row per counter or gauge
// sample per scrape: t_s,source,metric,labels,value. Labels are name=value
// pairs joined by ';' in name order.
type ScrapeLog struct {
	buf bytes.Buffer
	w   *csv.Writer
}

// Add appends the counters and gauges of f whose name starts with prefix
// and whose labels include match, as scraped from source at t.
func (l *ScrapeLog) Add(t time.Duration, source string, f Families, prefix string, match map[string]string) {
	if l.w == nil {
		l.w = csv.NewWriter(&l.buf)
		_ = l.w.Write([]string{"t_s", "source", "metric", "labels", "value"}) // to a bytes.Buffer: cannot fail
	}
	defer l.w.Flush()
	for _, name := range slices.Sorted(maps.Keys(f)) {
		if !strings.HasPrefix(name, prefix) {
			continue
		}
		for _, m := range f[name].GetMetric() {
			if !matches(m, match) || (m.Counter == nil && m.Gauge == nil) {
				continue
			}
			var labels []string
			for _, lp := range m.GetLabel() {
				labels = append(labels, lp.GetName()+"="+lp.GetValue())
			}
			slices.Sort(labels)
			value := m.GetCounter().GetValue() + m.GetGauge().GetValue()
			_ = l.w.Write([]string{fmt.Sprintf("%.0f", t.Seconds()), source, name, strings.Join(labels, ";"), fmt.Sprint(value)})
		}
	}
}

// Bytes returns the CSV so far.
func (l *ScrapeLog) Bytes() []byte { return l.buf.Bytes() }

// Buckets is a Prometheus histogram's buckets: the cumulative count of
// observations at or below each upper bound, bounds ascending, the last
// +Inf.
type Buckets struct {
	Upper, Cumulative []float64
}

// Histogram adds up the histogram samples of the family name whose labels
// include every pair in match. Samples with other bucket bounds than the
// first are left out: one family has one set of bounds.
func (f Families) Histogram(name string, match map[string]string) Buckets {
	var b Buckets
	for _, m := range f[name].GetMetric() {
		h := m.GetHistogram()
		if h == nil || !matches(m, match) {
			continue
		}
		var upper, cumulative []float64
		for _, bk := range h.GetBucket() {
			if !math.IsInf(bk.GetUpperBound(), 1) {
				upper = append(upper, bk.GetUpperBound())
				cumulative = append(cumulative, float64(bk.GetCumulativeCount()))
			}
		}
		upper = append(upper, math.Inf(1))
		cumulative = append(cumulative, float64(h.GetSampleCount()))
		if b.Upper == nil {
			b = Buckets{Upper: upper, Cumulative: make([]float64, len(upper))}
		}
		if !slices.Equal(upper, b.Upper) {
			continue
		}
		for i, c := range cumulative {
			b.Cumulative[i] += c
		}
	}
	return b
}

// Since returns the observations b holds that earlier, a scrape of the
// same histogram before it, did not.
func (b Buckets) Since(earlier Buckets) Buckets {
	out := Buckets{Upper: b.Upper, Cumulative: slices.Clone(b.Cumulative)}
	if slices.Equal(b.Upper, earlier.Upper) {
		for i := range out.Cumulative {
			out.Cumulative[i] -= earlier.Cumulative[i]
		}
	}
	return out
}

// LabelValues lists the values the label takes in the family name,
// sorted, each once.
func (f Families) LabelValues(name, label string) []string {
	var out []string
	for _, m := range f[name].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == label && !slices.Contains(out, l.GetValue()) {
				out = append(out, l.GetValue())
			}
		}
	}
	slices.Sort(out)
	return out
}
