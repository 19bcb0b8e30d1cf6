package sim

import (
	"math"
	"math/rand/v2"
	"slices"

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
	w           *World
	rng         *rand.Rand
	rate        float64 // fresh requests per second
	mu          float64 // requests per second one pod serves
	serviceMean float64 // ns of one request's service
	base        Time
	timeout     Time
	maxQueue    Time
	retries     int
	retryDelay  Time
	warmup      Time
	redis       redis
	onArrive    Action
	step        Time
	retryDue    [][]float64 // [attempt][step % ring]: retries of that attempt arriving in that step
	ring        int
	carry       []float64 // fractional requests carried per latency bin
	failCarry   float64
	success     [2]counts // this second's and the last second's outcomes
	sojourn     roundRobinQueue
	// steadyUtilization is the highest utilization whose steady-state
	// sojourn an idle pod's queue is given: closer to saturation a queue
	// takes longer than a second to reach its steady state (its
	// relaxation time 1/(mu(1-sqrt(rho))^2), Kingman), longer than the
	// balancer's share of load stays put, and the steady state's tail,
	// unbounded at rho = 1, would be recorded for a pod that is not
	// queueing. The per-request model, which makes no such assumption,
	// agrees (TestAggregateMatchesPerRequest).
	steadyUtilization float64
	successSec        int64
	busy              busyPods   // the pods an aggregate step looks at one by one
	holding           bool       // a stall has happened: queued requests are recorded when their service starts
	held              []heldWait // by index; see stall
	freeHeld          []int64    // indexes of held free for reuse
	onBegin           Action
}

// heldWait is requests queued on a pod, recorded once their service
// starts, so that a stall before then delays them.
type heldWait struct {
	p            *pod
	start, begin Time    // arrival; start of service
	fixed        Time    // path latency and Redis, at arrival
	n            float64 // requests
	service      Time    // per-request model: the request's service time
	mean         float64 // aggregate model: mean sojourn in the pod's queue
	attempt      int     // per-request model: earlier tries
	attemptShare []float64
}

type counts struct{ ok, total float64 }

