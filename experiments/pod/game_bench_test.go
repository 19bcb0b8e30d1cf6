package pod

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/churnlab/churnlab/experiments/load"
	"github.com/churnlab/churnlab/experiments/scenario"
)

// BenchmarkBalancedPlay is the live harness's own cost per game request:
// a keep-alive client through the health-checked balancer's reverse proxy
// to a pod whose service and path latency are (nearly) zero. Live
// latencies include this on top of the scenario's.
func BenchmarkBalancedPlay(b *testing.B) {
	g, err := StartGame(GameOptions{Capacity: 1e12, MaxQueue: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	defer g.Close()
	g.SetReady()
	hc := scenario.HealthCheck{Interval: scenario.Duration(10 * time.Millisecond), FailThreshold: 1, PassThreshold: 1}
	lb := load.NewBalancer(hc, "/healthz")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go lb.Run(ctx)
	lb.Add(g.Addr())
	for lb.InRotation() == 0 {
		time.Sleep(time.Millisecond)
	}
	front := httptest.NewServer(lb)
	defer front.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := client.Get(front.URL + "/play")
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
}
