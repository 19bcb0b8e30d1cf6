package sim

import (
	"hash/fnv"
	"math"
	"slices"
)

// The numbers of kube-apiserver 1.34's API Priority and Fairness that no
// scenario sets, each with where it comes from in k8s.io/apiserver@v0.34.4.
const (
	// pkg/util/flowcontrol/apf_controller.go: borrowingAdjustmentPeriod
	// and seatDemandSmoothingCoefficient.
	borrowingPeriod  = 10 * Second
	demandSmoothing  = 0.977
	maxSeatsFraction = 0.15 // apf_controller.go: priorityLevelMaxSeatsPercent
	// pkg/util/flowcontrol/request/config.go and list_work_estimator.go
	// (SizeBasedListCostEstimate, beta and on in 1.34).
	maxListSeats    = 100
	maxMutateSeats  = 10
	bytesPerSeat    = 100_000
	cacheListMemCap = 1_000_000
	watchesPerSeat  = 10
	eventLatency    = 5 * Millisecond
	// pkg/server/filters/priority-and-fairness.go: a request waits in its
	// queue for at most a quarter of its deadline, the default
	// --request-timeout of 60 s.
	queueWaitLimit = 15 * Second
)

// apiServer is kube-apiserver as its clients meet it (F11, T2, T5). With
// priority and fairness on, maxRequestsInflight plus
// maxMutatingRequestsInflight seats are divided among the priority levels
// by their nominal shares; every 10 s each level's limit moves between
// what it may lend and what it may borrow, following the seats its
// requests wanted (borrow). A request takes as many seats as its width:
// one, or for a LIST, one per 100 kB it loads (a watch-cache LIST at most
// 1 MB), capped by its level. It holds them from dispatch until etcd (or
// the watch cache) has answered and the server has done its own work; a
// write whose event goes to many watches holds a few seats 5 ms longer.
// Requests that find too few seats wait in one of their level's queues,
// chosen by shuffle sharding on their flow: the least loaded of the
// flow's hand. A queue at its length limit, a level with no queues, or a
// wait past 15 s answers 429. Queues are served round robin, each
// dispatch waiting until its head fits (the real fair queuing orders
// them by virtual finish time; with requests of like cost that is the
// same rotation).
//
// With priority and fairness off only the two inflight limits apply, to
// reads and to writes, and a request beyond its limit is answered 429 at
// once.
type apiServer struct {
	w          *World
	apf        bool
	levels     []*priorityLevel
	byName     map[string]*priorityLevel
	nominalSum int
	overhead   Time
	objectCost Time
	cacheBW    float64
	retryAfter Time
	downUntil  Time         // an API server restart: nothing is answered before
	held       []func(Time) // calls that arrived while it was down
	// With priority and fairness off:
	readLimit, writeLimit int
	reads, writes         int
	watchers              map[string]int // watches of each resource, for a write's event
}

// priorityLevel is one PriorityLevelConfiguration and its queue set.
type priorityLevel struct {
	name                    string
	exempt                  bool
	nominalCL, minCL, maxCL int
	currentCL               int
	maxSeats                int // a request's widest, from the nominal limit and hand size
	queues                  []queue
	handSize, queueLimit    int
	next                    int // the queue the round robin serves next
	seatsInUse              int
	seatsWaiting            int
	demand                  integrator
	smoothed                float64
}

// queue is one of a level's queues.
type queue struct {
	waiting []*queued
	seats   int // of the requests waiting
}

// queued is a request in its level: its width while it runs, and after
// it for a write's watch events.
type queued struct {
	call         *apiCall
	client       *apiClient
	seats, final int
	arrived      Time
}

// apiClient is one identity calling the API server: a controller replica,
// the operator, the pods' service account.
type apiClient struct {
	name  string // reported per controller
	level *priorityLevel
	flow  uint64 // what the level's flow distinguisher sees
}

