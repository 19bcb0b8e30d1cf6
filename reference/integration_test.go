package reference

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	"github.com/churnlab/churnlab/experiments/controlplane"
	"github.com/churnlab/churnlab/reference/agent"
	"github.com/churnlab/churnlab/reference/cache"
	"github.com/churnlab/churnlab/reference/server"
	"github.com/churnlab/churnlab/reference/store"
)

// replica is one configd replica on a fixed loopback address, with its own
// etcd client, that a test can kill and bring back. It owns its
// grpc.Server (rather than Server.Serve) so that kill can be a crash:
// connections cut, no goodbye to the streams.
type replica struct {
	addr, etcd string
	storeCheck time.Duration // 0 for the server's default
	catchUps   int           // 0 for the server's default
	waiters    int           // 0 for the server's default
	mu         sync.Mutex
	g          *grpc.Server
	st         store.Store
	reg        *prometheus.Registry
	cancel     context.CancelFunc
	done       chan struct{}
}

func (r *replica) start(t *testing.T) {
	t.Helper()
	st, err := store.OpenEtcd([]string{r.etcd})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	s, err := server.New(server.Options{Store: st, Registry: reg, StoreCheck: r.storeCheck, CatchUps: r.catchUps, CatchUpWaiters: r.waiters})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }() //nolint:errcheck // nil when ctx ends
	g := grpc.NewServer(s.GRPCOptions()...)
	s.Register(g)
	var l net.Listener
	for try := 0; ; try++ { // the port may take a moment to free after a kill
		if l, err = net.Listen("tcp", r.addr); err == nil || try == 50 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	r.addr = l.Addr().String()
	go g.Serve(l) //nolint:errcheck // ends with Stop
	r.mu.Lock()
	r.g, r.st, r.reg, r.cancel, r.done = g, st, reg, cancel, done
	r.mu.Unlock()
}

// kill stops the replica the way a crash would: connections cut, no goodbye.
func (r *replica) kill() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.g == nil {
		return
	}
	r.g.Stop()
	r.cancel()
	<-r.done
	r.st.Close()
	r.g = nil
}

// TestReplicasAgentsAndAKill is the integration test: real etcd,
// 3 replicas, 200 agents, 50 config changes while one replica is killed
// and restarted. Every agent ends at the newest version of each of its
// hunts, never sees a version go backwards, and never receives a hunt
// outside its selector.
func TestReplicasAgentsAndAKill(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd, 3 replicas and 200 agents")
	}
	const (
		hunts   = 20
		agents  = 200
		changes = 50
		seed    = 2023
	)
	ctx := context.Background()
	etcd, admin, latest := startEtcdWithHunts(t, hunts)

	replicas := make([]*replica, 3)
	for i := range replicas {
		replicas[i] = &replica{addr: "127.0.0.1:0", etcd: etcd.Endpoint}
		replicas[i].start(t)
		t.Cleanup(replicas[i].kill)
	}

	fleet := startFleet(t, agents, hunts, replicas)
	fleet.startPods(t)

	// 50 changes; replica 0 dies after the 15th and comes back after the 35th.
	rng := rand.New(rand.NewPCG(seed, 1))
	for c := range changes {
		id := fmt.Sprintf("h-%d", rng.IntN(hunts))
		v, err := admin.Put(ctx, id, nil, []byte(fmt.Sprintf("change %d of %s", c, id)))
		if err != nil {
			t.Fatal(err)
		}
		latest[id] = v
		switch c {
		case 15:
			replicas[0].kill()
		case 35:
			replicas[0].start(t)
		}
		time.Sleep(20 * time.Millisecond)
	}

	fleet.converge(t, latest, 60*time.Second)
	fleet.checkHistory(t)
	failedOver := 0
	for _, a := range fleet.agents {
		if a.Stats().Failovers > 0 {
			failedOver++
		}
	}
	t.Logf("%d agents converged on %d hunts after %d changes; %d of them failed over", agents, hunts, changes, failedOver)
	if onFirst := agents / 3; failedOver < onFirst {
		t.Errorf("%d agents failed over; the %d that streamed from the killed replica all had to", failedOver, onFirst)
	}
}

// fleet is a set of agents, each with its own L2 and two pods of two
// hunts, spread over the replicas, recording every update they get.
type fleet struct {
	agents  []*agent.Agent
	wants   [][]string
	records []*updateRecord
}

// updateRecord is what one agent received, to check that versions never
// went backwards and no hunt outside its selector arrived.
type updateRecord struct {
	mu         sync.Mutex
	last       map[string]uint64
	backwards  []string
	trespasses []string
}

