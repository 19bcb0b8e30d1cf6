package sim

import "github.com/churnlab/churnlab/experiments/scenario"

// operator is the bundle delivery of the Veltrix-like baseline operator
// (F4, F5, F6, F9, F11). The operator itself is a declared controller,
// scenario.Operator, which the controllers play as any other: its
// replicas, rate limits, reconcile loop and reloads are data. What this
// adds is what no controller declaration says:
//   - a reload makes a new config generation;
//   - a pod's container asking for config starts the operator's loop of
//     the pod, and a reload on the replica the pod's number picks, after
//     which the operator PATCHes the pod's bundle annotation and sends it
//     the whole bundle over the uplink (F4);
//   - a reconcile that finds its pod on an older generation PATCHes and
//     sends the bundle again: during churn every pod gets the bundle every
//     time it is reconciled (F5, F6);
//   - a reconcile whose LIST finds config changed since its replica last
//     loaded it reloads every object first, and the replica's other
//     reconciles that find it meanwhile wait for that one reload;
//   - the first reload that read a config change makes the generation
//     that carries it, and its arrival at each pod is its propagation.
type operator struct {
	w          *World
	ctl        *controllers
	kind       *controllerKind
	objects    int // config objects
	objectSize float64
	reconciles []int64 // completed in each second, across replicas
	generation int     // of the config the operator holds
	changes    []Time  // when config changed
	lastChange configChange
	loaded     map[*replica]int          // the changes each replica's last reload saw
	waiting    map[*replica][]func(Time) // reconciles waiting for the replica's reload
	// loading holds, per pod, what to call once a pod-start reload has
	// sent it the bundle: one reload's push serves every ask waiting when
	// it ends.
	loading map[int][]func(Time)
	send    func(now Time, p *pod, done func(Time)) // sends p its bundle over the uplink
}

// configChange is the last config change, for measuring its propagation.
type configChange struct {
	generation int // the first that carries it; 0 until a reload reads it
	at         Time
	hunts      []bool
}

// newOperator declares the operator among w's controllers, with no
// replicas when replaced (T6: Helm renders the config instead).
func newOperator(w *World, replaced bool) *operator {
	spec := w.sc.Operator()
	if replaced {
		spec.Replicas = 0
	}
	o := &operator{w: w, ctl: w.controllers, objects: w.sc.Config.Objects,
		objectSize: float64(w.sc.Config.TotalSize) / float64(w.sc.Config.Objects), loading: map[int][]func(Time){},
		loaded: map[*replica]int{}, waiting: map[*replica][]func(Time){}}
	o.kind = w.controllers.declare(spec)
	o.kind.bundles = o
	o.kind.paused = !w.sc.Baseline.Controller
	return o
}

// live returns the running replicas.
func (o *operator) live() []*replica { return o.kind.replicas }

// watch starts every replica's reconcile loop of p.
func (o *operator) watch(now Time, p *pod) { o.ctl.follow(now, o.kind, p) }

// reload has the replica that p's number picks reload every config
// object, which makes a new generation, and send p the bundle; done is
// called once p has it. Reloads and reconciles share the replica's rate
// limiter, in the order they ask for tokens.
func (o *operator) reload(now Time, p *pod, done func(Time)) {
	live := o.live()
	if len(live) == 0 {
		return // no operator: the pod waits
	}
	o.loading[p.id] = append(o.loading[p.id], done)
	o.ctl.add(now, live[p.id%len(live)], workKey{scenario.OperatorReload, int64(p.id)})
}

// done is the operator's part of a finished trigger of r, begun at
// start: a reload's new generation, and the bundle for a pod that needs
// it.
func (o *operator) done(start, end Time, r *replica, key workKey) {
	switch key.trigger {
	case scenario.OperatorReconcile:
		sec := int(end / Second)
		for len(o.reconciles) <= sec {
			o.reconciles = append(o.reconciles, 0)
		}
		o.reconciles[sec]++
		o.sync(end, r, o.w.cluster.byID[key.object])
	case scenario.OperatorReload:
		o.reloaded(start, r)
		p, waiting := o.w.cluster.byID[key.object], o.loading[int(key.object)]
		if len(waiting) == 0 {
			return // asked for again meanwhile: an earlier reload's push served it
		}
		delete(o.loading, p.id)
		p.generation = o.generation
		o.push(end, r, p, func(t Time) {
			for _, done := range waiting {
				done(t)
			}
		})
	}
}

// answered is the operator's part between the requests of r's work on
// key, after request i: a reconcile's LIST (its first request) that finds
// config changed since r last loaded it has r reload first, and r's
// other reconciles that find it meanwhile wait for the same reload.
func (o *operator) answered(now Time, r *replica, key workKey, i int, next func(Time)) {
	if key.trigger != scenario.OperatorReconcile || i != 0 || o.loaded[r] >= len(o.changes) {
		next(now)
		return
	}
	o.waiting[r] = append(o.waiting[r], next)
	if len(o.waiting[r]) > 1 {
		return
	}
	o.ctl.reconcile(now, r, workKey{scenario.OperatorReload, -1}, func(t Time) {
		o.reloaded(now, r)
		waiting := o.waiting[r]
		delete(o.waiting, r)
		for _, next := range waiting {
			next(t)
		}
	})
}

// reloaded makes the generation of r's reload begun at start. The
// objects it read are at least as new as the last change before start;
// the first reload that read the last change makes the generation that
// carries it.
func (o *operator) reloaded(start Time, r *replica) {
	seen := 0
	for _, at := range o.changes {
		if at <= start {
			seen++
		}
	}
	o.generation++
	o.loaded[r] = max(o.loaded[r], seen)
	if seen == len(o.changes) && seen > 0 && o.lastChange.generation == 0 {
		o.lastChange.generation = o.generation
	}
}

// sync sends a ready pod the bundle if it holds an older generation, and
// records the propagation of the last config change to it.
func (o *operator) sync(now Time, r *replica, p *pod) {
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
func (o *operator) push(now Time, r *replica, p *pod, done func(Time)) {
	o.w.api.call(now, o.kind.client, &r.limiter, &apiCall{write: true, objects: 1, scanned: 1, resource: "pods",
		onWrite: func(t Time) { o.ctl.written(t, "pods", p.node, int64(p.id)) },
		done:    func(t Time, _ bool) { o.send(t, p, done) }})
}

// change rewrites the given hunts' config objects. Nothing is sent yet:
// each replica finds the change in its next reconcile's LIST and reloads
// every object, and the first reload that read the new objects makes the
// generation that carries the change to the pods.
func (o *operator) change(now Time, hunts []int) {
	o.changes = append(o.changes, now)
	o.lastChange = configChange{at: now, hunts: make([]bool, o.w.sc.Config.Hunts)}
	for _, h := range hunts {
		o.lastChange.hunts[h] = true
	}
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
