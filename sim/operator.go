package sim

import "github.com/churnlab/churnlab/experiments/scenario"

// operator is the Veltrix-like baseline operator (F4, F9, F11, T2, T3),
// as the real one in baseline/ behaves. Every replica runs the per-pod
// reconcile loop for every pod: each interval it lists the config objects
// (and makes its other calls), through its client's rate limiter, into
// kube-apiserver. A pod that (re)starts is handled by one replica, which
// reloads every config object with one GET each, PATCHes the pod's bundle
// annotation, sends the pod the whole bundle, and so makes a new config
// generation (F4). A reconcile that finds its pod on an older generation
// PATCHes and sends it the whole bundle again: during churn, every pod
// gets the bundle every time it is reconciled (F5, F6). A config change
// reaches the pods the same way: a replica's LIST finds it and the
// replica reloads every object, holding its other reconciles meanwhile.
type operator struct {
	w                 *World
	replicas          []*operatorReplica
	controller        bool // the reconcile loop runs (T3 switches it off)
	interval          Time
	reads             int // reads per reconcile; the first lists every config object
	writes            int // writes per reconcile
	objects           int
	objectSize        float64
	reloadParallelism int
	client            *apiClient // the operator's service account, as APF sees it
	reconciles        []int64    // completed in each second, across replicas
	generation        int        // of the config the operator holds
	changes           int        // config changes so far
	lastChange        configChange
	send              func(now Time, p *pod, done func(Time)) // sends p its bundle over the uplink
}

// configChange is the last config change, for measuring its propagation.
type configChange struct {
	generation int // the first that carries it; 0 until a reload reads it
	at         Time
	hunts      []bool
}

type operatorReplica struct {
	// With workers set, at most that many of its reconciles run at once;
	// a pod due meanwhile waits in its work queue, once (as
	// controller-runtime's MaxConcurrentReconciles and client-go's
	// workqueue). Zero runs every pod's loop on its own.
	workers       int
	busy          int
	queue         []queuedReconcile
	limiter       tokenBucket
	stopped       bool         // scaled away
	loaded        int          // config changes its last load of the objects saw
	changeWaiters []func(Time) // its reconciles waiting for its reload of a config change
}

func newOperator(w *World) *operator {
	b, m := w.sc.Baseline, w.sc.Model
	o := &operator{
		w:                 w,
		controller:        b.Controller,
		interval:          Time(b.ReconcileInterval),
		writes:            m.Operator.WritesPerReconcile,
		reads:             b.APICallsPerReconcile - m.Operator.WritesPerReconcile,
		objects:           w.sc.Config.Objects,
		objectSize:        float64(w.sc.Config.TotalSize) / float64(w.sc.Config.Objects),
		reloadParallelism: b.ReloadParallelism,
		client:            w.api.client("veltrix-operator", b.PriorityLevel, "veltrix-operator"),
	}
	o.scale(0, b.Replicas)
	return o
}

// scale sets the number of running replicas. A new replica starts the
// reconcile loop of every existing pod.
func (o *operator) scale(now Time, replicas int) {
	live := o.live()
	for len(live) > replicas {
		live[len(live)-1].stopped = true
		live = live[:len(live)-1]
	}
	b := o.w.sc.Baseline
	for n := len(live); n < replicas; n++ {
		r := &operatorReplica{workers: b.Workers, limiter: *newTokenBucket(b.ClientQPS, b.ClientBurst, now)}
		o.replicas = append(o.replicas, r)
		if now > 0 {
			for _, p := range o.w.cluster.pods {
				o.loop(now, r, p)
			}
		}
	}
}

func (o *operator) live() []*operatorReplica {
	var out []*operatorReplica
	for _, r := range o.replicas {
		if !r.stopped {
			out = append(out, r)
		}
	}
	return out
}

