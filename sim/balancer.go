package sim

// balancer is the load balancer in front of the game pods. It spreads
// requests round-robin over the pods in rotation, and learns about pods
// only through active health checks: a pod joins after passThreshold
// passing checks and leaves after failThreshold failing ones. Until then a
// deleted pod still gets requests, and they fail (F7).
type balancer struct {
	w          *World
	interval   Time
	fail, pass int
	rotation   []*pod
	joined     int // pods that have joined rotation, for their rotationSeq
	next       int
	onJoin     Action
	onEvict    Action
}

func newBalancer(w *World) *balancer {
	hc := w.sc.Workload.HealthCheck
	b := &balancer{w: w, interval: Time(hc.Interval), fail: hc.FailThreshold, pass: hc.PassThreshold}
	b.onJoin, b.onEvict = b.join, b.evict
	return b
}

// add puts p in rotation at once (for pods serving before the run starts).
func (b *balancer) add(now Time, p *pod) {
	p.inRotation, p.rotationSeq = true, b.joined
	b.joined++
	b.rotation = append(b.rotation, p)
	b.w.traffic.joined(now, p)
}

// checkAfter returns the time of the n-th health check of p at or after now.
func (b *balancer) checkAfter(now Time, p *pod, n int) Time {
	first := p.probeAt
	if now > first {
		first += (now - first + b.interval - 1) / b.interval * b.interval
	}
	return first + Time(n-1)*b.interval
}

// ready tells the balancer p now passes its checks.
func (b *balancer) ready(now Time, p *pod) {
	b.w.eng.At(b.checkAfter(now, p, b.pass), b.onJoin, int64(p.id))
}

func (b *balancer) join(now Time, id int64) {
	p := b.w.cluster.byID[id]
	if p.phase == podReady && !p.inRotation {
		b.add(now, p)
	}
}

// gone tells the balancer p no longer answers its checks.
func (b *balancer) gone(now Time, p *pod) {
	if p.inRotation {
		b.w.traffic.busy.mark(p) // it fails every request until evicted
		b.w.eng.At(b.checkAfter(now, p, b.fail), b.onEvict, int64(p.id))
	}
}

func (b *balancer) evict(_ Time, id int64) {
	p := b.w.cluster.byID[id]
	for i, q := range b.rotation {
		if q == p {
			b.rotation = append(b.rotation[:i], b.rotation[i+1:]...)
			b.w.traffic.busy.unmark(p)
			p.inRotation = false
			return
		}
	}
}

// pick returns the next pod in rotation, or nil when there is none.
func (b *balancer) pick() *pod {
	if len(b.rotation) == 0 {
		return nil
	}
	if b.next >= len(b.rotation) {
		b.next = 0
	}
	p := b.rotation[b.next]
	b.next++
	return p
}
