package load

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// AttackOptions is one vegeta attack.
type AttackOptions struct {
	Target   string        // URL to GET
	Rate     int           // requests a second, first tries
	Duration time.Duration // how long
	Timeout  time.Duration // a request slower than this fails; the scenario's client timeout
	Start    time.Time     // the run's start, which results are recorded relative to
	// Retries is how many times a player retries a failed request, each
	// RetryDelay after the try before failed (model.players.retries and
	// retryDelay, as the simulator's players do). Retries due after the
	// attack's end are not sent.
	Retries    int
	RetryDelay time.Duration
}

// Attack runs the attack until its duration or ctx ends. Every result,
// first tries and retries alike, goes to record (metrics.Recorder.Request,
// say), at its offset from opts.Start, as a success if it got a 200; and,
// encoded, to raw if raw is not nil, which `vegeta report` reads. It
// returns ctx.Err() if ctx ended the attack early.
//
// The first tries are one vegeta attack at opts.Rate; each round of
// retries is another, paced by the failures of the round before
// (retryPacer), so retries add load as a player's would.
func Attack(ctx context.Context, opts AttackOptions, record func(start, latency time.Duration, ok bool), raw io.Writer) error {
	if opts.Rate <= 0 || opts.Duration <= 0 {
		return fmt.Errorf("load: attack needs a positive rate and duration, got %d/s for %s", opts.Rate, opts.Duration)
	}
	if opts.Retries < 0 || opts.RetryDelay < 0 {
		return fmt.Errorf("load: retries and their delay must not be negative, got %d and %s", opts.Retries, opts.RetryDelay)
	}
	if opts.Timeout <= 0 {
		opts.Timeout = vegeta.DefaultTimeout
	}
	if opts.Start.IsZero() {
		opts.Start = time.Now()
	}
	end := time.Now().Add(opts.Duration)
	targeter := vegeta.NewStaticTargeter(vegeta.Target{Method: http.MethodGet, URL: opts.Target})
	// retries[k] paces the (k+1)th tries.
	retries := make([]*retryPacer, opts.Retries)
	for k := range retries {
		retries[k] = newRetryPacer(end, ctx.Done())
	}
	var (
		encodeMu  sync.Mutex
		encode    vegeta.Encoder
		encodeErr error
	)
	if raw != nil {
		encode = vegeta.NewEncoder(raw)
	}
	var rounds sync.WaitGroup
	for k := 0; k <= opts.Retries; k++ {
		var pacer vegeta.Pacer = vegeta.Rate{Freq: opts.Rate, Per: time.Second}
		name := "churnlab"
		if k > 0 {
			pacer, name = retries[k-1], fmt.Sprintf("churnlab-retry-%d", k)
		}
		attacker := vegeta.NewAttacker(vegeta.Timeout(opts.Timeout), vegeta.KeepAlive(true))
		results := attacker.Attack(targeter, pacer, opts.Duration, name)
		stop := context.AfterFunc(ctx, func() { attacker.Stop() })
		rounds.Add(1)
		go func() {
			defer rounds.Done()
			defer stop()
			for r := range results {
				ok := r.Code == http.StatusOK
				record(r.Timestamp.Sub(opts.Start), r.Latency, ok)
				if !ok && k < opts.Retries {
					retries[k].push(r.Timestamp.Add(r.Latency + opts.RetryDelay))
				}
				if encode != nil {
					encodeMu.Lock()
					if encodeErr == nil {
						encodeErr = encode(r)
					}
					encodeMu.Unlock()
				}
			}
		}()
	}
	rounds.Wait()
	if encodeErr != nil {
		return fmt.Errorf("load: writing vegeta results: %w", encodeErr)
	}
	return ctx.Err()
}

// retryPacer is a vegeta.Pacer for one round of retries: one hit for each
// failed try of the round before, when it is due. Pace blocks until the
// next retry is due, and stops the round at the attack's end or when done
// is closed. Retries are due in about the order their tries failed (the
// delay is the same for all), so they wait in a FIFO queue.
type retryPacer struct {
	mu   sync.Mutex
	due  []time.Time
	wake chan struct{} // a retry was queued
	end  time.Time
	done <-chan struct{}
}

func newRetryPacer(end time.Time, done <-chan struct{}) *retryPacer {
	return &retryPacer{wake: make(chan struct{}, 1), end: end, done: done}
}

// push queues a retry due at.
func (p *retryPacer) push(at time.Time) {
	p.mu.Lock()
	p.due = append(p.due, at)
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

func (p *retryPacer) Pace(time.Duration, uint64) (time.Duration, bool) {
	for {
		now := time.Now()
		p.mu.Lock()
		var next time.Time
		if len(p.due) > 0 {
			next = p.due[0]
			if !now.Before(next) {
				p.due = p.due[1:]
				p.mu.Unlock()
				return 0, !now.Before(p.end)
			}
		}
		p.mu.Unlock()
		wait := p.end.Sub(now)
		if wait <= 0 {
			return 0, true
		}
		if !next.IsZero() {
			wait = min(wait, next.Sub(now))
		}
		timer := time.NewTimer(wait)
		select {
		case <-p.wake:
		case <-timer.C:
		case <-p.done:
			timer.Stop()
			return 0, true
		}
		timer.Stop()
	}
}

// Rate is 0: a round of retries has no rate of its own, its hits follow
// the failures of the round before. (Attack paces by Pace alone.)
func (p *retryPacer) Rate(time.Duration) float64 { return 0 }

// Report writes `vegeta report`'s text for the raw results Attack wrote:
// the committed, readable trace of a run's requests (the raw file is too
// large to commit), which its summary.json can be checked against.
func Report(raw io.Reader, w io.Writer) error {
	var m vegeta.Metrics
	dec := vegeta.NewDecoder(raw)
	for {
		var r vegeta.Result
		if err := dec.Decode(&r); err == io.EOF {
			break
		} else if err != nil {
			return fmt.Errorf("load: decoding vegeta results: %w", err)
		}
		m.Add(&r)
	}
	m.Close()
	return vegeta.NewTextReporter(&m).Report(w)
}
