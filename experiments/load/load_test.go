package load

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/churnlab/churnlab/experiments/metrics"
	"github.com/churnlab/churnlab/experiments/scenario"
)

// pod is a game pod stand-in: /play answers 200 once it is ready, and
// /healthz says whether it is.
type pod struct {
	srv   *httptest.Server
	ready atomic.Bool
	plays atomic.Int64
}

func newPod(t *testing.T, ready bool) *pod {
	t.Helper()
	p := &pod{}
	p.ready.Store(ready)
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !p.ready.Load() {
			http.Error(w, "no config yet", http.StatusServiceUnavailable)
			return
		}
		if r.URL.Path == "/play" {
			p.plays.Add(1)
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *pod) addr() string { return strings.TrimPrefix(p.srv.URL, "http://") }

var fastChecks = scenario.HealthCheck{Interval: scenario.Duration(20 * time.Millisecond), FailThreshold: 2, PassThreshold: 2}

func waitRotation(t *testing.T, lb *Balancer, want int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for lb.InRotation() != want {
		if time.Now().After(deadline) {
			t.Fatalf("%d pods in rotation, want %d", lb.InRotation(), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestBalancerFollowsHealthChecks: pods join after passing checks, a pod
// without config never does, and a pod that is deleted keeps getting
// requests (which fail) until its checks fail, and is then forgotten.
func TestBalancerFollowsHealthChecks(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	lb := NewBalancer(fastChecks, "/healthz")
	go lb.Run(ctx)
	a, b, cold := newPod(t, true), newPod(t, true), newPod(t, false)
	for _, p := range []*pod{a, b, cold} {
		lb.Add(p.addr())
	}
	front := httptest.NewServer(lb)
	defer front.Close()
	if code := get(t, front.URL+"/play"); code != http.StatusServiceUnavailable {
		t.Errorf("before any check passed: %d, want 503", code)
	}
	waitRotation(t, lb, 2)
	for range 10 {
		if code := get(t, front.URL+"/play"); code != http.StatusOK {
			t.Fatalf("with two pods in rotation: %d", code)
		}
	}
	if a.plays.Load() != 5 || b.plays.Load() != 5 || cold.plays.Load() != 0 {
		t.Errorf("plays %d, %d, %d; want 5, 5 and none for the pod without config", a.plays.Load(), b.plays.Load(), cold.plays.Load())
	}
	// b is deleted: for a while requests still go to it and fail (F7),
	// though the runner has told the balancer.
	b.srv.CloseClientConnections()
	b.srv.Close()
	lb.Retire(b.addr())
	failed := 0
	for range 4 {
		if get(t, front.URL+"/play") != http.StatusOK {
			failed++
		}
	}
	if failed == 0 {
		t.Error("no request failed right after a pod died; the balancer cannot know before its checks fail")
	}
	waitRotation(t, lb, 1)
	lb.mu.Lock()
	kept := len(lb.backends)
	lb.mu.Unlock()
	if kept != 2 {
		t.Errorf("%d pods known after the retired one left rotation, want 2", kept)
	}
	cold.ready.Store(true)
	waitRotation(t, lb, 2)
}

func get(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// TestAttackRecordsEveryResult: 200 requests a second for one second
// through the balancer; every one lands in the recorder, and the raw
// file holds the same results for `vegeta report`.
func TestAttackRecordsEveryResult(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	lb := NewBalancer(fastChecks, "/healthz")
	go lb.Run(ctx)
	lb.Add(newPod(t, true).addr())
	waitRotation(t, lb, 1)
	front := httptest.NewServer(lb)
	defer front.Close()

	rec := metrics.NewRecorder()
	var raw bytes.Buffer
	if err := Attack(ctx, AttackOptions{Target: front.URL + "/play", Rate: 200, Duration: time.Second, Timeout: 2 * time.Second}, rec.Request, &raw); err != nil {
		t.Fatal(err)
	}
	s := rec.Summary(metrics.Run{Duration: time.Second})
	if *s.Requests.Total != 200 || *s.Requests.SuccessRatio != 1 {
		t.Errorf("%d requests, success %v; want 200 and 1", *s.Requests.Total, *s.Requests.SuccessRatio)
	}
	encoded := raw.Bytes()
	dec := vegeta.NewDecoder(bytes.NewReader(encoded))
	n := 0
	for {
		var r vegeta.Result
		if err := dec.Decode(&r); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 200 {
		t.Errorf("raw vegeta results: %d, want 200", n)
	}
	var report bytes.Buffer
	if err := Report(bytes.NewReader(encoded), &report); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		fmt.Sprintf("Requests      [total, rate, throughput]         %d,", n),
		"Success       [ratio]                           100.00%",
		fmt.Sprintf("Status Codes  [code:count]                      200:%d", n),
	} {
		if !strings.Contains(report.String(), want) {
			t.Errorf("vegeta report lacks %q:\n%s", want, report.String())
		}
	}
}

// TestReportRefusesGarbage: bad raw results are an error, not a report.
func TestReportRefusesGarbage(t *testing.T) {
	if err := Report(strings.NewReader("not vegeta results"), io.Discard); err == nil || !strings.Contains(err.Error(), "decoding vegeta results") {
		t.Errorf("Report(garbage) = %v, want a decoding error", err)
	}
}

func TestAttackRefusesNonsense(t *testing.T) {
	err := Attack(context.Background(), AttackOptions{Target: "http://127.0.0.1:1/", Rate: 0, Duration: time.Second}, metrics.NewRecorder().Request, nil)
	if err == nil || !strings.Contains(err.Error(), "positive rate") {
		t.Errorf("err = %v, want one about the rate", err)
	}
	err = Attack(context.Background(), AttackOptions{Target: "http://127.0.0.1:1/", Rate: 1, Duration: time.Second, Retries: -1}, metrics.NewRecorder().Request, nil)
	if err == nil || !strings.Contains(err.Error(), "retries") {
		t.Errorf("err = %v, want one about the retries", err)
	}
}

// TestAttackRetriesFailures: a failed try is tried again RetryDelay after
// it failed, Retries times at most, and the retries add to the first
// tries' rate; a run where nothing fails sends the first tries alone.
func TestAttackRetriesFailures(t *testing.T) {
	for _, tc := range []struct {
		name    string
		fail    bool
		retries int
	}{{"all fail, one retry", true, 1}, {"all fail, two retries", true, 2}, {"none fail", false, 2}} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				if tc.fail {
					http.Error(w, "shed", http.StatusServiceUnavailable)
				}
			}))
			defer srv.Close()
			const rate, delay = 20, 200 * time.Millisecond
			duration := 2 * time.Second
			var (
				mu     sync.Mutex
				starts []time.Duration
			)
			start := time.Now()
			err := Attack(context.Background(), AttackOptions{Target: srv.URL, Rate: rate, Duration: duration, Start: start, Retries: tc.retries, RetryDelay: delay},
				func(s, _ time.Duration, ok bool) {
					mu.Lock()
					defer mu.Unlock()
					if ok == tc.fail {
						t.Errorf("a try at %s: ok = %v", s, ok)
					}
					starts = append(starts, s)
				}, nil)
			if err != nil {
				t.Fatal(err)
			}
			first := rate * int(duration/time.Second)
			if !tc.fail {
				if len(starts) != first {
					t.Errorf("%d requests with nothing failing; want the %d first tries alone", len(starts), first)
				}
				return
			}
			// Round k retries the failures of round k-1 that are due
			// before the end: all but those of the last k delays (and a
			// few more for the failures' own latency).
			most, least := first*(1+tc.retries), 0
			for k := 0; k <= tc.retries; k++ {
				least += first - k*(rate*int(delay)/int(time.Second)+3)
			}
			if len(starts) < least || len(starts) > most {
				t.Errorf("%d tries with every one failing, %d retries each; want %d to %d", len(starts), tc.retries, least, most)
			}
			// No retry comes sooner than delay after the first try.
			var early int
			for _, s := range starts {
				if s < delay {
					early++
				}
			}
			if want := rate * int(delay) / int(time.Second); early > want+1 {
				t.Errorf("%d tries started in the first %s; want the %d first tries alone (retries wait %s)", early, delay, want, delay)
			}
		})
	}
}