// watch starts every replica's reconcile loop of a new pod.
func (o *operator) watch(now Time, p *pod) {
	for _, r := range o.replicas {
		if !r.stopped {
			o.loop(now, r, p)
		}
	}
}

// loop runs r's reconcile of p every interval, at p's offset, until p or
// r is gone. A reconcile that overruns the interval is followed at once
// by the next.
func (o *operator) loop(now Time, r *operatorReplica, p *pod) {
	first := p.reconcile
	if now > first {
		first += (now - first + o.interval - 1) / o.interval * o.interval
	}
	var tick Action
	tick = func(due Time, _ int64) {
		if p.phase == podGone || r.stopped {
			return
		}
		if !o.controller {
			o.w.eng.At(due+o.interval, tick, 0)
			return
		}
		o.whenWorkerFree(due, r, p, func(start Time, release func(Time)) {
			o.reconcile(start, r, func(end Time) {
				sec := int(end / Second)
				for len(o.reconciles) <= sec {
					o.reconciles = append(o.reconciles, 0)
				}
				o.reconciles[sec]++
				o.sync(end, r, p)
				release(end)
				o.w.eng.At(max(start+o.interval, end), tick, 0)
			})
		})
	}
	o.w.eng.At(first, tick, 0)
}

// queuedReconcile is a pod's reconcile waiting for a worker. A pod has
// one loop per replica, so it waits in a queue at most once.
type queuedReconcile struct {
	p    *pod
	work func(start Time, release func(Time))
}

// whenWorkerFree runs work for p on one of r's workers: at once if r has
// no bound or a worker is free, else when one frees, in the order pods
// became due. work calls release when it is done.
func (o *operator) whenWorkerFree(now Time, r *operatorReplica, p *pod, work func(start Time, release func(Time))) {
	if r.workers == 0 {
		work(now, func(Time) {})
		return
	}
	var release func(Time)
	release = func(end Time) {
		r.busy--
		for r.busy < r.workers && len(r.queue) > 0 {
			next := r.queue[0]
			r.queue = r.queue[1:]
			if next.p.phase != podGone && !r.stopped {
				r.busy++
				next.work(end, release)
			}
		}
	}
	if r.busy < r.workers {
		r.busy++
		work(now, release)
		return
	}
	r.queue = append(r.queue, queuedReconcile{p, work})
}

// sync sends a ready pod the bundle if it holds an older generation, and
// records the propagation of the last config change to it.
func (o *operator) sync(now Time, r *operatorReplica, p *pod) {
	if p.phase != podReady || p.generation >= o.generation {
		return
	}
	from, c := p.generation, o.lastChange
	p.generation = o.generation
	o.push(now, r, p, func(done Time) {
		if c.generation > 0 && from < c.generation && c.generation <= p.generation && c.hunts[p.hunt] && p.phase == podReady {
			o.w.rec.ConfigPropagated(dur(done - c.at))
		}
	})
}

// push PATCHes p's bundle annotation, through r's rate limiter, and sends
// p its bundle; done is called once p has it.
func (o *operator) push(now Time, r *operatorReplica, p *pod, done func(Time)) {
	o.call(now, r, &apiCall{write: true, objects: 1, scanned: 1, resource: "pods",
		onWrite: func(t Time) { o.w.controllers.written(t, "pods", p.node, int64(p.id)) },
		done:    func(t Time, _ bool) { o.send(t, p, done) }})
}

// change rewrites the given hunts' config objects. Nothing is sent yet:
// each replica finds the change in its next reconcile's LIST and reloads
// every object, and the first reload that read the new objects makes the
// generation that carries the change to the pods.
func (o *operator) change(now Time, hunts []int) {
	o.changes++
	o.lastChange = configChange{at: now, hunts: make([]bool, o.w.sc.Config.Hunts)}
	for _, h := range hunts {
		o.lastChange.hunts[h] = true
	}
}

