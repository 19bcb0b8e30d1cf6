package metrics

import "time"

// Between answers questions about the windows from from (inclusive) to to
// (exclusive), both whole multiples of Window: what a calibration test or
// a report asks of one phase of a run, such as the minute before a storm.
type Between struct {
	r        *Recorder
	from, to int // window indexes
}

// Between selects the windows in [from, to).
func (r *Recorder) Between(from, to time.Duration) Between {
	return Between{r: r, from: int(from / Window), to: min(int(to/Window), len(r.windows))}
}

func (b Between) each(f func(w *window)) {
	for i := max(b.from, 0); i < b.to; i++ {
		f(&b.r.windows[i])
	}
}

// RequestP99Ms is the p99 latency of the requests that started in the
// range, in milliseconds, or nil if there were none.
func (b Between) RequestP99Ms() *float64 {
	h := newLatencyHistogram(windowSigFigs)
	b.each(func(w *window) {
		if w.latency != nil {
			h.Merge(w.latency)
		}
	})
	return quantileMs(h, 99)
}

// EtcdRoundP99Ms is the p99 of the etcd leader rounds started in the
// range, in milliseconds, or nil if there were none.
func (b Between) EtcdRoundP99Ms() *float64 {
	h := newLatencyHistogram(windowSigFigs)
	b.each(func(w *window) {
		if w.etcdRounds != nil {
			h.Merge(w.etcdRounds)
		}
	})
	return quantileMs(h, 99)
}

// SuccessRatio is the share of the range's requests that succeeded, or
// nil if there were none.
func (b Between) SuccessRatio() *float64 {
	var ok, total int64
	b.each(func(w *window) { ok, total = ok+w.ok, total+w.requests })
	if total == 0 {
		return nil
	}
	return ptr(float64(ok) / float64(total))
}

// APIRequests counts the API server requests in the range, and how many
// of them were answered 429.
func (b Between) APIRequests() (requests, throttled int64) {
	b.each(func(w *window) { requests, throttled = requests+w.apiRequests, throttled+w.api429 })
	return requests, throttled
}
