package sim

import (
	"math/rand/v2"

	"github.com/churnlab/churnlab/experiments/scenario"
)

// controllers plays the scenario's declared controllers, and the baseline
// operator (scenario.Operator, with its bundle delivery), against the API
// server. Each replica has its own client rate limiter and work queue,
// and Workers reconciles at a time (any number with Workers 0). A trigger puts a key in the queue:
// its own, or the pod's, node's or object's it fired for. As in
// client-go's workqueue, a key already waiting is not added again, and a
// key added while it is being worked on waits until that work is done.
// Working a key makes the trigger's requests in order, each through the
// replica's rate limiter and client-side cache.
//
// Replicas of a replicas: N controller each see every trigger (no leader
// election: write replicas: 1 for a leader-elected controller). A
// perNode controller has a replica on every node, and a perPod one in
// every game pod; each of those hears of pod events on its own node or
// pod only, and its watches see only its node's objects and those of no
// node. Writes wake the watches of their resource, as do the game pods
// (pods) and new nodes (nodes).
type controllers struct {
	w        *World
	rng      *rand.Rand // timers' jitter
	kinds    []*controllerKind
	watchers map[string][]watcher // by resource
	nodes    int
}

// controllerKind is one declared controller and its replicas.
type controllerKind struct {
	spec     scenario.Controller
	client   *apiClient
	replicas []*replica
	byNode   map[int]*replica // perNode
	byPod    map[int]*replica // perPod
	paused   bool             // its every triggers skip their firings
	// bundles, for the baseline operator only, is its bundle delivery:
	// it follows a pod once the pod's container asks for config, runs
	// the pod-start reload itself, and hears of each finished trigger.
	bundles *operator
}

// watcher is one watch trigger of one replica.
type watcher struct {
	r       *replica
	trigger int
}

// replica is one running copy of a controller.
type replica struct {
	kind       *controllerKind
	node       int // -1 unless perNode or perPod
	pod        *pod
	limiter    tokenBucket
	queue      []workKey
	dirty      map[workKey]bool
	processing map[workKey]bool
	busy       int
	gone       bool
	cached     map[cacheKey]Time // when each read was last fetched
	seen       map[workKey]bool  // keys its watches have had, for resyncs
	seenOrder  []workKey         // the same, in the order first seen
}

// workKey is one key of a work queue: a trigger and the object it fired
// for (0 when the trigger has none).
type workKey struct {
	trigger int
	object  int64
}

type cacheKey struct {
	trigger, request int
	object           int64
}

func newControllers(w *World) *controllers {
	c := &controllers{w: w, rng: w.seed.Stream("controllers"), watchers: map[string][]watcher{}, nodes: w.sc.Cluster.Nodes}
	for _, spec := range w.sc.Controllers {
		c.declare(spec)
	}
	return c
}

// declare adds a controller; its replicas start with the run.
func (c *controllers) declare(spec scenario.Controller) *controllerKind {
	level, distinguisher := c.w.sc.LevelOf(spec)
	flow := spec.Name // one service account: one user, one namespace
	if distinguisher == "none" {
		flow = spec.FlowSchema
	}
	k := &controllerKind{spec: spec, client: c.w.api.client(spec.Name, level, flow),
		byNode: map[int]*replica{}, byPod: map[int]*replica{}}
	c.kinds = append(c.kinds, k)
	return k
}

// start starts every controller's replicas as the run begins.
func (c *controllers) start() {
	for _, k := range c.kinds {
		switch {
		case k.spec.PerNode:
			for n := range c.nodes {
				c.startReplica(0, k, n, nil)
			}
		case k.spec.PerPod:
			for _, p := range c.w.cluster.pods {
				c.startReplica(0, k, p.node, p)
			}
		default:
			for range k.spec.Replicas {
				c.startReplica(0, k, -1, nil)
			}
		}
	}
}