// apiCall is one request to kube-apiserver.
type apiCall struct {
	write     bool
	list      bool
	fromCache bool    // the watch cache serves it; etcd is not asked
	selector  bool    // a field or label selector filters it in the server
	objects   int     // returned, or written
	scanned   int     // read to find them
	size      float64 // bytes of each object
	resource  string  // a write's resource, for the watches it wakes
	done      func(now Time, ok bool)
	onWrite   func(now Time) // after a write is applied (its watch event)
}

func newAPIServer(w *World) *apiServer {
	c, m := w.sc.Cluster.APIServer, w.sc.Model.APIServer
	a := &apiServer{
		w: w, apf: c.PriorityAndFairness, byName: map[string]*priorityLevel{},
		overhead: Time(m.Overhead), objectCost: Time(m.ObjectCost), cacheBW: m.CacheReadBandwidth.BytesPerSecond(),
		retryAfter: Time(m.RetryAfter), readLimit: c.MaxRequestsInflight, writeLimit: c.MaxMutatingRequestsInflight,
		watchers: map[string]int{},
	}
	levels := c.PriorityLevels()
	shares := 0
	for _, pl := range levels {
		shares += pl.Shares
	}
	server := float64(c.MaxRequestsInflight + c.MaxMutatingRequestsInflight)
	for _, pl := range levels {
		// apf_controller.go finishQueueSetReconfigsLocked.
		nominal := int(math.Ceil(server * float64(pl.Shares) / float64(max(shares, 1))))
		lendable := int(math.Round(float64(nominal) * float64(pl.LendablePercent) / 100))
		borrowing := int(server)
		if pl.BorrowingLimitPercent != nil {
			borrowing = int(math.Round(float64(nominal) * float64(*pl.BorrowingLimitPercent) / 100))
		}
		l := &priorityLevel{
			name: pl.Name, exempt: pl.Exempt, nominalCL: nominal, minCL: nominal - lendable, maxCL: nominal + borrowing,
			currentCL: nominal, handSize: pl.HandSize, queueLimit: pl.QueueLengthLimit, maxSeats: maxListSeats,
		}
		if pl.Queues > 0 {
			l.queues = make([]queue, pl.Queues)
			l.maxSeats = max(1, min(int(math.Ceil(float64(nominal)*maxSeatsFraction)), nominal/pl.HandSize))
		}
		if !l.exempt {
			a.nominalSum += nominal
		}
		a.levels = append(a.levels, l)
		a.byName[l.name] = l
	}
	return a
}

// start begins the periodic rebalancing of the levels' limits.
func (a *apiServer) start() {
	if a.apf {
		a.w.eng.At(borrowingPeriod, a.borrow, 0)
	}
}

// client returns the identity name of user, whose requests land in level
// and whose flow the level's distinguisher tells apart by flowKey.
func (a *apiServer) client(name, level, flowKey string) *apiClient {
	h := fnv.New64a()
	h.Write([]byte(flowKey))
	return &apiClient{name: name, level: a.byName[level], flow: h.Sum64()}
}

// watch counts a watch on resource for the rest of the run.
func (a *apiServer) watch(resource string) { a.watchers[resource]++ }

// seats is c's width in its level (request/list_work_estimator.go
// seatsBasedOnObjectSize, mutating_work_estimator.go).
func (a *apiServer) seats(l *priorityLevel, c *apiCall) (initial, final int) {
	switch {
	case c.list:
		loaded := c.objects
		if !c.fromCache && c.selector {
			loaded = max(c.objects, c.scanned/2)
		}
		mem := float64(loaded) * c.size
		if c.fromCache {
			mem = min(mem, cacheListMemCap)
		}
		return min(max(1, int(math.Ceil(mem/bytesPerSeat))), l.maxSeats, maxListSeats), 0
	case c.write:
		if n := a.watchers[c.resource]; n >= watchesPerSeat {
			return 1, min(int(math.Ceil(float64(n)/watchesPerSeat)), l.maxSeats, maxMutateSeats)
		}
	}
	return 1, 0
}

