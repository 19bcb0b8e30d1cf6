package reference

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	pb "github.com/churnlab/churnlab/reference/proto"
)

// TestPartitionedReplicaIsLeft (issue #8): replica 0 reaches etcd through
// a proxy the test cuts, while replicas 1 and 2 still reach it and writes
// go on. Replica 0 must not pass its stale view off as fresh: it reports
// NOT_SERVING, and the agents streaming from it move to a SERVING replica
// and converge on every change made meanwhile. When the proxy heals,
// replica 0 reports SERVING again.
func TestPartitionedReplicaIsLeft(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd, 3 replicas and 30 agents")
	}
	const hunts, agents = 10, 30
	ctx := context.Background()
	etcd, admin, latest := startEtcdWithHunts(t, hunts)
	var err error
	proxy := startProxy(t, etcd.Endpoint)
	replicas := make([]*replica, 3)
	for i := range replicas {
		endpoint := etcd.Endpoint
		if i == 0 {
			endpoint = "http://" + proxy.addr
		}
		replicas[i] = &replica{addr: "127.0.0.1:0", etcd: endpoint, storeCheck: 200 * time.Millisecond}
		replicas[i].start(t)
		t.Cleanup(replicas[i].kill)
	}
	for i, r := range replicas { // so that no agent starts elsewhere than its first endpoint
		waitHealth(t, r, healthpb.HealthCheckResponse_SERVING, fmt.Sprintf("replica %d before the fleet starts", i))
	}
	fleet := startFleet(t, agents, hunts, replicas) // a third start on replica 0
	fleet.startPods(t)
	fleet.converge(t, latest, 30*time.Second)

	leftBefore, failoversBefore := 0, 0
	for _, a := range fleet.agents {
		leftBefore += a.Stats().LeftDegraded
		failoversBefore += a.Stats().Failovers
	}
	proxy.cut()
	cut := time.Now()
	waitHealth(t, replicas[0], healthpb.HealthCheckResponse_NOT_SERVING, "replica 0 cut off from etcd")
	for i := 1; i < 3; i++ {
		waitHealth(t, replicas[i], healthpb.HealthCheckResponse_SERVING, fmt.Sprintf("replica %d, still reaching etcd", i))
	}
	for c := range 10 {
		id := fmt.Sprintf("h-%d", c%hunts)
		if latest[id], err = admin.Put(ctx, id, nil, []byte(fmt.Sprintf("during the partition %d", c))); err != nil {
			t.Fatal(err)
		}
	}
	fleet.converge(t, latest, 30*time.Second)
	// Replica 0 has none of those changes, so every agent that converged
	// is streaming from another replica.
	conn, err := grpc.NewClient(replicas[0].addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	seen, err := pb.NewConfigAdminClient(conn).Versions(ctx, &pb.VersionsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for id, v := range latest { // every hunt changed during the partition
		if seen.GetVersions()[id] >= v {
			t.Fatalf("replica 0 has %s at %d, written during the partition: it was not cut off", id, seen.GetVersions()[id])
		}
	}
	left, failovers := -leftBefore, -failoversBefore
	for _, a := range fleet.agents {
		left += a.Stats().LeftDegraded
		failovers += a.Stats().Failovers
	}
	t.Logf("every agent at the newest versions %s after the cut; %d streams left the cut-off replica at a health check, %d after an error",
		time.Since(cut).Round(time.Millisecond), left, failovers)
	if left+failovers < agents/3 {
		t.Errorf("%d streams left replica 0; the %d agents that streamed from it all had to", left+failovers, agents/3)
	}
	fleet.checkHistory(t)

	proxy.heal()
	waitHealth(t, replicas[0], healthpb.HealthCheckResponse_SERVING, "replica 0 after the partition healed")
}

// tcpProxy forwards a loopback port to a target; cut drops every
// connection and refuses new ones until heal.
type tcpProxy struct {
	addr   string
	target string
	mu     sync.Mutex
	down   bool
	conns  []net.Conn
}

func startProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	host := strings.TrimPrefix(strings.TrimPrefix(target, "http://"), "https://")
	p := &tcpProxy{addr: l.Addr().String(), target: host}
	t.Cleanup(func() { l.Close(); p.cut() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			if p.down {
				p.mu.Unlock()
				c.Close()
				continue
			}
			upstream, err := net.Dial("tcp", p.target)
			if err != nil {
				p.mu.Unlock()
				c.Close()
				continue
			}
			p.conns = append(p.conns, c, upstream)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(upstream, c); upstream.Close() }()
			go func() { _, _ = io.Copy(c, upstream); c.Close() }()
		}
	}()
	return p
}

func (p *tcpProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func (p *tcpProxy) heal() {
	p.mu.Lock()
	p.down = false
	p.mu.Unlock()
}
