package sim

import (
	"math"
	"math/rand/v2"

	"github.com/churnlab/churnlab/experiments/scenario"
)

// refusedLatency is how long a request takes to fail when no pod takes it:
// a connection refused by a deleted pod, a pod without config, a pod
// shedding load with a 503, or the balancer's 503 when no pod is in
// rotation.
const refusedLatency = Millisecond

// traffic is the players' game requests, through the balancer into each
// pod's FIFO queue. A request's latency is the fixed path latency, Redis,
// the wait in its pod's queue and its own service time. A pod whose queue
// holds more than model.pods.maxQueue of work sheds the request; past the
// client timeout a request fails. A failed request is retried by the
// player after model.players.retryDelay, up to model.players.retries
// times, and every try counts, as vegeta counts them.
//
// Two models share these rules: perRequest makes every request an event;
// aggregate advances every pod's queue in fixed steps and records
// latencies at quantiles of each step's sojourn distribution (of an
// E_k/M/1 queue, see roundRobinQueue). A
// test holds the two within 5% on p99.
type traffic struct {
	w          *World
	rng        *rand.Rand
	rate       float64 // fresh requests per second
	mu         float64 // requests per second one pod serves
	base       Time
	timeout    Time
	maxQueue   Time
	retries    int
	retryDelay Time
	redis      redis
	onArrive   Action
	step       Time
	retryDue   [][]float64 // [attempt][step % ring]: retries of that attempt arriving in that step
	ring       int
	carry      []float64 // fractional requests carried per latency bin
	failCarry  float64
	success    [2]counts // this second's and the last second's outcomes
	sojourn    roundRobinQueue
	successSec int64
}

type counts struct{ ok, total float64 }

func newTraffic(w *World) *traffic {
	wl, m := w.sc.Workload, w.sc.Model
	t := &traffic{
		w:          w,
		rng:        w.seed.Stream("traffic"),
		rate:       wl.RequestRate.PerSecond(),
		mu:         wl.PodCapacity.PerSecond(),
		base:       Time(wl.BaseLatency),
		timeout:    Time(wl.Timeout),
		maxQueue:   Time(m.Pods.MaxQueue),
		retries:    m.Players.Retries,
		retryDelay: Time(m.Players.RetryDelay),
		redis:      newRedis(w.sc),
	}
	t.onArrive = t.arrive
	if m.Traffic.Mode == "aggregate" {
		t.step = Time(m.Traffic.Step)
		t.ring = int((t.timeout+t.retryDelay+refusedLatency)/t.step) + 2
		t.retryDue = make([][]float64, t.retries)
		for i := range t.retryDue {
			t.retryDue[i] = make([]float64, t.ring)
		}
		t.carry = make([]float64, len(sojournBins))
	}
	return t
}

func (t *traffic) start() {
	if t.step > 0 {
		t.w.eng.At(0, t.advance, 0)
		return
	}
	t.w.eng.At(t.gap(0), t.onArrive, 0)
}

// outcome counts requests toward the recent success ratio.
func (t *traffic) outcome(now Time, n float64, ok bool) {
	if sec := int64(now / Second); sec != t.successSec {
		if sec == t.successSec+1 {
			t.success[1] = t.success[0]
		} else {
			t.success[1] = counts{}
		}
		t.success[0], t.successSec = counts{}, sec
	}
	t.success[0].total += n
	if ok {
		t.success[0].ok += n
	}
}

// successRatio is the share of requests that succeeded in the last whole
// second (1 before any).
func (t *traffic) successRatio() float64 {
	if c := t.success[1]; c.total > 0 {
		return c.ok / c.total
	}
	return 1
}

// redis is the shared Redis: each op's latency is the M/M/1 response time
// at the op rate of the last second, latency/(1-utilization), with
// utilization capped at 99%.
type redis struct {
	opsPerRequest float64
	capacity      float64 // ops per second, all shards
	latency       float64 // ns per op with no load
	perRequest    Time    // current Redis time of one request
	ops           float64 // ops in the current second
	second        int64
}