// submit admits c from cl, queues it, or answers 429.
func (a *apiServer) submit(now Time, cl *apiClient, c *apiCall) {
	if now < a.downUntil {
		a.held = append(a.held, func(t Time) { a.submit(t, cl, c) })
		return
	}
	if !a.apf {
		a.submitWithoutAPF(now, cl, c)
		return
	}
	l := cl.level
	q := &queued{call: c, client: cl, arrived: now}
	q.seats, q.final = a.seats(l, c)
	// A request wider than the whole limit runs when nothing else does
	// (queueset.go canAccommodateSeatsLocked).
	fits := l.seatsInUse+q.seats <= l.currentCL || l.seatsInUse == 0
	switch {
	case l.exempt || (fits && l.seatsWaiting == 0):
		a.dispatch(now, l, q)
	case len(l.queues) == 0:
		a.reject(now, cl, c)
	default:
		i := a.shuffleShard(l, cl.flow)
		if len(l.queues[i].waiting) >= l.queueLimit {
			a.reject(now, cl, c)
			return
		}
		l.queues[i].waiting = append(l.queues[i].waiting, q)
		l.queues[i].seats += q.seats
		l.seatsWaiting += q.seats
		l.demand.set(now, float64(l.seatsInUse+l.seatsWaiting))
		a.w.eng.At(now+queueWaitLimit, func(t Time, _ int64) { a.timeout(t, l, i, q) }, 0)
	}
}

// shuffleShard deals flow a hand of the level's queues and picks the one
// with the fewest seats waiting (queueset.go shuffleShardLocked).
func (a *apiServer) shuffleShard(l *priorityLevel, flow uint64) int {
	n := len(l.queues)
	hand := make([]int, 0, l.handSize)
	best, h := -1, flow
	for range l.handSize {
		idx := int(h % uint64(n))
		h = h*6364136223846793005 + 1442695040888963407 // the next card
		for slices.Contains(hand, idx) {
			idx = (idx + 1) % n
		}
		hand = append(hand, idx)
		if best < 0 || l.queues[idx].seats < l.queues[best].seats {
			best = idx
		}
	}
	return best
}

// timeout answers q 429 if it is still waiting in queue i.
func (a *apiServer) timeout(now Time, l *priorityLevel, i int, q *queued) {
	k := slices.Index(l.queues[i].waiting, q)
	if k < 0 {
		return // dispatched
	}
	l.queues[i].waiting = slices.Delete(l.queues[i].waiting, k, k+1)
	l.queues[i].seats -= q.seats
	l.seatsWaiting -= q.seats
	l.demand.set(now, float64(l.seatsInUse+l.seatsWaiting))
	a.reject(now, q.client, q.call)
}

// reject answers c 429; its caller retries.
func (a *apiServer) reject(now Time, cl *apiClient, c *apiCall) {
	a.w.rec.APIRequest(dur(now), true)
	a.w.rec.APIClientRequest(dur(now), cl.name, cl.level.name, true)
	c.done(now, false)
}

// dispatch serves q in level l: it holds its seats while the server and
// etcd work, then, for a write whose event goes to many watches, its
// final seats for 5 ms more.
func (a *apiServer) dispatch(now Time, l *priorityLevel, q *queued) {
	cl := q.client
	a.w.rec.APIRequest(dur(now), false)
	a.w.rec.APIClientRequest(dur(now), cl.name, l.name, false)
	a.w.rec.APIClientWait(cl.name, l.name, dur(now-q.arrived))
	l.seatsInUse += q.seats
	l.demand.set(now, float64(l.seatsInUse+l.seatsWaiting))
	a.w.rec.LevelSeats(dur(now), l.name, l.seatsInUse)
	a.serve(now, q.call, func(end Time) {
		held, hold := q.seats, Time(0)
		if q.final > 0 {
			l.seatsInUse += q.final - q.seats
			held, hold = q.final, eventLatency
		}
		a.w.eng.At(end+hold, func(t Time, _ int64) {
			l.seatsInUse -= held
			l.demand.set(t, float64(l.seatsInUse+l.seatsWaiting))
			a.dispatchQueued(t, l)
		}, 0)
		a.w.rec.APIClientLatency(cl.name, l.name, dur(end-q.arrived))
		q.call.done(end, true)
	})
}

