package sim

import "slices"

// busyPods lets an aggregate traffic step cost what the pods that need
// it cost, not what the cluster's size does. It lists, in rotation order,
// the pods in rotation that a step must look at one by one: deleted ones
// still in rotation, stalled ones and those with a backlog. Every other
// pod in rotation is ready, unstalled and without a backlog, and while
// the load stays under a pod's capacity a step treats those alike,
// counting them; cold lists the pods whose hunt state may still be cold,
// so that the idle ones among them are counted apart. A step so comes to
// the same outcomes, in the same order, as one that looks at every pod.
type busyPods struct {
	list []*pod // by rotationSeq
	cold []*pod // in rotation or not; dropped once warm or out of rotation
}

// mark lists p, if it is in rotation and not listed yet.
func (b *busyPods) mark(p *pod) {
	if p.busy || !p.inRotation {
		return
	}
	p.busy = true
	i, _ := slices.BinarySearchFunc(b.list, p.rotationSeq, func(q *pod, seq int) int { return q.rotationSeq - seq })
	b.list = slices.Insert(b.list, i, p)
}

// unmark drops p from the list, as it leaves rotation.
func (b *busyPods) unmark(p *pod) {
	if !p.busy {
		return
	}
	p.busy = false
	if i, found := slices.BinarySearchFunc(b.list, p.rotationSeq, func(q *pod, seq int) int { return q.rotationSeq - seq }); found {
		b.list = slices.Delete(b.list, i, i+1)
	}
}

// warming notes that p's hunt state is cold until p.warmAt.
func (b *busyPods) warming(p *pod) {
	if !p.coldListed {
		p.coldListed = true
		b.cold = append(b.cold, p)
	}
}

// idleCold counts the unlisted pods in rotation that are cold at now,
// dropping from cold the pods that are warm or out of rotation.
func (b *busyPods) idleCold(now Time) int {
	n := 0
	b.cold = slices.DeleteFunc(b.cold, func(p *pod) bool {
		if !p.inRotation || now >= p.warmAt {
			p.coldListed = false
			return true
		}
		if !p.busy {
			n++
		}
		return false
	})
	return n
}

// needsLook reports whether a step must look at p on its own at now.
func needsLook(p *pod, now Time) bool {
	return p.phase != podReady || p.backlog > 0 || p.stalled(now) > 0
}

// rebuild lists the pods of rotation (in its order) that need a look at
// now, after a step that looked at every pod.
func (b *busyPods) rebuild(rotation []*pod, now Time) {
	for _, p := range b.list {
		p.busy = false
	}
	b.list = b.list[:0]
	for _, p := range rotation {
		if needsLook(p, now) {
			p.busy = true
			b.list = append(b.list, p)
		}
	}
}
