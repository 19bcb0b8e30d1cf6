package sim

// delivery is how a system gets config to pods: when a pod starts, and
// when config changes.
type delivery interface {
	// preload marks p as holding the current config before the run.
	preload(p *pod)
	// fetch gets p its config and calls loaded with the uplink bytes it cost.
	fetch(now Time, p *pod, loaded func(now Time, uplinkBytes float64))
	// change rewrites the given hunts' config and delivers it to the pods
	// that need it, recording each pod's propagation delay.
	change(now Time, hunts []int)
}

var (
	_ delivery = (*bundleDelivery)(nil)
	_ delivery = (*streamDelivery)(nil)
)

// bundleDelivery is the baseline, Veltrix: every pod start pulls the full
// bundle of every config object over the uplink (F4, F5), and a config
// change reaches a pod at its next reconcile, which pushes the full bundle
// again (F9).
type bundleDelivery struct {
	w        *World
	size     float64
	interval Time
}

func newBundleDelivery(w *World) *bundleDelivery {
	return &bundleDelivery{w: w, size: float64(w.sc.Config.TotalSize), interval: Time(w.sc.Baseline.ReconcileInterval)}
}

func (d *bundleDelivery) preload(*pod) {}

func (d *bundleDelivery) fetch(now Time, _ *pod, loaded func(Time, float64)) {
	d.w.uplink.Send(now, d.size, func(at Time) { loaded(at, d.size) })
}

func (d *bundleDelivery) change(now Time, hunts []int) {
	changed := make([]bool, d.w.sc.Config.Hunts)
	for _, h := range hunts {
		changed[h] = true
	}
	for _, p := range d.w.cluster.pods {
		if p.phase != podReady {
			continue
		}
		next := p.reconcile
		if now > next {
			next += (now - next + d.interval - 1) / d.interval * d.interval
		}
		d.w.eng.At(next, func(at Time, _ int64) {
			if p.phase != podReady {
				return
			}
			// The bundle holds every hunt, so every pod pulls it again;
			// only pods of a changed hunt were waiting for it.
			d.w.uplink.Send(at, d.size, func(done Time) {
				if changed[p.hunt] && p.phase == podReady {
					d.w.rec.ConfigPropagated(dur(done - now))
				}
			})
		}, 0)
	}
}

// streamDelivery is the reference service: a per-node agent holds a stream
// to the service and an L2 cache keyed by hunt and version (R1, R5, R6). A
// starting pod is served from L2 when its node holds its hunt's current
// version; otherwise the agent fetches just that hunt's fragment, once
// for all of the node's pods that are waiting for it. A change pushes the
// new fragment once to each node that runs the hunt.
type streamDelivery struct {
	w        *World
	fragment float64
	l2Read   Time
	version  []int                   // current version of each hunt
	cached   []int                   // [node*hunts+hunt]: version in the node's L2; 0 = none
	waiting  [][]func(Time, float64) // [node*hunts+hunt]: pods waiting on the agent's fetch
}

func newStreamDelivery(w *World) *streamDelivery {
	hunts, nodes := w.sc.Config.Hunts, w.sc.Cluster.Nodes
	d := &streamDelivery{
		w:        w,
		fragment: float64(w.sc.Config.FragmentSize()),
		l2Read:   Time(float64(Second) / w.sc.Reference.L2.ReadsPerSecond.PerSecond()),
		version:  make([]int, hunts),
		cached:   make([]int, nodes*hunts),
		waiting:  make([][]func(Time, float64), nodes*hunts),
	}
	for h := range d.version {
		d.version[h] = 1
	}
	return d
}

func (d *streamDelivery) key(p *pod) int { return p.node*d.w.sc.Config.Hunts + p.hunt }

func (d *streamDelivery) preload(p *pod) { d.cached[d.key(p)] = d.version[p.hunt] }

func (d *streamDelivery) fetch(now Time, p *pod, loaded func(Time, float64)) {
	k := d.key(p)
	if d.cached[k] == d.version[p.hunt] {
		d.w.eng.At(now+d.l2Read, func(at Time, _ int64) { loaded(at, 0) }, 0)
		return
	}
	d.waiting[k] = append(d.waiting[k], loaded)
	if len(d.waiting[k]) > 1 {
		return // the agent is already fetching this fragment
	}
	version := d.version[p.hunt]
	d.w.uplink.Send(now, d.fragment, func(at Time) {
		d.cached[k] = version
		waiters := d.waiting[k]
		d.waiting[k] = nil
		share := d.fragment / float64(len(waiters))
		for _, loaded := range waiters {
			d.w.eng.At(at+d.l2Read, func(t Time, _ int64) { loaded(t, share) }, 0)
		}
	})
}

func (d *streamDelivery) change(now Time, hunts []int) {
	for _, h := range hunts {
		d.version[h]++
	}
	for node := range d.w.sc.Cluster.Nodes {
		for _, h := range hunts {
			var receivers []*pod
			for _, p := range d.w.cluster.pods {
				if p.node == node && p.hunt == h && p.phase == podReady {
					receivers = append(receivers, p)
				}
			}
			if len(receivers) == 0 {
				continue
			}
			k, version := node*d.w.sc.Config.Hunts+h, d.version[h]
			d.w.uplink.Send(now, d.fragment, func(at Time) {
				d.cached[k] = max(d.cached[k], version)
				for _, p := range receivers {
					if p.phase == podReady {
						d.w.rec.ConfigPropagated(dur(at + d.l2Read - now))
					}
				}
			})
		}
	}
}