// dispatchQueued starts queued requests of l, round robin over its
// queues, while the head of the next queue fits in l's free seats (or
// nothing runs: a request wider than the limit then runs alone).
func (a *apiServer) dispatchQueued(now Time, l *priorityLevel) {
	for l.seatsWaiting > 0 {
		i := l.next
		for len(l.queues[i].waiting) == 0 {
			i = (i + 1) % len(l.queues)
		}
		q := l.queues[i].waiting[0]
		if l.seatsInUse+q.seats > l.currentCL && l.seatsInUse > 0 {
			return
		}
		l.queues[i].waiting = l.queues[i].waiting[1:]
		l.queues[i].seats -= q.seats
		l.seatsWaiting -= q.seats
		l.next = (i + 1) % len(l.queues)
		a.dispatch(now, l, q)
	}
}

// serve does c's work: etcd's (unless the watch cache answers), then the
// server's own, and calls done at its end.
func (a *apiServer) serve(now Time, c *apiCall, done func(Time)) {
	own := a.overhead + a.objectCost*Time(max(c.scanned, c.objects))
	finish := func(t Time) { a.w.eng.At(t+own, func(t Time, _ int64) { done(t) }, 0) }
	switch {
	case c.write:
		a.w.etcd.write(now, func(t Time) {
			if c.onWrite != nil {
				c.onWrite(t)
			}
			finish(t)
		})
	case c.fromCache:
		finish(now + Time(float64(c.objects)*c.size/a.cacheBW*float64(Second)))
	default:
		a.w.etcd.read(now, float64(c.scanned)*c.size, finish)
	}
}

// submitWithoutAPF applies --max-requests-inflight and
// --max-mutating-requests-inflight alone.
func (a *apiServer) submitWithoutAPF(now Time, cl *apiClient, c *apiCall) {
	inflight, limit := &a.reads, a.readLimit
	if c.write {
		inflight, limit = &a.writes, a.writeLimit
	}
	if *inflight >= limit {
		a.reject(now, cl, c)
		return
	}
	a.w.rec.APIRequest(dur(now), false)
	a.w.rec.APIClientRequest(dur(now), cl.name, cl.level.name, false)
	*inflight++
	a.serve(now, c, func(end Time) {
		*inflight--
		a.w.rec.APIClientLatency(cl.name, cl.level.name, dur(end-now))
		c.done(end, true)
	})
}

// restart takes the API server away for d: calls that arrive meanwhile
// wait for it, and then, as their watches broke, every controller
// replica relists.
func (a *apiServer) restart(now Time, d Time) {
	a.downUntil = now + d
	a.w.eng.At(now+d, func(t Time, _ int64) {
		held := a.held
		a.held = nil
		for _, h := range held {
			h(t)
		}
		a.w.controllers.relist(t)
	}, 0)
}

