package reference

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/churnlab/churnlab/reference/agent"
	"github.com/churnlab/churnlab/reference/cache"
	pb "github.com/churnlab/churnlab/reference/proto"
)

// TestStoreOutageKeepsServing (issue #8): etcd, the store of 3 replicas,
// is killed for 30 s while 30 agents serve 60 pods. Through the outage:
// every replica reports configd_store_up 0 and NOT_SERVING; a write gets
// Unavailable saying why; pods restart from L2 with the config they had;
// a new node's agent still gets its hunts from a replica's index and L1.
// When etcd is back, the replicas report SERVING again, and 10 new
// changes reach every agent, no version ever going backwards.
func TestStoreOutageKeepsServing(t *testing.T) {
	if testing.Short() {
		t.Skip("kills etcd for 30 s under 3 replicas and 30 agents")
	}
	const (
		hunts  = 10
		agents = 30
		outage = 30 * time.Second
	)
	ctx := context.Background()
	etcd, admin, latest := startEtcdWithHunts(t, hunts)
	var err error
	replicas := make([]*replica, 3)
	for i := range replicas {
		replicas[i] = &replica{addr: "127.0.0.1:0", etcd: etcd.Endpoint, storeCheck: 200 * time.Millisecond}
		replicas[i].start(t)
		t.Cleanup(replicas[i].kill)
	}
	fleet := startFleet(t, agents, hunts, replicas)
	fleet.startPods(t)
	fleet.converge(t, latest, 30*time.Second)
	for i, r := range replicas {
		waitHealth(t, r, healthpb.HealthCheckResponse_SERVING, fmt.Sprintf("replica %d before the outage", i))
	}

	etcd.Kill()
	killed := time.Now()
	for i, r := range replicas {
		waitHealth(t, r, healthpb.HealthCheckResponse_NOT_SERVING, fmt.Sprintf("replica %d with etcd down", i))
		if up := storeUp(t, r); up != 0 {
			t.Errorf("replica %d: configd_store_up %v with etcd down, want 0", i, up)
		}
	}
	t.Logf("all replicas reported NOT_SERVING %s after etcd died", time.Since(killed).Round(time.Millisecond))

	// A write fails, saying why.
	conn, err := grpc.NewClient(replicas[0].addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	putCtx, cancelPut := context.WithTimeout(ctx, 10*time.Second)
	_, err = pb.NewConfigAdminClient(conn).Put(putCtx, &pb.PutRequest{Hunt: "h-0", Fragment: []byte("during the outage")})
	cancelPut()
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "config store unavailable") {
		t.Errorf("Put with etcd down: %v; want Unavailable saying the config store is unavailable", err)
	}

	// Every pod restarts (within the debounce window) and gets the same
	// config from its node's L2.
	for i, a := range fleet.agents {
		for p, h := range fleet.wants[i] {
			pod := fmt.Sprintf("pod-%d-%d", i, p)
			a.Release(pod)
			acqCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
			_, v, err := a.Acquire(acqCtx, pod, h)
			cancel()
			if err != nil || v != latest[h] {
				t.Errorf("agent %d: %s restarting with etcd down got %s at %d (%v); want %d from L2", i, pod, h, v, err, latest[h])
			}
		}
	}
	// A node that had nothing gets its hunt from a replica's index and L1.
	l2, err := cache.OpenL2(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	newcomer, err := agent.New(agent.Options{Endpoints: []string{replicas[1].addr, replicas[2].addr}, Node: "node-new", L2: l2, BackoffMin: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stopNewcomer := context.WithCancel(ctx)
	defer stopNewcomer()
	go newcomer.Run(runCtx) //nolint:errcheck // nil when ctx ends
	acqCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	if _, v, err := newcomer.Acquire(acqCtx, "pod-new", "h-3"); err != nil || v != latest["h-3"] {
		t.Errorf("a new node's pod with etcd down got h-3 at %d (%v), want %d from a replica's L1", v, err, latest["h-3"])
	}
	cancel()

	time.Sleep(time.Until(killed.Add(outage)))
	if err := etcd.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	for i, r := range replicas {
		waitHealth(t, r, healthpb.HealthCheckResponse_SERVING, fmt.Sprintf("replica %d after etcd returned", i))
	}
	t.Logf("all replicas reported SERVING %s after etcd returned", time.Since(back).Round(time.Millisecond))
	for c := range 10 {
		id := fmt.Sprintf("h-%d", c%hunts)
		if latest[id], err = admin.Put(ctx, id, nil, []byte(fmt.Sprintf("after the outage %d", c))); err != nil {
			t.Fatal(err)
		}
	}
	fleet.converge(t, latest, 30*time.Second)
	t.Logf("every agent converged %s after etcd returned", time.Since(back).Round(time.Millisecond))
	fleet.checkHistory(t)
}

// waitHealth waits up to 15 s for r's gRPC health to report want.
func waitHealth(t *testing.T, r *replica, want healthpb.HealthCheckResponse_ServingStatus, what string) {
	t.Helper()
	conn, err := grpc.NewClient(r.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := healthpb.NewHealthClient(conn)
	var got healthpb.HealthCheckResponse_ServingStatus
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		resp, err := client.Check(ctx, &healthpb.HealthCheckRequest{})
		cancel()
		if err == nil {
			if got = resp.GetStatus(); got == want {
				return
			}
		}
	}
	t.Fatalf("%s: health %v, want %v within 15 s", what, got, want)
}

// storeUp reads r's configd_store_up gauge.
func storeUp(t *testing.T, r *replica) float64 {
	t.Helper()
	r.mu.Lock()
	reg := r.reg
	r.mu.Unlock()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == "configd_store_up" {
			return f.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatal("no configd_store_up metric")
	return 0
}
