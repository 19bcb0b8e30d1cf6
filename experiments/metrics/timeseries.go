package metrics

import (
	"bufio"
	"io"
	"strconv"
	"time"
)

// TimeseriesColumns is the header of timeseries.csv. One row covers one
// Window; t_s is the window's start. An empty cell means not measured.
var TimeseriesColumns = []string{
	"t_s", "requests", "success_ratio", "p99_ms", "egress_bytes",
	"pods_total", "pods_ready", "pods_unhealthy_peak", "pod_starts",
	"apiserver_requests", "apiserver_429", "etcd_elections", "leaderboard_staleness_s",
}

// WriteTimeseries writes timeseries.csv: a header, then one row per window
// from the start of the run to the last observation. Pod gauges carry
// forward through windows in which nothing changed.
func (r *Recorder) WriteTimeseries(w io.Writer) error {
	bw := bufio.NewWriter(w)
	writeRow(bw, TimeseriesColumns)
	podsTotal, podsReady, podsKnown := 0, 0, false
	boardUpdated, boardKnown := time.Duration(0), false
	row := make([]string, len(TimeseriesColumns))
	for i, win := range r.windows {
		if win.podsSeen {
			podsTotal, podsReady, podsKnown = win.podsTotal, win.podsReady, true
		}
		row[0] = strconv.Itoa(i * int(Window.Seconds()))
		row[1] = strconv.FormatInt(win.requests, 10)
		row[2], row[3] = "", ""
		if win.requests > 0 {
			row[2] = strconv.FormatFloat(float64(win.ok)/float64(win.requests), 'f', 4, 64)
			row[3] = strconv.FormatFloat(*quantileMs(win.latency, 99), 'f', 3, 64)
		}
		row[4] = strconv.FormatFloat(win.egressBytes, 'f', 0, 64)
		row[5], row[6], row[7] = "", "", ""
		if podsKnown {
			row[5] = strconv.Itoa(podsTotal)
			row[6] = strconv.Itoa(podsReady)
			row[7] = strconv.Itoa(max(win.unhealthyPeak, podsTotal-podsReady))
		}
		row[8] = strconv.FormatInt(win.podStarts, 10)
		row[9], row[10], row[11], row[12] = "", "", "", ""
		if r.controlPlane {
			row[9] = strconv.FormatInt(win.apiRequests, 10)
			row[10] = strconv.FormatInt(win.api429, 10)
		}
		if r.etcd {
			row[11] = strconv.FormatInt(win.elections, 10)
		}
		if win.boardSeen {
			boardUpdated, boardKnown = win.boardUpdated, true
		}
		if boardKnown { // staleness at the window's end
			row[12] = strconv.FormatFloat((time.Duration(i+1)*Window - boardUpdated).Seconds(), 'f', 3, 64)
		}
		writeRow(bw, row)
	}
	return bw.Flush()
}

func writeRow(w *bufio.Writer, cells []string) {
	for i, c := range cells {
		if i > 0 {
			w.WriteByte(',')
		}
		w.WriteString(c)
	}
	w.WriteByte('\n')
}