func (c *controllers) startReplica(now Time, k *controllerKind, node int, p *pod) {
	r := &replica{kind: k, node: node, pod: p, limiter: *newTokenBucket(k.spec.QPS, k.spec.Burst, now)}
	k.replicas = append(k.replicas, r)
	switch {
	case p != nil:
		k.byPod[p.id] = r
	case k.spec.PerNode:
		k.byNode[node] = r
	}
	for i, t := range k.spec.Triggers {
		switch {
		case t.Watch != "":
			c.watchers[t.Watch] = append(c.watchers[t.Watch], watcher{r, i})
			c.w.api.watch(t.Watch)
			if t.Resync > 0 {
				c.resync(now+Time(t.Resync), r, i)
			}
		case t.On == "start":
			c.add(now, r, workKey{trigger: i})
		case t.Every > 0:
			switch t.Each {
			case "pod":
				for _, q := range c.w.cluster.pods {
					if r.hears(q.node, q) && (k.bundles == nil || q.watched) {
						c.everyPod(now, r, i, q)
					}
				}
			case "node":
				for n := range c.nodes {
					if r.node < 0 || r.node == n {
						c.every(now, r, i, int64(n))
					}
				}
			default:
				c.every(now, r, i, 0)
			}
		}
	}
}

// hears reports whether r is told of an event on node (or -1 for none)
// and pod (or nil).
func (r *replica) hears(node int, p *pod) bool {
	switch {
	case r.pod != nil:
		return p == r.pod || (p == nil && node < 0)
	case r.node >= 0:
		return node < 0 || node == r.node
	}
	return true
}

// every fires trigger i of r for object (a node, or 0 for none) each
// interval, shifted by up to the jitter, until r is gone (each-pod
// triggers are loops instead: everyPod). A replica running when the
// run begins started at some time before it: its timers' first firing
// is at a random phase of the interval.
func (c *controllers) every(now Time, r *replica, i int, object int64) {
	next := now + Time(r.kind.spec.Triggers[i].Every)
	if now == 0 {
		next = Time(c.rng.Int64N(int64(r.kind.spec.Triggers[i].Every)))
	}
	c.fireEvery(next, r, i, object)
}

// everyPod runs trigger i of r for pod p as a loop of its own: first at
// p's own phase of the interval (as the loop of a pod that started when
// the pod did), then an interval after each reconcile began, or as it
// ends if it overran (see loop), until r or p is gone. Loops so kept in
// step, by a burst that held them together, stay in step, as
// controller-runtime's requeues do.
func (c *controllers) everyPod(now Time, r *replica, i int, p *pod) {
	every := Time(r.kind.spec.Triggers[i].Every)
	next := p.offset(every, Time(c.w.sc.Baseline.ReconcileInterval))
	if now > next {
		next += (now - next + every - 1) / every * every
	}
	c.w.eng.At(next, func(at Time, _ int64) { c.loop(at, r, i, p) }, 0)
}

// loop is a firing of the each-pod trigger i of r for p at now: it adds
// p's key, whose end arms the next firing (work). A paused controller's
// loop skips the firing and comes back an interval later.
func (c *controllers) loop(now Time, r *replica, i int, p *pod) {
	if r.gone || p.phase == podGone {
		return
	}
	if r.kind.paused {
		c.w.eng.At(now+Time(r.kind.spec.Triggers[i].Every), func(at Time, _ int64) { c.loop(at, r, i, p) }, 0)
		return
	}
	c.add(now, r, workKey{i, int64(p.id)})
}

// fireEvery fires trigger i of r for object at next, shifted by up to the
// jitter, and again each interval after, until r is gone.
// While the controller is paused its firings add no work.
func (c *controllers) fireEvery(next Time, r *replica, i int, object int64) {
	t := r.kind.spec.Triggers[i]
	if t.Jitter > 0 {
		next += Time(c.rng.Int64N(int64(t.Jitter)))
	}
	c.w.eng.At(next, func(at Time, _ int64) {
		if r.gone {
			return
		}
		if !r.kind.paused {
			c.add(at, r, workKey{i, object})
		}
		c.fireEvery(at+Time(t.Every), r, i, object)
	}, 0)
}

func (c *controllers) resync(at Time, r *replica, i int) {
	c.w.eng.At(at, func(now Time, _ int64) {
		if r.gone {
			return
		}
		c.add(now, r, workKey{trigger: i})
		for _, k := range r.seenOrder {
			if k.trigger == i {
				c.add(now, r, k)
			}
		}
		c.resync(now+Time(r.kind.spec.Triggers[i].Resync), r, i)
	}, 0)
}

// add puts key in r's work queue, unless it is already waiting.
func (c *controllers) add(now Time, r *replica, key workKey) {
	if r.gone || r.dirty[key] {
		return
	}
	if r.dirty == nil {
		r.dirty, r.processing = map[workKey]bool{}, map[workKey]bool{}
	}
	r.dirty[key] = true
	if !r.processing[key] {
		r.queue = append(r.queue, key)
		c.work(now, r)
	}
}

