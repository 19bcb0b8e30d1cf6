package pod

import (
	"context"
	"net/http"
	"testing"
	"time"
)

func get(t *testing.T, ctx context.Context, url string) int {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestGameServesOnlyWithConfig(t *testing.T) {
	g, err := StartGame(GameOptions{Capacity: 1e6, MaxQueue: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	base := "http://" + g.Addr()
	ctx := context.Background()
	if p, h := get(t, ctx, base+"/play"), get(t, ctx, base+"/healthz"); p != 503 || h != 503 {
		t.Errorf("without config: /play %d, /healthz %d; want 503 both", p, h)
	}
	g.SetReady()
	if p, h := get(t, ctx, base+"/play"), get(t, ctx, base+"/healthz"); p != 200 || h != 200 {
		t.Errorf("with config: /play %d, /healthz %d; want 200 both", p, h)
	}
	g.Close()
	if p := get(t, ctx, base+"/play"); p != 0 {
		t.Errorf("a closed pod answered %d", p)
	}
}

// With a service time in the seconds and no queue allowed, a request
// that arrives while another is being served is shed.
func TestGameShedsPastItsQueue(t *testing.T) {
	g, err := StartGame(GameOptions{Capacity: 0.1, MaxQueue: 0, Seed: 1}) // 10 s a request on average
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	g.SetReady()
	base := "http://" + g.Addr()
	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan int, 1)
	go func() { first <- get(t, ctx, base+"/play") }()
	// Wait until the first request holds the server.
	for {
		g.mu.Lock()
		busy := !g.queueEnd.IsZero()
		g.mu.Unlock()
		if busy {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if code := get(t, context.Background(), base+"/play"); code != http.StatusServiceUnavailable {
		t.Errorf("second request while the first is served: %d, want 503", code)
	}
	cancel()
	<-first
}