// startFleet starts n agents until the test ends. Agent i wants hunts
// h-(i mod hunts) and h-((i+7) mod hunts) and lists the replicas
// starting from replica i mod 3.
func startFleet(t *testing.T, n, hunts int, replicas []*replica) *fleet {
	t.Helper()
	runCtx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { stop(); wg.Wait() })
	f := &fleet{}
	for i := range n {
		l2, err := cache.OpenL2(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		want := []string{fmt.Sprintf("h-%d", i%hunts), fmt.Sprintf("h-%d", (i+7)%hunts)}
		rec := &updateRecord{last: map[string]uint64{}}
		var endpoints []string
		for k := range replicas {
			endpoints = append(endpoints, replicas[(i+k)%len(replicas)].addr)
		}
		a, err := agent.New(agent.Options{
			Endpoints: endpoints, Node: fmt.Sprintf("node-%d", i), L2: l2, Seed: uint64(i),
			BackoffMin: 20 * time.Millisecond, BackoffMax: 500 * time.Millisecond,
			OnUpdate: func(hunt string, v uint64) {
				rec.mu.Lock()
				defer rec.mu.Unlock()
				if hunt != want[0] && hunt != want[1] {
					rec.trespasses = append(rec.trespasses, hunt)
				}
				if v < rec.last[hunt] {
					rec.backwards = append(rec.backwards, fmt.Sprintf("%s %d after %d", hunt, v, rec.last[hunt]))
				}
				rec.last[hunt] = v
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		f.agents, f.records, f.wants = append(f.agents, a), append(f.records, rec), append(f.wants, want)
		wg.Add(1)
		go func() { defer wg.Done(); a.Run(runCtx) }() //nolint:errcheck // nil when ctx ends
	}
	return f
}

// startPods starts every agent's two pods, pod-<agent>-<0|1>, and fails
// the test for each that gets no config within a minute.
func (f *fleet) startPods(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var errs sync.Map
	var wg sync.WaitGroup
	for i, a := range f.agents {
		for p, h := range f.wants[i] {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, _, err := a.Acquire(ctx, fmt.Sprintf("pod-%d-%d", i, p), h); err != nil {
					errs.Store(fmt.Sprintf("agent %d pod %d", i, p), err)
				}
			}()
		}
	}
	wg.Wait()
	errs.Range(func(k, v any) bool { t.Errorf("%s: %v", k, v); return true })
}

// converge waits until every agent has the newest version of both its
// hunts, and fails the test if that takes longer than within.
func (f *fleet) converge(t *testing.T, latest map[string]uint64, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		behind, example := 0, ""
		for i, a := range f.agents {
			have := a.Versions()
			for _, h := range f.wants[i] {
				if have[h] != latest[h] {
					behind++
					example = fmt.Sprintf("agent %d has %s at %d, newest %d", i, h, have[h], latest[h])
				}
			}
		}
		if behind == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d agent hunts not at the newest version after %s, e.g. %s", behind, within, example)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// checkHistory fails the test for every agent that saw a version go
// backwards or got a hunt outside its selector.
func (f *fleet) checkHistory(t *testing.T) {
	t.Helper()
	for i, rec := range f.records {
		rec.mu.Lock()
		if len(rec.backwards) > 0 {
			t.Errorf("agent %d saw versions go backwards: %v", i, rec.backwards)
		}
		if len(rec.trespasses) > 0 {
			t.Errorf("agent %d received hunts outside its selector: %v", i, rec.trespasses)
		}
		rec.mu.Unlock()
	}
}

// startEtcdWithHunts starts etcd until the test ends, with hunts h-0 ...
// h-(n-1) written; it returns etcd, a store client on it, and each hunt's
// version.
func startEtcdWithHunts(t *testing.T, n int) (*controlplane.Etcd, store.Store, map[string]uint64) {
	t.Helper()
	ctx := context.Background()
	bin, err := controlplane.EnsureBuilt(ctx, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	etcd, err := controlplane.StartEtcd(ctx, bin)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(etcd.Stop)
	admin, err := store.OpenEtcd([]string{etcd.Endpoint})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	latest := map[string]uint64{}
	for h := range n {
		id := fmt.Sprintf("h-%d", h)
		if latest[id], err = admin.Put(ctx, id, nil, []byte("initial "+id)); err != nil {
			t.Fatal(err)
		}
	}
	return etcd, admin, latest
}
