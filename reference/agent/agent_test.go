package agent

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/churnlab/churnlab/reference/cache"
	"github.com/churnlab/churnlab/reference/server"
	"github.com/churnlab/churnlab/reference/store"
)

// replica is a service replica on a loopback port that a test can kill.
type replica struct {
	addr string
	kill context.CancelFunc
}

func startReplica(t *testing.T, st store.Store) *replica {
	t.Helper()
	return startReplicaWith(t, server.Options{Store: st})
}

// startReplicaWith runs a replica with opts on a loopback port until the
// test ends or it is killed.
func startReplicaWith(t *testing.T, opts server.Options) *replica {
	t.Helper()
	s, err := server.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan struct{})
	go func() { s.Serve(ctx, l); close(served) }() //nolint:errcheck // nil when ctx ends
	r := &replica{addr: l.Addr().String(), kill: func() { cancel(); <-served }}
	t.Cleanup(r.kill)
	return r
}

func putHunt(t *testing.T, st store.Store, hunt, fragment string) uint64 {
	t.Helper()
	v, err := st.Put(context.Background(), hunt, nil, []byte(fragment))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func newAgent(t *testing.T, l2dir string, debounce time.Duration, endpoints ...string) *Agent {
	t.Helper()
	l2, err := cache.OpenL2(l2dir)
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(Options{Endpoints: endpoints, Node: "node-1", L2: l2, Debounce: debounce, BackoffMin: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return a
}

func acquire(t *testing.T, a *Agent, pod, hunt string) ([]byte, uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	f, v, err := a.Acquire(ctx, pod, hunt)
	if err != nil {
		t.Fatal(err)
	}
	return f, v
}

func boltStore(t *testing.T) store.Store {
	t.Helper()
	st, err := store.OpenBolt(filepath.Join(t.TempDir(), "configd.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// TestRestartWithinDebounceCostsNothing is R3: a pod that restarts within
// the window is served from L2, with no new stream and no bytes from the
// service.
func TestRestartWithinDebounceCostsNothing(t *testing.T) {
	st := boltStore(t)
	putHunt(t, st, "h-1", "fragment of h-1")
	putHunt(t, st, "h-2", "fragment of h-2, which the pod does not need")
	r := startReplica(t, st)
	a := newAgent(t, t.TempDir(), time.Hour, r.addr)

	f, _ := acquire(t, a, "game-1", "h-1")
	if string(f) != "fragment of h-1" {
		t.Fatalf("cold pod got %q", f)
	}
	cold := a.Stats()
	if cold.FragmentBytes != int64(len("fragment of h-1")) {
		t.Errorf("cold pod cost %d bytes, want only its hunt's fragment (%d)", cold.FragmentBytes, len("fragment of h-1"))
	}

	a.Release("game-1")
	f, _ = acquire(t, a, "game-1b", "h-1") // the restarted pod
	warm := a.Stats()
	if string(f) != "fragment of h-1" || warm.FragmentBytes != cold.FragmentBytes || warm.Watches != cold.Watches || warm.L2Hits != cold.L2Hits+1 {
		t.Errorf("restart within the debounce: %+v after %+v; want the same bytes and streams, one more L2 hit", warm, cold)
	}
}

// TestAfterDebounceOnlyVersionsAreExchanged: once the window has passed the
// hunt leaves the stream; coming back reopens it with the known version,
// and the service sends no fragment.
func TestAfterDebounceOnlyVersionsAreExchanged(t *testing.T) {
	st := boltStore(t)
	putHunt(t, st, "h-1", "fragment")
	r := startReplica(t, st)
	a := newAgent(t, t.TempDir(), 50*time.Millisecond, r.addr)
	acquire(t, a, "game-1", "h-1")
	a.Release("game-1")
	time.Sleep(300 * time.Millisecond) // well past the 50 ms window
	before := a.Stats()
	acquire(t, a, "game-2", "h-1")
	after := a.Stats()
	if after.FragmentBytes != before.FragmentBytes {
		t.Errorf("re-acquiring an unchanged hunt cost %d bytes", after.FragmentBytes-before.FragmentBytes)
	}
}

// TestWarmL2AcrossAgentRestart: a new agent on a node whose L2 already
// holds the current version gets no fragment from the service.
func TestWarmL2AcrossAgentRestart(t *testing.T) {
	st := boltStore(t)
	putHunt(t, st, "h-1", "fragment")
	r := startReplica(t, st)
	l2 := t.TempDir()
	acquire(t, newAgent(t, l2, time.Hour, r.addr), "game-1", "h-1")
	second := newAgent(t, l2, time.Hour, r.addr)
	f, _ := acquire(t, second, "game-1", "h-1")
	if string(f) != "fragment" || second.Stats().FragmentBytes != 0 {
		t.Errorf("warm L2: got %q for %d bytes, want the fragment for 0", f, second.Stats().FragmentBytes)
	}
}

func TestCorruptL2IsRefetched(t *testing.T) {
	st := boltStore(t)
	v := putHunt(t, st, "h-1", "fragment")
	r := startReplica(t, st)
	l2 := t.TempDir()
	a := newAgent(t, l2, time.Hour, r.addr)
	acquire(t, a, "game-1", "h-1")
	p := filepath.Join(l2, "h-1", itoa(v))
	if err := os.WriteFile(p, []byte("garbage that fails the checksum"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, _ := acquire(t, a, "game-2", "h-1")
	if string(f) != "fragment" {
		t.Errorf("after corrupting L2 got %q, want the fragment refetched", f)
	}
}

// TestFailover: when the replica an agent streams from dies, it moves to
// another and keeps receiving changes.
func TestFailover(t *testing.T) {
	st := boltStore(t)
	putHunt(t, st, "h-1", "v1")
	first, second := startReplica(t, st), startReplica(t, st)
	updates := make(chan uint64, 16)
	l2, _ := cache.OpenL2(t.TempDir())
	a, err := New(Options{Endpoints: []string{first.addr, second.addr}, Node: "n", L2: l2, BackoffMin: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond,
		OnUpdate: func(_ string, v uint64) { updates <- v }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go a.Run(ctx) //nolint:errcheck // returns nil when ctx ends
	acquire(t, a, "game-1", "h-1")
	<-updates
	first.kill()
	v2 := putHunt(t, st, "h-1", "v2")
	select {
	case v := <-updates:
		if v != v2 {
			t.Errorf("after failover got version %d, want %d", v, v2)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no update within 10 s of killing the agent's replica")
	}
	if a.Stats().Watches < 2 {
		t.Errorf("%d streams opened; want a second one on the other replica", a.Stats().Watches)
	}
}

func itoa(v uint64) string { return strconv.FormatUint(v, 10) }

// TestRefusalReachesThePod: a token the service refuses is reported to the
// pod at once, not after its context runs out.
func TestRefusalReachesThePod(t *testing.T) {
	st := boltStore(t)
	putHunt(t, st, "h-1", "x")
	tokens, err := server.ParseTokens(strings.NewReader("pod-token,pod,hunt=h-2\n"), "tokens")
	if err != nil {
		t.Fatal(err)
	}
	r := startReplicaWith(t, server.Options{Store: st, Tokens: tokens})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	l2, _ := cache.OpenL2(t.TempDir())
	a, err := New(Options{Endpoints: []string{r.addr}, L2: l2, Token: "pod-token", BackoffMin: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	go a.Run(ctx) //nolint:errcheck // nil when ctx ends
	waitCtx, stop := context.WithTimeout(ctx, 30*time.Second)
	defer stop()
	_, _, err = a.Acquire(waitCtx, "game-1", "h-1")
	if status.Code(errors.Unwrap(err)) != codes.PermissionDenied {
		t.Fatalf("Acquire outside the token's scope: %v; want the service's PermissionDenied", err)
	}
	if waitCtx.Err() != nil {
		t.Error("the refusal arrived only when the context ran out")
	}
}
