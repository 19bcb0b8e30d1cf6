package sim

// apiServer is kube-apiserver as the operator's requests meet it: API
// Priority and Fairness gives the operator's priority level a number of
// seats; a request holds one from admission until etcd answers it, plus
// the apiserver's own overhead. Requests beyond the seats wait in the
// level's queues, and beyond the queues they are answered 429 at once
// (F11, T2).
type apiServer struct {
	w          *World
	seats      int
	queueLen   int
	overhead   Time
	retryAfter Time
	inflight   int
	queue      []*apiCall
}

// apiCall is one request to kube-apiserver.
type apiCall struct {
	write bool
	bytes float64 // what a read returns
	done  func(now Time, ok bool)
}

func newAPIServer(w *World) *apiServer {
	m := w.sc.Model.APIServer
	return &apiServer{w: w, seats: m.OperatorSeats, queueLen: m.QueueLength, overhead: Time(m.Overhead), retryAfter: Time(m.RetryAfter)}
}

// submit admits c, queues it, or answers 429.
func (a *apiServer) submit(now Time, c *apiCall) {
	switch {
	case a.inflight < a.seats:
		a.w.rec.APIRequest(dur(now), false)
		a.serve(now, c)
	case len(a.queue) < a.queueLen:
		a.w.rec.APIRequest(dur(now), false)
		a.queue = append(a.queue, c)
	default:
		a.w.rec.APIRequest(dur(now), true)
		c.done(now, false)
	}
}

func (a *apiServer) serve(now Time, c *apiCall) {
	a.inflight++
	finish := func(at Time) {
		a.w.eng.At(at+a.overhead, func(t Time, _ int64) {
			a.inflight--
			if len(a.queue) > 0 {
				next := a.queue[0]
				a.queue = a.queue[1:]
				a.serve(t, next)
			}
			c.done(t, true)
		}, 0)
	}
	if c.write {
		a.w.etcd.write(now, finish)
	} else {
		a.w.etcd.read(now, c.bytes, finish)
	}
}

// call sends c through a client's rate limiter to the API server. A 429
// is retried after the server's Retry-After, as client-go does; c.done
// is called once, when a try succeeds.
func (a *apiServer) call(now Time, limiter *tokenBucket, c *apiCall) {
	var try func(at Time) // at is the current time
	try = func(at Time) {
		a.w.eng.At(limiter.reserve(at), func(t Time, _ int64) {
			a.submit(t, &apiCall{write: c.write, bytes: c.bytes, done: func(end Time, ok bool) {
				if ok {
					c.done(end, true)
					return
				}
				a.w.eng.At(end+a.retryAfter, func(t Time, _ int64) { try(t) }, 0)
			}})
		}, 0)
	}
	try(now)
}
