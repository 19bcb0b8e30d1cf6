package sim

import (
	"math/rand/v2"
	"slices"
)

type podPhase uint8

const (
	podStarting podPhase = iota // scheduled; container starting
	podFetching                 // waiting for its config
	podReady                    // has config; serves once the load balancer adds it
	podGone                     // deleted
)

// pod is one game pod. Its liveness and readiness depend on having config:
// it serves nothing until its config is loaded.
type pod struct {
	id         int
	node, hunt int
	phase      podPhase
	created    Time
	old        bool // belongs to the revision a rolling update is replacing
	inRotation bool // the load balancer sends it requests
	// rotationSeq orders the pods by when they joined rotation (its
	// order); busy and coldListed say the aggregate traffic's busyPods
	// lists it.
	rotationSeq      int
	busy, coldListed bool
	watched          bool // the baseline operator runs its reconcile loop
	acquired         bool // the reference's node agent counts it among its hunt's pods
	generation       int  // of the baseline operator's config the pod holds

	cachedConfig   bool    // its emptyDir volume holds config (T5)
	configMapEntry bool    // its entry is in the shared ConfigMap (T6)
	container      int     // incarnation: the kubelet restarts the container when liveness fails
	probeAt        Time    // offset of its health checks within the check interval
	reconcile      Time    // offset of the operator's reconcile of it within the reconcile interval (see offset)
	queueEnd       Time    // when its request queue drains (per-request traffic)
	backlog        Time    // work queued beyond what a step serves (aggregate traffic)
	stallEnd       Time    // until when its request loop is blocked
	warmAt         Time    // when its hunt state, rebuilt from its last config, is warm
	held           []int64 // queued requests whose recording waits for their service to start (see traffic.stall)
}

// stalled is how much of the stall is left at now.
func (p *pod) stalled(now Time) Time { return max(0, p.stallEnd-now) }

// cluster is the game Deployment and the nodes its pods land on. Like the
// Deployment controller, it recreates every deleted pod and converges the
// pod count on the desired replicas; a rolling update replaces pods within
// its surge and unavailability limits.
type cluster struct {
	w          *World
	rng        *rand.Rand // jitter of pod start times, choice of restarted pods
	pods       []*pod     // live pods, oldest first
	byID       []*pod     // every pod ever created, by id
	podsOnNode []int
	candidates []int // leastLoadedNode's buffer
	podsOfHunt []int
	desired    int
	ready      int
	peakReady  int
	fetchTimes []Time // from each container start to its config
	rollout    *rollout
}

func newCluster(w *World) *cluster {
	return &cluster{
		w:          w,
		rng:        w.seed.Stream("pods"),
		podsOnNode: make([]int, w.sc.Cluster.Nodes),
		podsOfHunt: make([]int, w.sc.Config.Hunts),
		desired:    w.sc.Cluster.Pods,
	}
}

// start creates the initial pods, already serving with config loaded, as
// the cluster was before the scenario's timeline begins.
func (c *cluster) start() {
	for range c.desired {
		p := c.newPod(0)
		p.phase = podReady
		c.ready++
		c.w.delivery.preload(p)
		c.w.lb.add(0, p)
	}
	c.recordPods(0)
}

// newPod places a new pod on a node with the fewest pods (ties broken at
// random, as the scheduler's spreading does), serving the hunt with the
// fewest pods (lowest index on ties). A pod that replaces a deleted one
// therefore takes its place: the same hunt on the same node.
func (c *cluster) newPod(now Time) *pod {
	node, hunt := c.leastLoadedNode(), leastLoaded(c.podsOfHunt)
	c.podsOnNode[node]++
	c.podsOfHunt[hunt]++
	sc := c.w.sc
	p := &pod{
		id:        len(c.byID),
		node:      node,
		hunt:      hunt,
		created:   now,
		probeAt:   Time(c.rng.Int64N(int64(sc.Workload.HealthCheck.Interval))),
		reconcile: Time(c.rng.Int64N(int64(sc.Baseline.ReconcileInterval))),
	}
	c.byID = append(c.byID, p)
	c.pods = append(c.pods, p)
	return p
}

func (c *cluster) leastLoadedNode() int {
	candidates := c.candidates[:0] // the nodes with the fewest pods so far, in order
	for n, count := range c.podsOnNode {
		switch {
		case len(candidates) == 0 || count < c.podsOnNode[candidates[0]]:
			candidates = append(candidates[:0], n)
		case count == c.podsOnNode[candidates[0]]:
			candidates = append(candidates, n)
		}
	}
	c.candidates = candidates
	return candidates[c.rng.IntN(len(candidates))]
}

func leastLoaded(counts []int) int {
	best := 0
	for i, n := range counts {
		if n < counts[best] {
			best = i
		}
	}
	return best
}

// create adds a pod that starts, fetches its config and becomes ready.
func (c *cluster) create(now Time) *pod {
	p := c.newPod(now)
	c.w.controllers.podStarted(now, p)
	// Scheduling and container start vary by ±20% around podStartup.
	c.startContainer(now, p)
	return p
}

// startContainer starts p's container after the startup delay.
func (c *cluster) startContainer(now Time, p *pod) {
	startup := float64(c.w.sc.Cluster.PodStartup) * (0.8 + 0.4*c.rng.Float64())
	c.w.eng.At(now+Time(startup), c.fetch, int64(p.id))
}