func newRedis(sc *scenario.Scenario) redis {
	r := sc.Workload.Redis
	rd := redis{
		opsPerRequest: r.OpsPerRequest,
		capacity:      float64(r.Shards) * r.CapacityPerShard.PerSecond(),
		latency:       float64(r.Latency),
	}
	rd.perRequest = rd.at(sc.Workload.RequestRate.PerSecond() * r.OpsPerRequest)
	return rd
}

func (r *redis) at(opsPerSecond float64) Time {
	utilization := math.Min(opsPerSecond/r.capacity, 0.99)
	return Time(r.latency / (1 - utilization) * r.opsPerRequest)
}

// served counts n requests reaching Redis at now.
func (r *redis) served(now Time, n float64) {
	if sec := int64(now / Second); sec != r.second {
		elapsed := float64(sec - r.second)
		r.perRequest = r.at(r.ops / elapsed)
		r.ops, r.second = 0, sec
	}
	r.ops += n * r.opsPerRequest
}

// --- per request ---

func (t *traffic) gap(now Time) Time { return now + Time(t.rng.ExpFloat64()*float64(Second)/t.rate) }

// arrive is one try of a request; attempt counts earlier tries.
func (t *traffic) arrive(now Time, attempt int64) {
	if attempt == 0 {
		t.w.eng.At(t.gap(now), t.onArrive, 0)
	}
	p := t.w.lb.pick()
	if p == nil || p.phase != podReady || p.queueEnd-now > t.maxQueue {
		t.fail(now, refusedLatency, attempt)
		return
	}
	service := Time(t.rng.ExpFloat64() * float64(Second) / t.mu)
	begin := max(now, p.queueEnd)
	p.queueEnd = begin + service
	t.redis.served(now, 1)
	latency := t.base + t.redis.perRequest + (begin - now) + service
	if latency > t.timeout {
		t.fail(now, t.timeout, attempt)
		return
	}
	t.w.rec.Request(dur(now), dur(latency), true)
	t.outcome(now, 1, true)
}

func (t *traffic) fail(now, latency Time, attempt int64) {
	t.w.rec.Request(dur(now), dur(latency), false)
	t.outcome(now, 1, false)
	if int(attempt) < t.retries {
		t.w.eng.At(now+latency+t.retryDelay, t.onArrive, attempt+1)
	}
}

// --- aggregate ---

// roundRobinQueue gives the sojourn of one pod's queue behind the
// round-robin balancer. Round robin over k pods turns Poisson arrivals
// into Erlang-k arrivals at each pod, much smoother than Poisson, so each
// pod is an E_k/M/1 queue. Its sojourn is exponential with rate
// mu(1-sigma), where sigma is the root in (0,1) of
// sigma = (1 + (1-sigma)/(k rho))^-k (Kleinrock, Queueing Systems I,
// 6.4); sigma = rho for k = 1, the M/M/1 case. The last root is kept,
// since steps repeat the same k and rho.
type roundRobinQueue struct {
	k           int
	rho, result float64
}

func (q *roundRobinQueue) sigma(k int, rho float64) float64 {
	if k == q.k && rho == q.rho {
		return q.result
	}
	sigma := rho
	for range 200 {
		next := math.Pow(1+(1-sigma)/(float64(k)*rho), -float64(k))
		if math.Abs(next-sigma) < 1e-9 {
			sigma = next
			break
		}
		sigma = next
	}
	q.k, q.rho, q.result = k, rho, sigma
	return sigma
}