// work starts reconciles while r has a free worker (any number, with
// Workers 0) and a waiting key.
func (c *controllers) work(now Time, r *replica) {
	workers := r.kind.spec.Workers
	for (workers == 0 || r.busy < workers) && len(r.queue) > 0 && !r.gone {
		key := r.queue[0]
		r.queue = r.queue[1:]
		delete(r.dirty, key)
		r.processing[key] = true
		r.busy++
		c.reconcile(now, r, key, func(end Time) {
			if b := r.kind.bundles; b != nil {
				b.done(now, end, r, key)
			}
			if t := r.kind.spec.Triggers[key.trigger]; t.Every > 0 && t.Each == "pod" {
				next := max(now+Time(t.Every), end)
				if t.Jitter > 0 {
					next += Time(c.rng.Int64N(int64(t.Jitter)))
				}
				p := c.w.cluster.byID[key.object]
				c.w.eng.At(next, func(at Time, _ int64) { c.loop(at, r, key.trigger, p) }, 0)
			}
			r.busy--
			delete(r.processing, key)
			if r.dirty[key] {
				r.queue = append(r.queue, key)
			}
			c.work(end, r)
		})
	}
}

// reconcile makes the requests of key's trigger in order, each Repeat
// times, Parallel of those at once, then calls done.
func (c *controllers) reconcile(now Time, r *replica, key workKey, done func(Time)) {
	reqs := r.kind.spec.Triggers[key.trigger].Requests
	var step func(at Time, i int)
	step = func(at Time, i int) {
		if i == len(reqs) || r.gone {
			done(at)
			return
		}
		q := reqs[i]
		queued, inFlight := q.Repeat, 0
		var next func(t Time)
		next = func(t Time) {
			for queued > 0 && inFlight < q.Parallel {
				queued--
				inFlight++
				c.request(t, r, key, i, q, func(t Time) {
					inFlight--
					next(t)
				})
			}
			switch {
			case queued > 0 || inFlight > 0:
			case r.kind.bundles != nil:
				r.kind.bundles.answered(t, r, key, i, func(t Time) { step(t, i+1) })
			default:
				step(t, i+1)
			}
		}
		next(at)
	}
	step(now, 0)
}

// request makes one of a trigger's requests. A write of several objects
// is one request for each; a read returns them all at once.
func (c *controllers) request(now Time, r *replica, key workKey, i int, q scenario.Request, done func(Time)) {
	size := scenario.Size{Pods: len(c.w.cluster.pods), Nodes: c.nodes}
	objects, scanned := q.Objects.Eval(size), q.Scanned.Eval(size)
	ck := cacheKey{key.trigger, i, key.object}
	if !q.Mutating() && r.kind.spec.Cache != nil {
		if at, ok := r.cached[ck]; ok && now-at < Time(r.kind.spec.Cache.TTL) {
			done(now) // a stale answer, from the client's cache
			return
		}
	}
	node := -1
	if q.Scope == "node" {
		node = r.node
	}
	if q.Mutating() {
		left := objects
		var next func(at Time)
		next = func(at Time) {
			if left <= 0 {
				done(at)
				return
			}
			left--
			object := int64(left)
			c.w.api.call(at, r.kind.client, &r.limiter, &apiCall{write: true, objects: 1, scanned: 1, size: float64(q.Size),
				resource: q.Resource, onWrite: func(t Time) { c.written(t, q.Resource, node, object) },
				done: func(t Time, _ bool) { next(t) }})
		}
		next(now)
		return
	}
	call := &apiCall{list: q.Verb == "list", fromCache: q.From == "cache" || q.Verb == "watch",
		selector: q.Scope != "cluster", objects: objects, scanned: max(scanned, objects), size: float64(q.Size),
		done: func(t Time, _ bool) {
			if r.kind.spec.Cache != nil {
				if r.cached == nil {
					r.cached = map[cacheKey]Time{}
				}
				r.cached[ck] = t
			}
			done(t)
		}}
	if q.Verb == "watch" {
		call.objects, call.scanned = 0, 0
	}
	c.w.api.call(now, r.kind.client, &r.limiter, call)
}

