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
	// stallsPods says whether delivering config can block a serving pod's
	// request loop (see traffic.stall).
	stallsPods() bool
	// release says p is gone.
	release(now Time, p *pod)
	// addNode says the cluster has a new node, numbered after the others.
	addNode()
}

var (
	_ delivery = (*bundleDelivery)(nil)
	_ delivery = (*streamDelivery)(nil)
)

// bundleDelivery is the baseline, Veltrix: when a pod starts, the
// operator reloads every config object through the API server and then
// sends the pod the full bundle over the uplink (F4, F5), gzipped if the
// scenario says so, at a decompression cost on the pod (T4). A config
// change makes the operator reconcile every pod and send each the full
// bundle again (F9).
//
// Two of the team's attempts change how a starting pod gets config. With
// an emptyDir cache (T5) a pod that kept its volume reads it locally, and
// a new pod fills it by reading every config object through its own API
// client, all at once. With ConfigMaps and Helm (T6) there is no
// operator: Helm renders each pod's entry into one shared ConfigMap,
// which holds as many entries as fit under Kubernetes' 1 MiB limit; a pod
// past that gets no config.
type bundleDelivery struct {
	w          *World
	op         *operator
	size       float64
	decompress Time

	podsReading, peakPodsReading int // pods filling an emptyDir cache from the API server at once
	// The game pods' service account (T5's cache fills) and the kubelets
	// (T6's ConfigMap reads), as APF sees them.
	pods, kubelet *apiClient
}

// configMapLimit is Kubernetes' limit on one ConfigMap.
const configMapLimit = 1 << 20

func newBundleDelivery(w *World) *bundleDelivery {
	d := &bundleDelivery{w: w, op: newOperator(w, w.sc.Baseline.Delivery == "configMap"), size: float64(w.sc.Config.TotalSize),
		// Flow schemas service-accounts and system-nodes of the 1.34 defaults.
		pods:    w.api.client("game-pods", "workload-low", "game-pods"),
		kubelet: w.api.client("kubelet", "node-high", "kubelet")}
	if w.sc.Baseline.Gzip {
		d.size *= w.sc.Model.Operator.GzipRatio
		d.decompress = Time(w.sc.Model.Operator.GzipDecompress)
	}
	d.op.send = d.send
	return d
}

// send sends p the bundle and calls done once p has unpacked it. A pod
// that is serving stops serving while it decompresses (T4).
func (d *bundleDelivery) send(now Time, p *pod, done func(Time)) {
	d.w.uplink.Send(now, d.size, func(at Time) {
		if p.phase == podReady {
			d.w.traffic.stall(at, p, d.decompress)
		}
		d.w.eng.At(at+d.decompress, func(t Time, _ int64) {
			if p.phase == podReady {
				d.w.traffic.configLoaded(t, p)
			}
			done(t)
		}, 0)
	})
}

func (d *bundleDelivery) stallsPods() bool { return d.decompress > 0 }

func (d *bundleDelivery) release(Time, *pod) {}

func (d *bundleDelivery) addNode() {}

func (d *bundleDelivery) preload(p *pod) {
	d.watch(0, p)
	p.configMapEntry = d.w.sc.Baseline.Delivery == "configMap"
	p.cachedConfig = d.w.sc.Baseline.ConfigCache == "emptyDir"
}

func (d *bundleDelivery) watch(now Time, p *pod) {
	if !p.watched {
		p.watched = true
		d.op.watch(now, p)
	}
}

func (d *bundleDelivery) fetch(now Time, p *pod, loaded func(Time, float64)) {
	d.watch(now, p)
	switch {
	case d.w.sc.Baseline.Delivery == "configMap":
		d.fromConfigMap(now, p, loaded)
	case d.w.sc.Baseline.ConfigCache == "emptyDir" && p.cachedConfig:
		loaded(now, 0) // the volume outlived the container
	case d.w.sc.Baseline.ConfigCache == "emptyDir":
		d.fillCache(now, p, loaded)
	default:
		d.op.reload(now, p, func(t Time) { loaded(t, d.size) })
	}
}

