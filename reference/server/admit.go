package server

import (
	"context"
	"fmt"
	"sync"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// admission bounds the work of opening streams: at most slots catch-ups
// run at once, at most waiters more wait for a slot, and any further
// Watch is shed at once with ResourceExhausted and a RetryInfo saying
// when to come back, instead of queueing without bound. A reconnect storm
// (every agent of a restarted replica at once) is thus served at the rate
// the replica can catch streams up, and the rest retry later.
type admission struct {
	slots   chan struct{}
	waiters int

	mu      sync.Mutex
	waiting int
	mean    time.Duration // moving mean of a catch-up's duration
	// sheds in this second and the one before: how many callers are
	// coming back, so that the hint spreads them over the time the
	// replica needs for all of them.
	shedNow, shedBefore int
	second              int64
}

func newAdmission(slots, waiters int) *admission {
	return &admission{slots: make(chan struct{}, slots), waiters: waiters, mean: time.Millisecond}
}

// admit takes a slot, waiting if the queue has room, and returns the
// function that gives it back; or sheds the caller.
func (a *admission) admit(ctx context.Context) (release func(), err error) {
	select {
	case a.slots <- struct{}{}:
		return a.releaser(), nil
	default:
	}
	a.mu.Lock()
	if a.waiting >= a.waiters {
		if sec := time.Now().Unix(); sec != a.second {
			a.shedBefore, a.shedNow = a.shedNow, 0
			if sec > a.second+1 {
				a.shedBefore = 0 // a quiet second came between
			}
			a.second = sec
		}
		a.shedNow++
		// Everyone waiting, and everyone shed lately who will come back,
		// at the rate slots free up.
		contenders := a.waiting + max(a.shedNow, a.shedBefore)
		hint := min(max(a.mean*time.Duration(contenders)/time.Duration(cap(a.slots)), 50*time.Millisecond), 10*time.Second)
		a.mu.Unlock()
		st, _ := status.New(codes.ResourceExhausted, fmt.Sprintf("replica busy catching up %d streams with %d waiting; retry in %s", cap(a.slots), a.waiters, hint.Round(time.Millisecond))).
			WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(hint)})
		return nil, st.Err()
	}
	a.waiting++
	a.mu.Unlock()
	defer func() { a.mu.Lock(); a.waiting--; a.mu.Unlock() }()
	select {
	case a.slots <- struct{}{}:
		return a.releaser(), nil
	case <-ctx.Done():
		return nil, status.FromContextError(ctx.Err()).Err()
	}
}

func (a *admission) releaser() func() {
	start := time.Now()
	return func() {
		d := time.Since(start)
		a.mu.Lock()
		a.mean += (d - a.mean) / 8
		a.mu.Unlock()
		<-a.slots
	}
}
