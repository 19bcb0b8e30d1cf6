package metrics

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Timeseries is a timeseries.csv read back: one slice per column, a row
// per window, NaN where a cell is empty (not measured).
type Timeseries struct {
	columns map[string][]float64
	rows    int
}

// ReadTimeseries reads a timeseries.csv written by WriteTimeseries. A
// header that differs from TimeseriesColumns, a row of the wrong width or
// a cell that is not a number is an error naming the line and column.
func ReadTimeseries(rd io.Reader) (*Timeseries, error) {
	r, err := csvWithHeader(rd, "timeseries.csv", TimeseriesColumns)
	if err != nil {
		return nil, err
	}
	ts := &Timeseries{columns: map[string][]float64{}}
	for line := 2; ; line++ {
		row, err := r.Read()
		if err == io.EOF {
			return ts, nil
		}
		if err != nil {
			return nil, fmt.Errorf("timeseries.csv: %w", err)
		}
		for i, cell := range row {
			v := math.NaN()
			if cell != "" {
				if v, err = strconv.ParseFloat(cell, 64); err != nil {
					return nil, fmt.Errorf("timeseries.csv:%d: column %s: %q is not a number", line, TimeseriesColumns[i], cell)
				}
			}
			ts.columns[TimeseriesColumns[i]] = append(ts.columns[TimeseriesColumns[i]], v)
		}
		ts.rows++
	}
}

// Len is the number of windows.
func (ts *Timeseries) Len() int { return ts.rows }

// Column returns one column by its header name (nil for an unknown one).
func (ts *Timeseries) Column(name string) []float64 { return ts.columns[name] }

// Value returns the summary's value at a dotted key path of summary.json,
// such as "requests.p99_ms"; nil when the run did not measure it. An
// unknown path is an error.
func (s *Summary) Value(path string) (*float64, error) {
	data, err := json.Marshal(s)
	if err != nil {
		return nil, err
	}
	var node any
	if err := json.Unmarshal(data, &node); err != nil {
		return nil, err
	}
	for _, key := range strings.Split(path, ".") {
		obj, ok := node.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("summary.json has no key %q: %q is not an object", path, key)
		}
		if node, ok = obj[key]; !ok {
			return nil, fmt.Errorf("summary.json has no key %q", path)
		}
	}
	switch v := node.(type) {
	case nil:
		return nil, nil
	case float64:
		return &v, nil
	default:
		return nil, fmt.Errorf("summary.json key %q is not a number", path)
	}
}

// SummaryKeys lists every numeric key path of summary.json, for errors
// that name what an unknown one could have been.
func SummaryKeys() []string {
	var keys []string
	var walk func(prefix string, node any)
	walk = func(prefix string, node any) {
		obj, ok := node.(map[string]any)
		if !ok {
			keys = append(keys, prefix)
			return
		}
		for k, v := range obj {
			switch {
			case prefix == "" && (k == "scenario" || k == "mode" || k == "system"):
				continue
			case prefix == "" && (k == "controllers" || k == "priority_levels"):
				// Keyed by the run's names, whose keys are those of APIStats.
				keys = append(keys, k+".<name>.requests", k+".<name>.throttled_429", k+".<name>.p99_ms", k+".<name>.queue_wait_p99_ms")
				continue
			}
			p := k
			if prefix != "" {
				p = prefix + "." + k
			}
			walk(p, v)
		}
	}
	data, _ := json.Marshal(&Summary{})
	var node any
	_ = json.Unmarshal(data, &node)
	walk("", node)
	slices.Sort(keys)
	return keys
}

// LevelSeries is a priority-levels.csv read back: for each priority level,
// the windows it saw a request or a seat in, in order.
type LevelSeries map[string]*LevelWindows

// LevelWindows is one level's rows: the window's start (s), requests, 429
// answers and peak seats in use.
type LevelWindows struct {
	T, Requests, Throttled429, SeatsPeak []float64
}

// ReadLevelSeries reads a priority-levels.csv written by
// WriteLevelSeries. A header that differs from LevelSeriesColumns, a row
// of the wrong width or a cell that is not a number is an error naming
// the line and column.
func ReadLevelSeries(rd io.Reader) (*LevelSeries, error) {
	r, err := csvWithHeader(rd, "priority-levels.csv", LevelSeriesColumns)
	if err != nil {
		return nil, err
	}
	ls := LevelSeries{}
	for line := 2; ; line++ {
		row, err := r.Read()
		if err == io.EOF {
			return &ls, nil
		}
		if err != nil {
			return nil, fmt.Errorf("priority-levels.csv: %w", err)
		}
		var v [4]float64
		for i, col := range []int{0, 2, 3, 4} {
			if v[i], err = strconv.ParseFloat(row[col], 64); err != nil {
				return nil, fmt.Errorf("priority-levels.csv:%d: column %s: %q is not a number", line, LevelSeriesColumns[col], row[col])
			}
		}
		lw := ls[row[1]]
		if lw == nil {
			lw = &LevelWindows{}
			ls[row[1]] = lw
		}
		lw.T = append(lw.T, v[0])
		lw.Requests = append(lw.Requests, v[1])
		lw.Throttled429 = append(lw.Throttled429, v[2])
		lw.SeatsPeak = append(lw.SeatsPeak, v[3])
	}
}

// csvWithHeader reads file's header from rd and returns the reader of its
// rows, each as wide as columns; a header other than columns is an error.
func csvWithHeader(rd io.Reader, file string, columns []string) (*csv.Reader, error) {
	r := csv.NewReader(rd)
	r.FieldsPerRecord = len(columns)
	header, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("%s: header: %w", file, err)
	}
	if !slices.Equal(header, columns) {
		return nil, fmt.Errorf("%s: header %q, want %q", file, strings.Join(header, ","), strings.Join(columns, ","))
	}
	return r, nil
}