// written tells the watches of resource that an object on node (-1 for
// none) changed.
func (c *controllers) written(now Time, resource string, node int, object int64) {
	at := now + c.w.api.overhead // the watch cache's fan-out
	for _, wt := range c.watchers[resource] {
		if !wt.r.gone && wt.r.hears(node, nil) {
			key := workKey{wt.trigger, object}
			if wt.r.kind.spec.Triggers[wt.trigger].Resync > 0 && !wt.r.seen[key] {
				if wt.r.seen == nil {
					wt.r.seen = map[workKey]bool{}
				}
				wt.r.seen[key] = true
				wt.r.seenOrder = append(wt.r.seenOrder, key)
			}
			c.w.eng.At(at, func(t Time, _ int64) { c.add(t, wt.r, key) }, 0)
		}
	}
}

// fire adds key's trigger event on to the queue of every replica that
// hears it.
func (c *controllers) fire(now Time, event string, node int, p *pod, object int64) {
	for _, k := range c.kinds {
		if event == "podStart" && k.bundles != nil {
			continue // the bundle delivery runs the operator's pod starts
		}
		for i, t := range k.spec.Triggers {
			if t.On != event {
				continue
			}
			for _, r := range k.replicas {
				if !r.gone && r.hears(node, p) {
					c.add(now, r, workKey{i, object})
				}
			}
		}
	}
}

// containerStarted is a game pod's container starting: its perPod
// replicas (sidecars) start with it.
func (c *controllers) containerStarted(now Time, p *pod) {
	for _, k := range c.kinds {
		if k.spec.PerPod && k.byPod[p.id] == nil {
			c.startReplica(now, k, p.node, p)
		}
	}
}

// podStarted is a new game pod: pod triggers and each-pod timers fire,
// and the pods' watches hear of it.
func (c *controllers) podStarted(now Time, p *pod) {
	for _, k := range c.kinds {
		if !k.spec.PerPod && k.bundles == nil {
			c.follow(now, k, p)
		}
	}
	c.fire(now, "podStart", p.node, p, int64(p.id))
	c.written(now, "pods", p.node, int64(p.id))
}

// follow starts the each-pod timers of k's replicas for p.
func (c *controllers) follow(now Time, k *controllerKind, p *pod) {
	for i, t := range k.spec.Triggers {
		if t.Every > 0 && t.Each == "pod" {
			for _, r := range k.replicas {
				if !r.gone && r.hears(p.node, p) {
					c.everyPod(now, r, i, p)
				}
			}
		}
	}
}

// scale sets the number of k's running replicas (replicas: N
// controllers). Replicas go from the last; a new one starts as at the
// run's start, with its pods' timers at their own phases.
func (c *controllers) scale(now Time, k *controllerKind, replicas int) {
	for len(k.replicas) > replicas {
		last := k.replicas[len(k.replicas)-1]
		last.gone = true
		k.replicas = k.replicas[:len(k.replicas)-1]
	}
	for len(k.replicas) < replicas {
		c.startReplica(now, k, -1, nil)
	}
}

// pause stops k's every triggers from adding work for d.
func (c *controllers) pause(now Time, k *controllerKind, d Time) {
	k.paused = true
	c.w.eng.At(now+d, func(Time, int64) { k.paused = false }, 0)
}

// podDeleted is a game pod gone: its perPod replicas stop.
func (c *controllers) podDeleted(now Time, p *pod) {
	c.fire(now, "podDelete", p.node, p, int64(p.id))
	c.written(now, "pods", p.node, int64(p.id))
	for _, k := range c.kinds {
		if r := k.byPod[p.id]; r != nil {
			r.gone = true
			delete(k.byPod, p.id)
			k.replicas = removeReplica(k.replicas, r)
		}
	}
}

func removeReplica(rs []*replica, r *replica) []*replica {
	for i, q := range rs {
		if q == r {
			return append(rs[:i], rs[i+1:]...)
		}
	}
	return rs
}

// nodeAdded is a new node: perNode replicas start on it, and nodeAdd
// triggers and the nodes' watches fire.
func (c *controllers) nodeAdded(now Time, node int) {
	c.nodes = max(c.nodes, node+1)
	for _, k := range c.kinds {
		if k.spec.PerNode {
			c.startReplica(now, k, node, nil)
		}
	}
	c.fire(now, "nodeAdd", -1, nil, int64(node))
	c.written(now, "nodes", -1, int64(node))
}

// configChanged fires configChange triggers.
func (c *controllers) configChanged(now Time) { c.fire(now, "configChange", -1, nil, 0) }

// relist fires every replica's start triggers again, after the API
// server came back from a restart.
func (c *controllers) relist(now Time) { c.fire(now, "start", -1, nil, 0) }