// fillCache has p read every config object through its own client, all
// at once, into its emptyDir volume.
func (d *bundleDelivery) fillCache(now Time, p *pod, loaded func(Time, float64)) {
	m := d.w.sc.Model.Pods
	limiter := newTokenBucket(m.ClientQPS, m.ClientBurst, now)
	left := d.op.objects
	d.podsReading++
	d.peakPodsReading = max(d.peakPodsReading, d.podsReading)
	for range d.op.objects {
		d.w.api.call(now, d.pods, limiter, &apiCall{objects: 1, scanned: 1, size: d.op.objectSize, done: func(t Time, _ bool) {
			if left--; left == 0 {
				d.podsReading--
				d.w.uplink.Send(t, d.size, func(at Time) {
					p.cachedConfig = true
					loaded(at, d.size)
				})
			}
		}})
	}
}

// fromConfigMap renders p's entry into the shared ConfigMap with Helm, if
// it fits, and has the kubelet read the ConfigMap. A pod whose entry does
// not fit gets no config; it tries again when the kubelet restarts it.
func (d *bundleDelivery) fromConfigMap(now Time, p *pod, loaded func(Time, float64)) {
	entry := float64(d.w.sc.Model.Operator.ConfigMapEntry)
	holders := 0
	for _, q := range d.w.cluster.pods {
		if q.configMapEntry {
			holders++
		}
	}
	if !p.configMapEntry && float64(holders+1)*entry > configMapLimit {
		return // Helm: the ConfigMap would exceed 1 MiB
	}
	if !p.configMapEntry {
		p.configMapEntry = true
		holders++
	}
	size := float64(holders) * entry
	m := d.w.sc.Model.Pods
	kubelet := newTokenBucket(m.ClientQPS, m.ClientBurst, now)
	d.w.eng.At(now+Time(d.w.sc.Model.Operator.HelmTemplating), func(t Time, _ int64) {
		d.w.api.call(t, d.kubelet, kubelet, &apiCall{objects: 1, scanned: 1, size: size, done: func(t Time, _ bool) {
			d.w.uplink.Send(t, size, func(at Time) { loaded(at, size) })
		}})
	}, 0)
}

func (d *bundleDelivery) change(now Time, hunts []int) { d.op.change(now, hunts) }

// streamDelivery is the reference service: a per-node agent holds a stream
// to the service and an L2 cache keyed by hunt and version (R1, R5, R6). A
// starting pod is served from L2 when its node holds its hunt's current
// version; otherwise the agent fetches just that hunt's fragment, once
// for all of the node's pods that are waiting for it. A change pushes the
// new fragment once to each node that runs the hunt.
//
// A hunt stays on its node's stream for reference.debounce after the
// node's last pod of it leaves (R3), so a pod restarting within that
// window is served from L2 at once. Past it the hunt leaves the stream,
// and the next pod of it on that node waits for the agent to put it back:
// the agent sends the version it holds, and a replica reads the store to
// answer (and sends the fragment only if it changed).
type streamDelivery struct {
	w           *World
	fragment    float64
	l2Read      Time
	fanout      Time                    // from a write to the replicas' fan-out: its commit, then their read
	storeRead   Time                    // a replica's read of the store
	debounce    Time                    // how long a hunt stays on a node's stream after its last pod
	version     []int                   // current version of each hunt
	cached      []int                   // [node*hunts+hunt]: version in the node's L2; 0 = none
	waiting     [][]func(Time, float64) // [node*hunts+hunt]: pods waiting on the agent's fetch
	subscribers []int                   // [node*hunts+hunt]: the node's pods that acquired the hunt
	streamed    []bool                  // [node*hunts+hunt]: the hunt is on the node's stream
	releases    []int                   // [node*hunts+hunt]: bumped to cancel a pending release
}