// sojournBins split an exponential sojourn's distribution into slices of
// probability, each recorded at its middle quantile; they are finest in
// the tail, where p99 is read.
var sojournBins = func() []struct{ weight, quantile float64 } {
	edges := []float64{0, 0.25, 0.5, 0.75, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999, 1}
	bins := make([]struct{ weight, quantile float64 }, len(edges)-1)
	for i := range bins {
		u := (edges[i] + edges[i+1]) / 2
		if i == len(bins)-1 {
			u = 0.9995
		}
		bins[i].weight, bins[i].quantile = edges[i+1]-edges[i], -math.Log(1-u)
	}
	return bins
}()

// advance runs one step of the aggregate model.
func (t *traffic) advance(now Time, _ int64) {
	t.w.eng.At(now+t.step, t.advance, 0)
	slot := int(now/t.step) % t.ring
	tries := make([]float64, t.retries+1) // by attempt
	tries[0] = t.rate * t.step.Seconds()
	for a := range t.retryDue {
		tries[a+1], t.retryDue[a][slot] = t.retryDue[a][slot], 0
	}
	rotation := t.w.lb.rotation
	if len(rotation) == 0 {
		for a, n := range tries {
			t.failMany(now, refusedLatency, n, a)
		}
		return
	}
	total := 0.0
	for a := 0; a <= t.retries; a++ {
		total += tries[a]
	}
	share := total / float64(len(rotation))
	// The share of tries of each attempt, to retry failures at the next.
	attemptShare := make([]float64, t.retries+1)
	for a := range attemptShare {
		attemptShare[a] = tries[a] / total
	}
	idle := 0 // ready pods with no backlog: identical, recorded together
	for _, p := range rotation {
		switch {
		case p.phase != podReady:
			t.failSpread(now, refusedLatency, share, attemptShare)
		case p.backlog > t.maxQueue: // shed, while the queue drains
			t.failSpread(now, refusedLatency, share, attemptShare)
			p.backlog = max(0, p.backlog-t.step)
		case p.backlog == 0 && share < t.mu*t.step.Seconds():
			idle++
		default:
			t.serve(now, p.backlog, share, 1, attemptShare)
			p.backlog = max(0, p.backlog+Time(share/t.mu*float64(Second))-t.step)
		}
	}
	if idle > 0 {
		t.serve(now, 0, share, idle, attemptShare)
	}
}

// serve records share requests arriving at each of pods pods whose
// backlog is backlog, with the sojourn of the pod's queue at the step's
// utilization.
func (t *traffic) serve(now, backlog Time, share float64, pods int, attemptShare []float64) {
	n := share * float64(pods)
	t.redis.served(now, n)
	utilization := math.Min(share/(t.mu*t.step.Seconds()), 0.99)
	mean := float64(Second) / (t.mu * (1 - t.sojourn.sigma(len(t.w.lb.rotation), utilization)))
	fixed := t.base + t.redis.perRequest + backlog
	for i, b := range sojournBins {
		latency := fixed + Time(b.quantile*mean)
		ok := latency <= t.timeout
		if !ok {
			t.failSpread(now, t.timeout, n*b.weight, attemptShare)
			continue
		}
		t.carry[i] += n * b.weight
		whole := math.Floor(t.carry[i])
		t.carry[i] -= whole
		t.w.rec.Requests(dur(now), dur(latency), true, int64(whole))
		t.outcome(now, n*b.weight, true)
	}
}

// failSpread fails n tries made up of attempts in attemptShare.
func (t *traffic) failSpread(now, latency Time, n float64, attemptShare []float64) {
	for a, s := range attemptShare {
		if s > 0 {
			t.failMany(now, latency, n*s, a)
		}
	}
}

// failMany fails n tries of the given attempt and schedules their retries.
func (t *traffic) failMany(now, latency Time, n float64, attempt int) {
	t.failCarry += n
	whole := math.Floor(t.failCarry)
	t.failCarry -= whole
	t.w.rec.Requests(dur(now), dur(latency), false, int64(whole))
	t.outcome(now, n, false)
	if attempt < t.retries {
		due := now + latency + t.retryDelay
		t.retryDue[attempt][int(due/t.step)%t.ring] += n
	}
}
