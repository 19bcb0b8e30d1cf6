package sim

import (
	"container/heap"
	"math"
)

// Uplink is a link of fixed capacity shared by every transfer on it,
// processor-sharing: n active transfers each get capacity/n. This is how
// the config store's 1 Gbps uplink behaves when a restart storm starts
// hundreds of config downloads at once (F5, F6).
//
// The link's egress port buffers up to buffer bytes. While transfers are
// backlogged their TCP flows keep that queue full, and any other packet
// on the link (etcd's heartbeats to its followers) waits behind it:
// QueueDelay.
//
// Unlike a FIFO link, a transfer's finish time depends on transfers that
// start after it, so Send cannot return it; the uplink calls done when
// the last byte is sent. The implementation tracks the service every
// active transfer has received so far (all receive the same), so each
// start or finish costs O(log n).
type Uplink struct {
	eng      *Engine
	capacity float64 // bytes per second
	buffer   float64 // bytes the egress port queues
	egress   func(from, to Time, bytes float64)

	active   transferHeap
	served   float64 // bytes each active transfer has received since the link was last idle
	finishes float64 // sum of the active transfers' finishAt
	lastTick Time
	gen      int64 // invalidates a scheduled completion when the active set changes
	sends    int64
	onFinish Action
}

// NewUplink returns an idle link of capacity bytes per second whose port
// buffers buffer bytes. egress is told how many bytes the link sent over
// each interval it was busy.
func NewUplink(eng *Engine, capacity, buffer float64, egress func(from, to Time, bytes float64)) *Uplink {
	u := &Uplink{eng: eng, capacity: capacity, buffer: buffer, egress: egress}
	u.onFinish = u.finish
	return u
}

// Active returns the number of transfers in progress.
func (u *Uplink) Active() int { return len(u.active) }

// QueueDelay is how long a packet sent at now waits in the link's port:
// the bytes queued ahead of it (the buffer, or what the transfers have
// left to send if less) at the link's capacity.
func (u *Uplink) QueueDelay(now Time) Time {
	if len(u.active) == 0 {
		return 0
	}
	left := u.finishes - float64(len(u.active))*u.served - u.capacity*(now-u.lastTick).Seconds()
	return Time(min(max(left, 0), u.buffer) / u.capacity * float64(Second))
}

// Send starts a transfer of bytes (more than 0) at now and calls done at
// the time its last byte is sent.
func (u *Uplink) Send(now Time, bytes float64, done func(now Time)) {
	if !(bytes > 0) {
		panic("sim: Uplink.Send of a non-positive size")
	}
	u.advance(now)
	u.sends++
	heap.Push(&u.active, transfer{finishAt: u.served + bytes, done: done, seq: u.sends})
	u.finishes += u.served + bytes
	u.schedule(now)
}

// advance brings the shared service counter up to now.
func (u *Uplink) advance(now Time) {
	if n := len(u.active); n > 0 && now > u.lastTick {
		bytes := u.capacity * (now - u.lastTick).Seconds()
		u.served += bytes / float64(n)
		u.egress(u.lastTick, now, bytes)
	}
	u.lastTick = now
}

// schedule plans the next completion for the current active set.
func (u *Uplink) schedule(now Time) {
	u.gen++
	if len(u.active) == 0 {
		u.served, u.finishes = 0, 0 // keep the counters small so float precision holds
		return
	}
	remaining := max(u.active[0].finishAt-u.served, 0) * float64(len(u.active))
	wait := Time(math.Ceil(remaining / u.capacity * float64(Second)))
	u.eng.At(now+wait, u.onFinish, u.gen)
}

func (u *Uplink) finish(now Time, gen int64) {
	if gen != u.gen {
		return // the active set changed after this completion was planned
	}
	u.advance(now)
	var done []func(Time)
	// Rounding the wait up to whole nanoseconds can leave a transfer a
	// hair short; anything within a millionth of a byte is finished.
	for len(u.active) > 0 && u.active[0].finishAt <= u.served+1e-6 {
		t := heap.Pop(&u.active).(transfer)
		u.finishes -= t.finishAt
		done = append(done, t.done)
	}
	u.schedule(now)
	for _, d := range done {
		d(now)
	}
}

type transfer struct {
	finishAt float64 // value of served at which this transfer completes
	done     func(Time)
	seq      int64
}

// transferHeap orders transfers by finish point. Ties keep start order so
// that completions are deterministic.
type transferHeap []transfer

func (h transferHeap) Len() int { return len(h) }
func (h transferHeap) Less(i, j int) bool {
	return h[i].finishAt < h[j].finishAt || (h[i].finishAt == h[j].finishAt && h[i].seq < h[j].seq)
}
func (h transferHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *transferHeap) Push(x any)   { *h = append(*h, x.(transfer)) }
func (h *transferHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
