package metrics

import (
	"bufio"
	"io"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// apiTally is what one API client (a controller) or one APF priority
// level saw of the API server.
type apiTally struct {
	requests, throttled int64
	latency, wait       *hdrhistogram.Histogram
	seatsPeak           int
	seatsMeasured       bool
}

func newAPITally() *apiTally {
	return &apiTally{latency: newLatencyHistogram(runSigFigs), wait: newLatencyHistogram(runSigFigs)}
}

// levelWindow is one priority level in one window.
type levelWindow struct {
	requests, throttled int64
	seatsPeak           int
}

func tally(m *map[string]*apiTally, name string) *apiTally {
	if *m == nil {
		*m = map[string]*apiTally{}
	}
	t := (*m)[name]
	if t == nil {
		t = newAPITally()
		(*m)[name] = t
	}
	return t
}

func (r *Recorder) levelAt(at time.Duration, level string) *levelWindow {
	w := r.at(at)
	if w.levels == nil {
		w.levels = map[string]*levelWindow{}
	}
	lw := w.levels[level]
	if lw == nil {
		lw = &levelWindow{}
		w.levels[level] = lw
	}
	return lw
}

// APIClientRequest records a request of client, in APF priority level
// level, dispatched or answered 429 at time at.
func (r *Recorder) APIClientRequest(at time.Duration, client, level string, throttled bool) {
	c, l, lw := tally(&r.clients, client), tally(&r.levels, level), r.levelAt(at, level)
	c.requests++
	l.requests++
	lw.requests++
	if throttled {
		c.throttled++
		l.throttled++
		lw.throttled++
	}
}

// APIClientWait records how long a request of client waited in its
// level's queue before it was dispatched.
func (r *Recorder) APIClientWait(client, level string, wait time.Duration) {
	_ = tally(&r.clients, client).wait.RecordValue(micros(wait))
	_ = tally(&r.levels, level).wait.RecordValue(micros(wait))
}

// APIClientLatency records a request of client answered latency after it
// reached the API server, its queue wait included.
func (r *Recorder) APIClientLatency(client, level string, latency time.Duration) {
	_ = tally(&r.clients, client).latency.RecordValue(micros(latency))
	_ = tally(&r.levels, level).latency.RecordValue(micros(latency))
}

// LevelWaits records the queue waits of level that the API server's
// histogram b (in seconds) counted. Within a bucket the waits are spread
// evenly, as Prometheus's histogram_quantile assumes; those above the
// last finite bound are put at it.
func (r *Recorder) LevelWaits(level string, b Buckets) {
	wait := tally(&r.levels, level).wait
	lower, below := 0.0, 0.0
	for i, upper := range b.Upper {
		n := int64(b.Cumulative[i] - below)
		below = b.Cumulative[i]
		if math.IsInf(upper, 1) {
			if i > 0 && n > 0 {
				_ = wait.RecordValues(micros(seconds(lower)), n)
			}
			break
		}
		// At most bucketPoints points a bucket, each holding its share.
		const bucketPoints = 100
		points := min(n, bucketPoints)
		for j := range points {
			share := n / points
			if j < n%points {
				share++
			}
			at := lower + (upper-lower)*(float64(j)+0.5)/float64(points)
			_ = wait.RecordValues(micros(seconds(at)), share)
		}
		lower = upper
	}
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// LevelSeats records that level had seats in use at time at.
func (r *Recorder) LevelSeats(at time.Duration, level string, seats int) {
	l := tally(&r.levels, level)
	l.seatsPeak, l.seatsMeasured = max(l.seatsPeak, seats), true
	lw := r.levelAt(at, level)
	lw.seatsPeak = max(lw.seatsPeak, seats)
}

// APIStats is summary.json's entry for one controller or priority level.
type APIStats struct {
	Requests       *int64   `json:"requests"`
	Throttled429   *int64   `json:"throttled_429"`
	P99Ms          *float64 `json:"p99_ms"`            // from reaching the API server to the answer
	QueueWaitP99Ms *float64 `json:"queue_wait_p99_ms"` // in the level's queues
	SeatsPeak      *int64   `json:"seats_peak"`        // levels only
}

func (t *apiTally) stats(level bool) APIStats {
	s := APIStats{Requests: ptr(t.requests), Throttled429: ptr(t.throttled),
		P99Ms: quantileMs(t.latency, 99), QueueWaitP99Ms: quantileMs(t.wait, 99)}
	if level && t.seatsMeasured {
		s.SeatsPeak = ptr(int64(t.seatsPeak))
	}
	return s
}

func apiStats(m map[string]*apiTally, level bool) map[string]APIStats {
	if m == nil {
		return nil
	}
	out := make(map[string]APIStats, len(m))
	for name, t := range m {
		out[name] = t.stats(level)
	}
	return out
}

// LevelSeriesColumns is the header of priority-levels.csv: one row per
// window and priority level that saw a request.
var LevelSeriesColumns = []string{"t_s", "level", "requests", "throttled_429", "seats_peak"}

// WriteLevelSeries writes priority-levels.csv, levels in name order
// within each window.
func (r *Recorder) WriteLevelSeries(w io.Writer) error {
	bw := bufio.NewWriter(w)
	writeRow(bw, LevelSeriesColumns)
	for i, win := range r.windows {
		names := make([]string, 0, len(win.levels))
		for name := range win.levels {
			names = append(names, name)
		}
		slices.Sort(names)
		for _, name := range names {
			lw := win.levels[name]
			writeRow(bw, []string{strconv.Itoa(i * int(Window.Seconds())), name,
				strconv.FormatInt(lw.requests, 10), strconv.FormatInt(lw.throttled, 10), strconv.Itoa(lw.seatsPeak)})
		}
	}
	return bw.Flush()
}
