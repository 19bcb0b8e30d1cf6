package metrics

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// SweepColumns is the header of sweep.csv after its first column, which
// is named after the swept parameter's path and holds its values.
var SweepColumns = []string{"reconciles_per_s", "p99_ms", "worst_window_p99_ms", "throttled_429_per_s", "api_p99_ms", "success_ratio", "egress_peak_MBps", "knee"}

// SweepPoint is what one run of a sweep measured.
type SweepPoint struct {
	Value          string  // the parameter's value
	ReconcilesPerS float64 // baseline operator, per replica, whole run
	P99Ms          float64
	WorstP99Ms     float64
	Throttled429PS float64 // 429 answers a second
	APIP99Ms       float64 // the slowest controller's p99 at the API server; 0 with none
	SuccessRatio   float64
	EgressPeakMBps float64
}

// SweepTable is sweep.csv: one simulated run per value of one parameter,
// and which point is the knee.
type SweepTable struct {
	Param  string
	Points []SweepPoint
	Knee   int // index of the first point off the low-load trend; -1 if none
}

// CSV writes t as sweep.csv.
func (t *SweepTable) CSV() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s,%s\n", t.Param, strings.Join(SweepColumns, ","))
	for i, p := range t.Points {
		fmt.Fprintf(&b, "%s,%.3f,%.3f,%.3f,%.3f,%.3f,%.6f,%.3f,%t\n", p.Value, p.ReconcilesPerS, p.P99Ms, p.WorstP99Ms, p.Throttled429PS, p.APIP99Ms, p.SuccessRatio, p.EgressPeakMBps, i == t.Knee)
	}
	return b.Bytes()
}

// ReadSweep reads a sweep.csv written by SweepTable.CSV. A header other
// than the parameter and SweepColumns, a row of the wrong width or a cell
// that is not a number is an error naming the line and column.
func ReadSweep(rd io.Reader) (*SweepTable, error) {
	r := csv.NewReader(rd)
	r.FieldsPerRecord = 1 + len(SweepColumns)
	header, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("sweep.csv: header: %w", err)
	}
	if !slices.Equal(header[1:], SweepColumns) {
		return nil, fmt.Errorf("sweep.csv: header %q, want the parameter then %q", strings.Join(header, ","), strings.Join(SweepColumns, ","))
	}
	t := &SweepTable{Param: header[0], Knee: -1}
	for line := 2; ; line++ {
		row, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("sweep.csv: %w", err)
		}
		p := SweepPoint{Value: row[0]}
		for i, into := range []*float64{&p.ReconcilesPerS, &p.P99Ms, &p.WorstP99Ms, &p.Throttled429PS, &p.APIP99Ms, &p.SuccessRatio, &p.EgressPeakMBps} {
			if *into, err = strconv.ParseFloat(row[1+i], 64); err != nil {
				return nil, fmt.Errorf("sweep.csv:%d: column %s: %q is not a number", line, SweepColumns[i], row[1+i])
			}
		}
		switch row[len(row)-1] {
		case "true":
			t.Knee = len(t.Points)
		case "false":
		default:
			return nil, fmt.Errorf("sweep.csv:%d: column knee: %q, want true or false", line, row[len(row)-1])
		}
		t.Points = append(t.Points, p)
	}
	if len(t.Points) == 0 {
		return nil, fmt.Errorf("sweep.csv: no points")
	}
	return t, nil
}