// loadObjects has r GET every config object, baseline.reloadParallelism
// at a time (one after another by default, as calibrated), through its
// rate limiter, which makes a new generation; then it calls done.
func (o *operator) loadObjects(now Time, r *operatorReplica, done func(Time)) {
	changes := o.changes // the objects read are at least this new
	queued, inFlight := o.objects, 0
	var next func(at Time)
	next = func(at Time) {
		for queued > 0 && inFlight < o.reloadParallelism {
			queued--
			inFlight++
			o.call(at, r, &apiCall{objects: 1, scanned: 1, size: o.objectSize, done: func(t Time, _ bool) {
				inFlight--
				next(t)
			}})
		}
		if queued == 0 && inFlight == 0 {
			o.generation++
			r.loaded = max(r.loaded, changes)
			if changes == o.changes && changes > 0 && o.lastChange.generation == 0 {
				o.lastChange.generation = o.generation
			}
			done(at)
		}
	}
	next(now)
}

// reconcile makes one reconcile's calls in turn and then calls done. If
// its LIST finds config changed since r last loaded it, r reloads every
// object first; r's other reconciles wait for that reload.
func (o *operator) reconcile(now Time, r *operatorReplica, done func(Time)) {
	calls := make([]*apiCall, 0, o.reads+o.writes)
	for i := range o.reads {
		c := &apiCall{objects: 1, scanned: 1} // a GET of its own objects
		if i == 0 {                           // a LIST of every config object, from etcd
			c = &apiCall{list: true, objects: o.objects, scanned: o.objects, size: o.objectSize}
		}
		calls = append(calls, c)
	}
	for range o.writes {
		calls = append(calls, &apiCall{write: true, objects: 1, scanned: 1, resource: "pods"})
	}
	var next func(at Time, i int)
	next = func(at Time, i int) {
		if i == 1 && r.loaded < o.changes {
			r.changeWaiters = append(r.changeWaiters, func(t Time) { next(t, i) })
			if len(r.changeWaiters) == 1 {
				o.loadObjects(at, r, func(t Time) {
					waiters := r.changeWaiters
					r.changeWaiters = nil
					for _, w := range waiters {
						w(t)
					}
				})
			}
			return
		}
		if i == len(calls) {
			done(at)
			return
		}
		c := calls[i]
		c.done = func(t Time, _ bool) { next(t, i+1) }
		o.call(at, r, c)
	}
	next(now, 0)
}

// reload has the replica that owns p load every config object, which
// makes a new generation, then sends p the bundle: F4's reload on every
// pod restart. Reloads and reconciles share the replica's rate limiter,
// in the order they ask for tokens.
func (o *operator) reload(now Time, p *pod, done func(Time)) {
	live := o.live()
	if len(live) == 0 {
		return // no operator: the pod waits
	}
	r := live[p.id%len(live)]
	o.loadObjects(now, r, func(at Time) {
		p.generation = o.generation
		o.push(at, r, p, done)
	})
}

// call sends c through r's client rate limiter to the API server.
func (o *operator) call(now Time, r *operatorReplica, c *apiCall) {
	o.w.api.call(now, o.client, &r.limiter, c)
}

// tokenBucket is client-go's client-side rate limiter: qps tokens a
// second up to burst, each request waiting for one in turn.
type tokenBucket struct {
	qps, burst, tokens float64
	last               Time
}

// newTokenBucket is a full bucket at now.
func newTokenBucket(qps scenario.Rate, burst int, now Time) *tokenBucket {
	return &tokenBucket{qps: qps.PerSecond(), burst: float64(burst), tokens: float64(burst), last: now}
}

// reserve takes a token and returns when the request may go.
func (b *tokenBucket) reserve(now Time) Time {
	if now > b.last {
		b.tokens = min(b.burst, b.tokens+(now-b.last).Seconds()*b.qps)
		b.last = now
	}
	b.tokens--
	if b.tokens >= 0 {
		return b.last
	}
	return b.last + Time(-b.tokens/b.qps*float64(Second))
}
