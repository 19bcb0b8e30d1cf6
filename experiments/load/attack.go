package load

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// AttackOptions is one vegeta attack.
type AttackOptions struct {
	Target   string        // URL to GET
	Rate     int           // requests a second
	Duration time.Duration // how long
	Timeout  time.Duration // a request slower than this fails; the scenario's client timeout
	Start    time.Time     // the run's start, which results are recorded relative to
}

// Attack runs the attack until its duration or ctx ends. Every result
// goes to record (metrics.Recorder.Request, say), at its offset from
// opts.Start, as a success if it got a 200; and, encoded, to raw if raw
// is not nil, which `vegeta report` reads. It returns ctx.Err() if ctx
// ended the attack early.
func Attack(ctx context.Context, opts AttackOptions, record func(start, latency time.Duration, ok bool), raw io.Writer) error {
	if opts.Rate <= 0 || opts.Duration <= 0 {
		return fmt.Errorf("load: attack needs a positive rate and duration, got %d/s for %s", opts.Rate, opts.Duration)
	}
	if opts.Timeout <= 0 {
		opts.Timeout = vegeta.DefaultTimeout
	}
	if opts.Start.IsZero() {
		opts.Start = time.Now()
	}
	attacker := vegeta.NewAttacker(vegeta.Timeout(opts.Timeout), vegeta.KeepAlive(true))
	targeter := vegeta.NewStaticTargeter(vegeta.Target{Method: http.MethodGet, URL: opts.Target})
	results := attacker.Attack(targeter, vegeta.Rate{Freq: opts.Rate, Per: time.Second}, opts.Duration, "churnlab")
	var encode vegeta.Encoder
	if raw != nil {
		encode = vegeta.NewEncoder(raw)
	}
	stop := context.AfterFunc(ctx, func() { attacker.Stop() })
	defer stop()
	var encodeErr error
	for r := range results {
		record(r.Timestamp.Sub(opts.Start), r.Latency, r.Code == http.StatusOK)
		if encode != nil && encodeErr == nil {
			encodeErr = encode(r)
		}
	}
	if encodeErr != nil {
		return fmt.Errorf("load: writing vegeta results: %w", encodeErr)
	}
	return ctx.Err()
}
