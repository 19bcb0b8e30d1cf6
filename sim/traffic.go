package sim

import (
	"math"
	"math/rand/v2"

	"github.com/churnlab/churnlab/experiments/scenario"
)

// refusedLatency is how long a request takes to fail when no pod takes it:
// a connection refused by a deleted pod, or the balancer's 503 when no pod
// is in rotation.
const refusedLatency = Millisecond

// traffic is the players' game requests: a Poisson stream at the
// scenario's request rate, through the balancer, into each pod's FIFO
// queue. A request's latency is the fixed path latency, Redis, the wait in
// its pod's queue and its own service time; past the client timeout it
// fails.
type traffic struct {
	w           *World
	rng         *rand.Rand
	meanGap     float64 // ns between arrivals
	meanService float64 // ns one request takes on a pod
	fixed       Time    // base latency plus Redis
	timeout     Time
	onArrive    Action
}

func newTraffic(w *World) *traffic {
	wl := w.sc.Workload
	t := &traffic{
		w:           w,
		rng:         w.seed.Stream("traffic"),
		meanGap:     float64(Second) / wl.RequestRate.PerSecond(),
		meanService: float64(Second) / wl.PodCapacity.PerSecond(),
		fixed:       Time(wl.BaseLatency) + redisLatency(wl.RequestRate.PerSecond(), w.sc),
		timeout:     Time(wl.Timeout),
	}
	t.onArrive = t.arrive
	return t
}

// redisLatency is the Redis time of one request: each op waits as in an
// M/M/1 queue, latency/(1-utilization), with utilization capped at 99%.
func redisLatency(requestRate float64, sc *scenario.Scenario) Time {
	r := sc.Workload.Redis
	utilization := requestRate * r.OpsPerRequest / (float64(r.Shards) * r.CapacityPerShard.PerSecond())
	perOp := float64(r.Latency) / (1 - math.Min(utilization, 0.99))
	return Time(perOp * r.OpsPerRequest)
}

func (t *traffic) start() { t.w.eng.At(t.gap(0), t.onArrive, 0) }

func (t *traffic) gap(now Time) Time { return now + Time(t.rng.ExpFloat64()*t.meanGap) }

func (t *traffic) arrive(now Time, _ int64) {
	t.w.eng.At(t.gap(now), t.onArrive, 0)
	p := t.w.lb.pick()
	if p == nil || p.phase != podReady {
		t.w.rec.Request(dur(now), dur(refusedLatency), false)
		return
	}
	service := Time(t.rng.ExpFloat64() * t.meanService)
	begin := max(now, p.queueEnd)
	p.queueEnd = begin + service
	latency := t.fixed + (begin - now) + service
	t.w.rec.Request(dur(now), dur(min(latency, t.timeout)), latency <= t.timeout)
}