// fetch starts p's config fetch, and its liveness deadline: a pod still
// without config then is restarted by the kubelet and fetches again.
func (c *cluster) fetch(now Time, id int64) {
	p := c.byID[id]
	if p.phase != podStarting {
		return // deleted while starting
	}
	p.phase = podFetching
	c.w.controllers.containerStarted(now, p)
	container := p.container
	c.w.delivery.fetch(now, p, func(at Time, uplinkBytes float64) {
		if p.container == container && p.phase == podFetching {
			c.fetchTimes = append(c.fetchTimes, at-now)
			c.loaded(at, p, uplinkBytes)
		}
	})
	c.w.eng.At(now+Time(c.w.sc.Model.Pods.LivenessDeadline), func(t Time, _ int64) {
		if p.phase == podFetching && p.container == container {
			p.container++
			p.phase = podStarting
			c.w.rec.PodRestarted()
			c.startContainer(t, p)
		}
	}, 0)
}

func (c *cluster) loaded(now Time, p *pod, uplinkBytes float64) {
	if p.phase != podFetching {
		return // deleted while fetching: the bytes were sent for nothing
	}
	p.phase = podReady
	c.w.traffic.configLoaded(now, p)
	c.ready++
	c.peakReady = max(c.peakReady, c.ready)
	c.w.rec.PodConfigLoaded(dur(now), dur(now-p.created), uplinkBytes)
	c.w.lb.ready(now, p)
	c.recordPods(now)
	c.reconcile(now)
}

// remove deletes p. restart says the pod is deleted to be replaced, as in
// a restart storm or a rolling update, rather than scaled away.
func (c *cluster) remove(now Time, p *pod, restart bool) {
	if p.phase == podReady {
		c.ready--
	}
	p.phase = podGone
	if i := slices.Index(c.pods, p); i >= 0 {
		c.pods = slices.Delete(c.pods, i, i+1)
	}
	c.podsOnNode[p.node]--
	c.podsOfHunt[p.hunt]--
	c.w.lb.gone(now, p)
	c.w.delivery.release(now, p)
	c.w.controllers.podDeleted(now, p)
	if restart {
		c.w.rec.PodRestarted()
	}
	c.recordPods(now)
}

// reconcile converges the pod count on the desired replicas, as the
// Deployment controller does after every change.
func (c *cluster) reconcile(now Time) {
	if c.rollout != nil {
		c.rollout.step(now)
		return
	}
	for len(c.pods) < c.desired {
		c.create(now)
	}
	for len(c.pods) > c.desired {
		c.remove(now, c.scaleDownVictim(), false)
	}
	c.recordPods(now)
}

// scaleDownVictim picks the pod a scale-down removes: a pod that is not
// ready if there is one, else the newest, as the ReplicaSet controller does.
func (c *cluster) scaleDownVictim() *pod {
	for i := len(c.pods) - 1; i >= 0; i-- {
		if c.pods[i].phase != podReady {
			return c.pods[i]
		}
	}
	return c.pods[len(c.pods)-1]
}

func (c *cluster) recordPods(now Time) {
	c.w.rec.Pods(dur(now), len(c.pods), c.ready)
}

// addNode adds an empty node, which the scheduler then fills first.
func (c *cluster) addNode(now Time) {
	node := len(c.podsOnNode)
	c.podsOnNode = append(c.podsOnNode, 0)
	c.w.delivery.addNode()
	c.w.controllers.nodeAdded(now, node)
}

// scaleTo sets the desired replicas (autoscaling).
func (c *cluster) scaleTo(now Time, replicas int) {
	c.desired = replicas
	c.reconcile(now)
}

// restart deletes the pod with the given id, if it still exists, and lets
// the controller replace it.
func (c *cluster) restart(now Time, id int64) {
	p := c.byID[id]
	if p.phase == podGone {
		return
	}
	c.remove(now, p, true)
	c.reconcile(now)
}

// rollout is a Deployment rolling update in progress.
type rollout struct {
	c                    *cluster
	maxSurge, maxUnavail int
}

func (c *cluster) startRollout(now Time, maxSurge, maxUnavailable int) {
	for _, p := range c.pods {
		p.old = true
	}
	c.rollout = &rollout{c: c, maxSurge: maxSurge, maxUnavail: maxUnavailable}
	c.rollout.step(now)
}

// step creates new pods while the total stays within desired+maxSurge, and
// deletes old pods while the ready count stays at or above
// desired-maxUnavailable, until no old pod is left.
func (r *rollout) step(now Time) {
	c := r.c
	countNew := func() int {
		n := 0
		for _, p := range c.pods {
			if !p.old {
				n++
			}
		}
		return n
	}
	for len(c.pods) < c.desired+r.maxSurge && countNew() < c.desired {
		c.create(now)
	}
	for _, p := range slices.Clone(c.pods) {
		if !p.old {
			continue
		}
		if p.phase == podReady && c.ready-1 < c.desired-r.maxUnavail {
			continue
		}
		c.remove(now, p, true)
		for len(c.pods) < c.desired+r.maxSurge && countNew() < c.desired {
			c.create(now)
		}
	}
	if countNew() == len(c.pods) {
		c.rollout = nil
		c.reconcile(now)
	}
}

// offset is p's own phase in a period: where its reconciles fall in the
// operator's reconcile interval, scaled to the period.
func (p *pod) offset(period, interval Time) Time {
	if period == interval {
		return p.reconcile
	}
	return Time(float64(p.reconcile) / float64(interval) * float64(period))
}