// borrow moves each level's concurrency limit between its lower bound
// (what it keeps when it lends) and its upper bound (what it may borrow),
// in proportion to the seats its requests wanted over the last period
// (apf_controller.go updateBorrowingLocked and conc_alloc.go).
func (a *apiServer) borrow(now Time, _ int64) {
	a.w.eng.At(now+borrowingPeriod, a.borrow, 0)
	remaining := a.nominalSum
	var minSum, minCurrentSum int
	type item struct {
		l                    *priorityLevel
		lower, upper, target float64
		minCurrent           int
	}
	var items []item
	for _, l := range a.levels {
		avg, dev, high := l.demand.reset(now, float64(l.seatsInUse+l.seatsWaiting))
		envelope := avg + dev
		l.smoothed = math.Max(envelope, demandSmoothing*l.smoothed+(1-demandSmoothing)*envelope)
		if l.exempt {
			remaining -= max(l.minCL, int(math.Round(high)))
			continue
		}
		minCurrent := max(l.minCL, min(l.nominalCL, int(math.Round(high))))
		items = append(items, item{l: l, lower: float64(minCurrent), upper: float64(l.maxCL),
			target: math.Max(float64(minCurrent), l.smoothed), minCurrent: minCurrent})
		minSum += l.minCL
		minCurrentSum += minCurrent
	}
	for _, it := range items {
		l := it.l
		switch {
		case remaining <= minSum:
			l.currentCL = l.minCL
		case remaining <= minCurrentSum:
			share := float64(remaining-minSum) / float64(minCurrentSum-minSum)
			l.currentCL = l.minCL + int(math.Round(float64(it.minCurrent-l.minCL)*share))
		}
	}
	if remaining > minCurrentSum {
		// The fair fraction f with the sum of clamp(target*f) at nominalSum.
		alloc := func(f float64, it item) float64 {
			return min(max(math.Max(it.target, 0.001)*f, it.lower), it.upper)
		}
		total := func(f float64) (sum float64) {
			for _, it := range items {
				sum += alloc(f, it)
			}
			return sum
		}
		lo, hi := 0.0, 1.0
		for total(hi) < float64(a.nominalSum) && hi < 1e12 {
			lo, hi = hi, hi*2
		}
		for range 60 {
			if mid := (lo + hi) / 2; total(mid) < float64(a.nominalSum) {
				lo = mid
			} else {
				hi = mid
			}
		}
		for _, it := range items {
			it.l.currentCL = int(math.Round(alloc(hi, it)))
		}
	}
	for _, l := range a.levels {
		if !l.exempt && l.queues != nil {
			a.dispatchQueued(now, l)
		}
	}
}

// call sends c through a client's rate limiter to the API server as cl.
// A 429 is retried after the server's Retry-After, as client-go does; c.done
// is called once, when a try succeeds.
func (a *apiServer) call(now Time, cl *apiClient, limiter *tokenBucket, c *apiCall) {
	var try func(at Time)
	try = func(at Time) {
		a.w.eng.At(limiter.reserve(at), func(t Time, _ int64) {
			attempt := *c
			attempt.done = func(end Time, ok bool) {
				if ok {
					c.done(end, true)
					return
				}
				a.w.eng.At(end+a.retryAfter, func(t Time, _ int64) { try(t) }, 0)
			}
			a.submit(t, cl, &attempt)
		}, 0)
	}
	try(now)
}

// integrator keeps the time-weighted mean, deviation and peak of a value
// over a period (fairqueuing's Integrator, which APF's seat demand uses).
type integrator struct {
	last, start      Time
	value            float64
	sum, sumSq, peak float64
}

func (g *integrator) set(now Time, v float64) {
	g.add(now)
	g.value = v
	g.peak = max(g.peak, v)
}

func (g *integrator) add(now Time) {
	dt := (now - g.last).Seconds()
	g.sum += g.value * dt
	g.sumSq += g.value * g.value * dt
	g.last = now
}

// reset returns the period's mean, deviation and peak, and starts the
// next period at v.
func (g *integrator) reset(now Time, v float64) (avg, dev, peak float64) {
	g.add(now)
	if span := (now - g.start).Seconds(); span > 0 {
		avg = g.sum / span
		dev = math.Sqrt(math.Max(0, g.sumSq/span-avg*avg))
	}
	peak = max(g.peak, v)
	*g = integrator{last: now, start: now, value: v, peak: v}
	return avg, dev, peak
}
