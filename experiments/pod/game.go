package pod

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/churnlab/churnlab/internal/ctxsleep"
)

// GameOptions shapes how a pod serves game requests.
type GameOptions struct {
	Capacity    float64       // requests a second the pod serves: mean service time 1/Capacity (workload.podCapacity)
	BaseLatency time.Duration // fixed path latency off the pod's queue: network, Redis (workload.baseLatency)
	MaxQueue    time.Duration // work queued beyond which the pod sheds with a 503 (model.pods.maxQueue)
	Seed        uint64        // seeds the service times
	Listen      string        // host:port to serve on; default a free loopback port
}

// Game is one pod's game server.
type Game struct {
	opts  GameOptions
	srv   *http.Server
	addr  string
	ready atomic.Bool

	mu       sync.Mutex
	rng      *rand.Rand
	queueEnd time.Time // when the last admitted request's service ends
}

// StartGame listens on opts.Listen (default a free loopback port) and
// serves /play and /healthz.
func StartGame(opts GameOptions) (*Game, error) {
	if opts.Capacity <= 0 {
		return nil, fmt.Errorf("pod: game capacity must be positive, got %g/s", opts.Capacity)
	}
	listen := opts.Listen
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	l, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, fmt.Errorf("pod: %w", err)
	}
	g := &Game{opts: opts, addr: l.Addr().String(), rng: rand.New(rand.NewPCG(opts.Seed, 0x9a3e))}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /play", g.play)
	mux.HandleFunc("GET /healthz", g.healthz)
	g.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go g.srv.Serve(l) //nolint:errcheck // ends with Close
	return g, nil
}

// Addr is the host:port the game listens on.
func (g *Game) Addr() string { return g.addr }

// SetReady marks the config loaded: the pod serves from now on.
func (g *Game) SetReady() { g.ready.Store(true) }

// Ready reports whether the config is loaded.
func (g *Game) Ready() bool { return g.ready.Load() }

// Close stops the server at once, as a deleted pod's process ends:
// requests in flight fail.
func (g *Game) Close() error {
	if err := g.srv.Close(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func (g *Game) healthz(w http.ResponseWriter, _ *http.Request) {
	if !g.ready.Load() {
		http.Error(w, "no config yet", http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "ok")
}

// play queues the request behind the ones before it, waits out its
// service and the path latency, and answers.
func (g *Game) play(w http.ResponseWriter, r *http.Request) {
	if !g.ready.Load() {
		http.Error(w, "no config yet", http.StatusServiceUnavailable)
		return
	}
	now := time.Now()
	g.mu.Lock()
	if g.queueEnd.Sub(now) > g.opts.MaxQueue {
		g.mu.Unlock()
		http.Error(w, "overloaded", http.StatusServiceUnavailable)
		return
	}
	service := time.Duration(g.rng.ExpFloat64() * float64(time.Second) / g.opts.Capacity)
	begin := now
	if g.queueEnd.After(now) {
		begin = g.queueEnd
	}
	g.queueEnd = begin.Add(service)
	done := g.queueEnd.Add(g.opts.BaseLatency)
	g.mu.Unlock()
	if !ctxsleep.Sleep(r.Context(), time.Until(done)) {
		return // the client gave up
	}
	fmt.Fprintln(w, "ok")
}