func newStreamDelivery(w *World) *streamDelivery {
	hunts, nodes := w.sc.Config.Hunts, w.sc.Cluster.Nodes
	d := &streamDelivery{
		w:           w,
		fragment:    float64(w.sc.Config.FragmentSize()),
		l2Read:      Time(float64(Second) / w.sc.Reference.L2.ReadsPerSecond.PerSecond()),
		fanout:      Time(w.sc.Model.Reference.StoreCommit + w.sc.Model.Reference.StoreRead),
		storeRead:   Time(w.sc.Model.Reference.StoreRead),
		debounce:    Time(w.sc.Reference.Debounce),
		version:     make([]int, hunts),
		cached:      make([]int, nodes*hunts),
		waiting:     make([][]func(Time, float64), nodes*hunts),
		subscribers: make([]int, nodes*hunts),
		streamed:    make([]bool, nodes*hunts),
		releases:    make([]int, nodes*hunts),
	}
	for h := range d.version {
		d.version[h] = 1
	}
	return d
}

func (d *streamDelivery) addNode() {
	hunts := d.w.sc.Config.Hunts
	d.cached = append(d.cached, make([]int, hunts)...)
	d.waiting = append(d.waiting, make([][]func(Time, float64), hunts)...)
	d.subscribers = append(d.subscribers, make([]int, hunts)...)
	d.streamed = append(d.streamed, make([]bool, hunts)...)
	d.releases = append(d.releases, make([]int, hunts)...)
}

func (d *streamDelivery) key(p *pod) int { return p.node*d.w.sc.Config.Hunts + p.hunt }

func (d *streamDelivery) stallsPods() bool { return false }

func (d *streamDelivery) preload(p *pod) {
	k := d.key(p)
	d.cached[k] = d.version[p.hunt]
	d.acquire(p)
	d.streamed[k] = true
}

// acquire counts p among its node's pods of its hunt, once, and keeps the
// hunt on the stream.
func (d *streamDelivery) acquire(p *pod) {
	if p.acquired {
		return
	}
	p.acquired = true
	k := d.key(p)
	d.subscribers[k]++
	d.releases[k]++ // a pending release is cancelled
}

func (d *streamDelivery) release(now Time, p *pod) {
	if !p.acquired {
		return
	}
	k := d.key(p)
	if d.subscribers[k]--; d.subscribers[k] > 0 {
		return
	}
	d.releases[k]++
	release := d.releases[k]
	d.w.eng.At(now+d.debounce, func(Time, int64) {
		if d.releases[k] == release && d.subscribers[k] == 0 {
			d.streamed[k] = false
		}
	}, 0)
}

func (d *streamDelivery) fetch(now Time, p *pod, loaded func(Time, float64)) {
	d.acquire(p)
	k := d.key(p)
	if !d.streamed[k] {
		// The agent puts the hunt back on its stream with the version it
		// holds; a replica reads the store to answer.
		d.streamed[k] = true
		d.w.eng.At(now+d.storeRead, func(t Time, _ int64) { d.serve(t, k, p, loaded) }, 0)
		return
	}
	d.serve(now, k, p, loaded)
}

// serve gets p its hunt's fragment from L2 if the node holds the current
// version, or else from the service over the uplink.
func (d *streamDelivery) serve(now Time, k int, p *pod, loaded func(Time, float64)) {
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
	for node := range len(d.cached) / d.w.sc.Config.Hunts {
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
			d.w.eng.At(now+d.fanout, func(t Time, _ int64) {
				d.w.uplink.Send(t, d.fragment, func(at Time) {
					d.cached[k] = max(d.cached[k], version)
					for _, p := range receivers {
						if p.phase == podReady {
							d.w.traffic.configLoaded(at+d.l2Read, p)
							d.w.rec.ConfigPropagated(dur(at + d.l2Read - now))
						}
					}
				})
			}, 0)
		}
	}
}
