package metrics

import (
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Window is the length of one time-series row.
const Window = time.Second

// Latencies are recorded in microseconds, from 1 µs to one hour.
const (
	maxLatencyMicros = int64(time.Hour / time.Microsecond)
	runSigFigs       = 3 // whole-run percentiles: within 0.1%
	windowSigFigs    = 2 // per-window p99: within 1%, at a tenth of the memory
)

// Recorder accumulates one run's observations. It is not safe for
// concurrent use; a live runner feeds it from one goroutine.
type Recorder struct {
	requests        *hdrhistogram.Histogram
	requestsOK      int64
	timeToConfig    *hdrhistogram.Histogram
	propagation     *hdrhistogram.Histogram
	podStarts       int64
	podStartBytes   float64
	restarts        int64
	windows         []window
	podsTotal       int
	podsReady       int
	unhealthyPeak   int
	podsEverTracked bool

	controlPlane  bool // the API server was observed
	etcd          bool // and etcd (not on a cluster whose etcd is out of reach)
	apiRequests   int64
	api429        int64
	etcdRequests  *hdrhistogram.Histogram
	etcdRounds    *hdrhistogram.Histogram
	elections     int64
	leaderboard   bool // the leaderboard was observed
	boardUpdated  time.Duration
	boardMaxGap   time.Duration
	boardFrozen   time.Duration
	boardFrozenAt time.Duration        // a gap longer than this is a freeze
	clients       map[string]*apiTally // per controller (clients.go)
	levels        map[string]*apiTally // per APF priority level
}

type window struct {
	requests, ok  int64
	latency       *hdrhistogram.Histogram // nil until the window has a request
	egressBytes   float64
	podStarts     int64
	podsTotal     int
	podsReady     int
	unhealthyPeak int
	podsSeen      bool // a Pods call landed in this window
	apiRequests   int64
	api429        int64
	elections     int64
	boardUpdated  time.Duration // the leaderboard's last update in or before this window
	boardSeen     bool
	etcdRounds    *hdrhistogram.Histogram // nil until the window has a round
	levels        map[string]*levelWindow // nil until a request of a level lands
}

// NewRecorder returns an empty recorder.
func NewRecorder() *Recorder {
	return &Recorder{
		requests:     newLatencyHistogram(runSigFigs),
		timeToConfig: newLatencyHistogram(runSigFigs),
		propagation:  newLatencyHistogram(runSigFigs),
		etcdRequests: newLatencyHistogram(runSigFigs),
		etcdRounds:   newLatencyHistogram(runSigFigs),
	}
}

func newLatencyHistogram(sigFigs int) *hdrhistogram.Histogram {
	return hdrhistogram.New(1, maxLatencyMicros, sigFigs)
}

// micros converts d for a histogram, clamped to its range.
func micros(d time.Duration) int64 {
	return min(max(int64(d/time.Microsecond), 1), maxLatencyMicros)
}

// at returns the window holding time t (since the run started), growing
// the series as needed.
func (r *Recorder) at(t time.Duration) *window {
	i := int(max(t, 0) / Window)
	for len(r.windows) <= i {
		r.windows = append(r.windows, window{})
	}
	return &r.windows[i]
}

// Request records one game request that started at start and took
// latency. Failed requests count too, at the time they took to fail, as
// vegeta reports them.
func (r *Recorder) Request(start, latency time.Duration, ok bool) {
	r.Requests(start, latency, ok, 1)
}

// Requests records n game requests that started in the window of start
// and each took latency: a simulator's aggregate of identical requests.
func (r *Recorder) Requests(start, latency time.Duration, ok bool, n int64) {
	if n <= 0 {
		return
	}
	us := micros(latency)
	_ = r.requests.RecordValues(us, n) // in range by construction
	w := r.at(start)
	w.requests += n
	if w.latency == nil {
		w.latency = newLatencyHistogram(windowSigFigs)
	}
	_ = w.latency.RecordValues(us, n)
	if ok {
		r.requestsOK += n
		w.ok += n
	}
}

// APIRequest records one request to kube-apiserver at time at, and
// whether it was answered 429.
func (r *Recorder) APIRequest(at time.Duration, throttled bool) {
	var n429 int64
	if throttled {
		n429 = 1
	}
	r.APIRequests(at, 1, n429)
}

// EtcdRequest records how long etcd took to answer one request.
func (r *Recorder) EtcdRequest(latency time.Duration) {
	r.controlPlane, r.etcd = true, true
	_ = r.etcdRequests.RecordValue(micros(latency))
}

// EtcdRound records one etcd leader round (heartbeat to quorum) started
// at, and whether it overran the election timeout and so caused an
// election.
func (r *Recorder) EtcdRound(at, latency time.Duration, election bool) {
	r.controlPlane, r.etcd = true, true
	us := micros(latency)
	_ = r.etcdRounds.RecordValue(us)
	w := r.at(at)
	if w.etcdRounds == nil {
		w.etcdRounds = newLatencyHistogram(windowSigFigs)
	}
	_ = w.etcdRounds.RecordValue(us)
	if election {
		r.elections++
		w.elections++
	}
}

// LeaderboardUpdated records that the leaderboard was published at time
// at. A gap between updates longer than frozenAfter counts as a freeze.
func (r *Recorder) LeaderboardUpdated(at, frozenAfter time.Duration) {
	r.leaderboard, r.boardFrozenAt = true, frozenAfter
	r.boardGap(at)
	r.boardUpdated = at
	w := r.at(at)
	w.boardUpdated, w.boardSeen = at, true
}

// boardGap accounts for the time from the last leaderboard update to t.
func (r *Recorder) boardGap(t time.Duration) {
	gap := t - r.boardUpdated
	r.boardMaxGap = max(r.boardMaxGap, gap)
	if gap > r.boardFrozenAt {
		r.boardFrozen += gap
	}
}

// Egress records bytes sent over the config uplink evenly between from and
// to, split across the windows they span.
func (r *Recorder) Egress(from, to time.Duration, bytes float64) {
	if to <= from {
		r.at(from).egressBytes += bytes
		return
	}
	rate := bytes / float64(to-from)
	for t := from; t < to; {
		end := min((t/Window+1)*Window, to)
		r.at(t).egressBytes += rate * float64(end-t)
		t = end
	}
}

// PodConfigLoaded records that a pod started during the run (created by
// autoscaling or to replace a deleted pod) has its config, timeToConfig
// after it was created, at a cost of uplinkBytes on the config uplink.
func (r *Recorder) PodConfigLoaded(at, timeToConfig time.Duration, uplinkBytes float64) {
	_ = r.timeToConfig.RecordValue(micros(timeToConfig))
	r.podStarts++
	r.podStartBytes += uplinkBytes
	r.at(at).podStarts++
}

// PodRestarted records that a pod was deleted to be replaced (a restart
// storm, a rolling update, a kill), as opposed to scaled away.
func (r *Recorder) PodRestarted() { r.restarts++ }

// ConfigPropagated records that a pod received a config change delay
// after it was written.
func (r *Recorder) ConfigPropagated(delay time.Duration) {
	_ = r.propagation.RecordValue(micros(delay))
}

// Pods records, at time at, how many game pods exist and how many of them
// are ready to serve. A pod that exists but is not ready is unhealthy.
func (r *Recorder) Pods(at time.Duration, total, ready int) {
	w := r.at(at)
	// The previous state held until now, so it counts in this window too.
	w.unhealthyPeak = max(w.unhealthyPeak, r.podsTotal-r.podsReady, total-ready)
	r.podsTotal, r.podsReady, r.podsEverTracked = total, ready, true
	w.podsTotal, w.podsReady, w.podsSeen = total, ready, true
	r.unhealthyPeak = max(r.unhealthyPeak, total-ready)
}

// APIRequests records requests to kube-apiserver in the window of at,
// throttled of them answered 429: a live run's scrape of the counters.
func (r *Recorder) APIRequests(at time.Duration, requests, throttled int64) {
	r.controlPlane = true
	w := r.at(at)
	r.apiRequests += requests
	w.apiRequests += requests
	r.api429 += throttled
	w.api429 += throttled
}

// Elections records n etcd leader elections in the window of at, as a
// live run's scrape counts them; their durations are not known.
func (r *Recorder) Elections(at time.Duration, n int64) {
	r.controlPlane, r.etcd = true, true
	r.elections += n
	r.at(at).elections += n
}