func newTraffic(w *World) *traffic {
	wl, m := w.sc.Workload, w.sc.Model
	t := &traffic{
		w:                 w,
		rng:               w.seed.Stream("traffic"),
		rate:              wl.RequestRate.PerSecond(),
		mu:                wl.PodCapacity.PerSecond(),
		serviceMean:       float64(Second) / wl.PodCapacity.PerSecond(),
		steadyUtilization: math.Pow(1-1/math.Sqrt(wl.PodCapacity.PerSecond()), 2),
		base:              Time(wl.BaseLatency),
		timeout:           Time(wl.Timeout),
		maxQueue:          Time(m.Pods.MaxQueue),
		retries:           m.Players.Retries,
		retryDelay:        Time(m.Players.RetryDelay),
		warmup:            Time(m.Pods.Warmup),
		redis:             newRedis(w.sc),
		holding:           w.delivery.stallsPods(),
	}
	t.onArrive = t.arrive
	t.onBegin = t.begin
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

// outcome counts requests toward the recent success ratio, in the second
// their outcome is known (a held request's when its service starts).
func (t *traffic) outcome(n float64, ok bool) {
	if sec := int64(t.w.eng.Now() / Second); sec != t.successSec {
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
// utilization capped at 99%. A request makes opsPerRequest ops one after
// another, and coldOps more on a pod whose hunt state is cold.
type redis struct {
	opsPerRequest float64
	coldOps       float64
	capacity      float64 // ops per second, all shards
	latency       float64 // ns per op with no load
	perOp         float64 // ns: current latency of one op
	ops           float64 // ops in the current second
	second        int64
}

func newRedis(sc *scenario.Scenario) redis {
	r := sc.Workload.Redis
	rd := redis{
		opsPerRequest: r.OpsPerRequest,
		coldOps:       sc.Model.Pods.ColdOps,
		capacity:      float64(r.Shards) * r.CapacityPerShard.PerSecond(),
		latency:       float64(r.Latency),
	}
	rd.perOp = rd.at(sc.Workload.RequestRate.PerSecond() * r.OpsPerRequest)
	return rd
}

func (r *redis) at(opsPerSecond float64) float64 {
	utilization := math.Min(opsPerSecond/r.capacity, 0.99)
	return r.latency / (1 - utilization)
}

// ops is how many ops a request makes on a cold or a warm pod.
func (r *redis) opsOf(cold bool) float64 {
	if cold {
		return r.opsPerRequest + r.coldOps
	}
	return r.opsPerRequest
}

// served counts n requests reaching Redis at now from cold or warm pods,
// and returns the Redis time of each.
func (r *redis) served(now Time, n float64, cold bool) Time {
	if sec := int64(now / Second); sec != r.second {
		elapsed := float64(sec - r.second)
		r.perOp = r.at(r.ops / elapsed)
		r.ops, r.second = 0, sec
	}
	ops := r.opsOf(cold)
	r.ops += n * ops
	return Time(r.perOp * ops)
}

// configLoaded marks p's hunt state cold for model.pods.warmup from now:
// p has just loaded a config and rebuilt it.
func (t *traffic) configLoaded(now Time, p *pod) {
	p.warmAt = now + t.warmup
	t.busy.warming(p)
}

// joined says p has joined rotation at now.
func (t *traffic) joined(now Time, p *pod) {
	if needsLook(p, now) {
		t.busy.mark(p)
	}
	if now < p.warmAt {
		t.busy.warming(p)
	}
}

// stall blocks p's request loop for d from now (or from the end of a
// stall under way): work that holds the loop, such as unpacking a config
// bundle (T4). Requests already queued wait it out, and new ones keep
// joining the queue: the pod sheds by the length of its queue
// (model.pods.maxQueue of work), and a stall adds no work to it, only
// time. So the requests behind a stall wait up to maxQueue plus the
// stall. Where the delivery can stall pods, queued requests are held and
// recorded when their service starts, so that a stall can still delay
// them; elsewhere they are recorded on arrival, which is faster.
func (t *traffic) stall(now Time, p *pod, d Time) {
	p.stallEnd = max(now, p.stallEnd) + d
	if d > 0 {
		t.busy.mark(p)
	}
	p.queueEnd = max(p.queueEnd, now) + d
	for _, i := range p.held {
		if h := &t.held[i]; h.begin > now {
			h.begin += d
		}
	}
}

// hold keeps h until its service starts.
func (t *traffic) hold(h heldWait) {
	var i int64
	if n := len(t.freeHeld); n > 0 {
		i, t.freeHeld = t.freeHeld[n-1], t.freeHeld[:n-1]
		t.held[i] = h
	} else {
		i = int64(len(t.held))
		t.held = append(t.held, h)
	}
	h.p.held = append(h.p.held, i)
	t.w.eng.At(h.begin, t.onBegin, i)
}

// begin records held requests i once their service starts; a stall since
// they were held has moved that later.
func (t *traffic) begin(now Time, i int64) {
	h := t.held[i]
	if h.begin > now {
		t.w.eng.At(h.begin, t.onBegin, i)
		return
	}
	h.p.held = slices.DeleteFunc(h.p.held, func(j int64) bool { return j == i })
	t.held[i] = heldWait{}
	t.freeHeld = append(t.freeHeld, i)
	wait := h.begin - h.start
	if h.mean == 0 {
		t.record(h.start, h.fixed+wait+h.service, int64(h.attempt))
		return
	}
	t.recordSojourn(h.start, h.fixed+wait, h.mean, h.n, h.attemptShare)
}

// --- per request ---

func (t *traffic) gap(now Time) Time { return now + Time(t.rng.ExpFloat64()*float64(Second)/t.rate) }

// arrive is one try of a request; attempt counts earlier tries.
func (t *traffic) arrive(now Time, attempt int64) {
	if attempt == 0 {
		t.w.eng.At(t.gap(now), t.onArrive, 0)
	}
	p := t.w.lb.pick()
	if p == nil || p.phase != podReady || p.queueEnd-now-p.stalled(now) > t.maxQueue {
		t.fail(now, refusedLatency, attempt)
		return
	}
	service := Time(t.rng.ExpFloat64() * float64(Second) / t.mu)
	begin := max(now, p.queueEnd)
	p.queueEnd = begin + service
	fixed := t.base + t.redis.served(now, 1, now < p.warmAt)
	if t.holding && begin > now {
		t.hold(heldWait{p: p, start: now, begin: begin, fixed: fixed, n: 1, service: service, attempt: int(attempt)})
		return
	}
	t.record(now, fixed+(begin-now)+service, attempt)
}

// record records one try that arrived at start and took latency, a
// failure past the client timeout.
func (t *traffic) record(start, latency Time, attempt int64) {
	if latency > t.timeout {
		t.fail(start, t.timeout, attempt)
		return
	}
	t.w.rec.Request(dur(start), dur(latency), true)
	t.outcome(1, true)
}

func (t *traffic) fail(now, latency Time, attempt int64) {
	t.w.rec.Request(dur(now), dur(latency), false)
	t.outcome(1, false)
	if int(attempt) < t.retries {
		t.w.eng.At(now+latency+t.retryDelay, t.onArrive, attempt+1)
	}
}

// --- aggregate ---

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

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
	// Ready pods with no backlog, warm and cold: identical, recorded
	// together. Under a pod's capacity only the busy pods need a look of
	// their own (busyPods); past it, every pod queues.
	var idle [2]int
	look := func(p *pod) {
		stalled := p.stalled(now)
		work := t.step - min(stalled, t.step) // what the pod serves this step
		switch {
		case p.phase != podReady:
			t.failSpread(now, refusedLatency, share, attemptShare)
		case p.backlog == 0 && stalled == 0 && share < t.mu*t.step.Seconds():
			idle[b2i(now < p.warmAt)]++
		default:
			// A queue of backlog: the step's arrivals join it in turn
			// while it holds at most maxQueue of work, and are shed past
			// that; it drains by the step's work meanwhile.
			room := max(0, t.maxQueue-p.backlog) + work
			accepted := min(share, room.Seconds()*t.mu)
			if shed := share - accepted; shed > 0 {
				t.failSpread(now, refusedLatency, shed, attemptShare)
			}
			arrived := Time(accepted / t.mu * float64(Second))
			grown := max(0, arrived-work) // how much the queue grows over the step
			if accepted > 0 {
				t.serve(now, p, now < p.warmAt, p.backlog+stalled+grown/2, accepted, 1, t.serviceMean, attemptShare)
			}
			p.backlog = max(0, p.backlog+arrived-work)
		}
	}
	if share >= t.mu*t.step.Seconds() {
		for _, p := range rotation {
			look(p)
		}
		t.busy.rebuild(rotation, now)
	} else {
		listed := t.busy.list
		cold := t.busy.idleCold(now)
		idle[0], idle[1] = len(rotation)-len(listed)-cold, cold
		kept := listed[:0]
		for _, p := range listed {
			if !needsLook(p, now) {
				p.busy = false
				idle[b2i(now < p.warmAt)]++
				continue
			}
			look(p)
			kept = append(kept, p)
		}
		clear(listed[len(kept):])
		t.busy.list = kept
	}
	utilization := min(share/(t.mu*t.step.Seconds()), t.steadyUtilization)
	mean := t.serviceMean / (1 - t.sojourn.sigma(len(rotation), utilization))
	for cold, pods := range idle {
		if pods > 0 {
			t.serve(now, nil, cold == 1, 0, share, pods, mean, attemptShare)
		}
	}
}

// serve takes share requests arriving at each of pods pods whose service
// starts after wait, with an exponential sojourn of mean on top: an idle
// pod's queue at the step's utilization, or a busy pod's service time,
// its queue being in wait (its backlog, half what the step adds to it,
// and what is left of a stall). p is the one pod when pods is 1; its
// requests are held if they wait (see stall). cold says the pods' hunt
// state is cold.
func (t *traffic) serve(now Time, p *pod, cold bool, wait Time, share float64, pods int, mean float64, attemptShare []float64) {
	n := share * float64(pods)
	fixed := t.base + t.redis.served(now, n, cold)
	if t.holding && p != nil && wait > 0 {
		t.hold(heldWait{p: p, start: now, begin: now + wait, fixed: fixed, n: n, mean: mean, attemptShare: attemptShare})
		return
	}
	t.recordSojourn(now, fixed+wait, mean, n, attemptShare)
}

// recordSojourn records n requests that arrived at start and waited
// before their service, at quantiles of an exponential sojourn of mean;
// tries past the client timeout fail.
func (t *traffic) recordSojourn(start, before Time, mean, n float64, attemptShare []float64) {
	for i, b := range sojournBins {
		latency := before + Time(b.quantile*mean)
		if latency > t.timeout {
			t.failSpread(start, t.timeout, n*b.weight, attemptShare)
			continue
		}
		t.carry[i] += n * b.weight
		whole := math.Floor(t.carry[i])
		t.carry[i] -= whole
		t.w.rec.Requests(dur(start), dur(latency), true, int64(whole))
		t.outcome(n*b.weight, true)
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
	t.outcome(n, false)
	if attempt < t.retries {
		due := now + latency + t.retryDelay
		t.retryDue[attempt][int(due/t.step)%t.ring] += n
	}
}
