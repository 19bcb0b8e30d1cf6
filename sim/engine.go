package sim

import (
	"fmt"
	"strconv"
)

// Time is virtual time: integer nanoseconds since the start of a run.
type Time int64

// Units of Time.
const (
	Nanosecond  Time = 1
	Microsecond      = 1000 * Nanosecond
	Millisecond      = 1000 * Microsecond
	Second           = 1000 * Millisecond
	Minute           = 60 * Second
)

// Seconds returns t in seconds.
func (t Time) Seconds() float64 { return float64(t) / float64(Second) }

// String formats t in seconds with millisecond precision, e.g. "75.250s".
func (t Time) String() string { return strconv.FormatFloat(t.Seconds(), 'f', 3, 64) + "s" }

// Action is what an event does when its time comes. arg carries whatever
// the scheduling model needs back (an index, a generation); actions are
// plain function values so that scheduling allocates nothing.
type Action func(now Time, arg int64)

// Engine is a discrete-event loop over a virtual clock. Events run in
// (time, sequence) order, so two events at the same instant run in the
// order they were scheduled, and a run is a pure function of its inputs.
// It is single-threaded and not safe for concurrent use.
type Engine struct {
	now   Time
	seq   uint64
	steps uint64
	queue eventQueue
}

// NewEngine returns an engine at time 0 with nothing scheduled.
func NewEngine() *Engine { return &Engine{} }

// Now returns the current virtual time.
func (e *Engine) Now() Time { return e.now }

// At schedules act(at, arg). Scheduling in the past is a model bug and
// panics, naming both times.
func (e *Engine) At(at Time, act Action, arg int64) {
	if at < e.now {
		panic(fmt.Sprintf("sim: event scheduled at %s, before now (%s)", at, e.now))
	}
	e.seq++
	e.queue.push(event{at: at, seq: e.seq, act: act, arg: arg})
}

// After schedules act(now+d, arg).
func (e *Engine) After(d Time, act Action, arg int64) { e.At(e.now+d, act, arg) }

// Step runs the earliest pending event and reports whether there was one.
func (e *Engine) Step() bool {
	if len(e.queue) == 0 {
		return false
	}
	ev := e.queue.pop()
	e.now = ev.at
	e.steps++
	ev.act(ev.at, ev.arg)
	return true
}

// RunUntil runs every event due at or before t, then moves the clock to t.
func (e *Engine) RunUntil(t Time) {
	for len(e.queue) > 0 && e.queue[0].at <= t {
		e.Step()
	}
	if t > e.now {
		e.now = t
	}
}

// Pending returns the number of scheduled events.
func (e *Engine) Pending() int { return len(e.queue) }

// Steps returns the number of events run so far.
func (e *Engine) Steps() uint64 { return e.steps }

type event struct {
	at  Time
	seq uint64
	act Action
	arg int64
}

func (a *event) before(b *event) bool {
	return a.at < b.at || (a.at == b.at && a.seq < b.seq)
}

// eventQueue is a 4-ary min-heap of events: shallower than a binary heap,
// and a node's four children share a cache line or two.
type eventQueue []event

func (q *eventQueue) push(ev event) {
	h := append(*q, ev)
	i := len(h) - 1
	for i > 0 {
		parent := (i - 1) / 4
		if !h[i].before(&h[parent]) {
			break
		}
		h[i], h[parent] = h[parent], h[i]
		i = parent
	}
	*q = h
}

func (q *eventQueue) pop() event {
	h := *q
	top := h[0]
	last := len(h) - 1
	moving := h[last]
	h[last] = event{} // drop the Action reference
	h = h[:last]
	*q = h
	if last == 0 {
		return top
	}
	i := 0
	for {
		first := 4*i + 1
		if first >= last {
			break
		}
		child := first
		for c := first + 1; c < first+4 && c < last; c++ {
			if h[c].before(&h[child]) {
				child = c
			}
		}
		if !h[child].before(&moving) {
			break
		}
		h[i] = h[child]
		i = child
	}
	h[i] = moving
	return top
}
