package reference

import (
	"context"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	pb "github.com/churnlab/churnlab/reference/proto"
	"github.com/churnlab/churnlab/reference/store"
)

// TestSlowConsumersStayBounded (issue #8): 2,000 streams, each on its
// own connection as agents have, watch one hunt on a replica in a
// process of its own; 200 of them stop reading. 40 changes of 8 KB are
// then written. The policy under test: a stream that stops reading is
// never dropped and never queued for; it keeps its place in the shared
// backlog, blocks only itself once gRPC's per-stream flow-control window
// (64 KB) is full, and resyncs when it reads again. So the replica's
// memory grows by at most that window per stalled stream, and the other
// streams' propagation p99 stays within 2x of the same run without
// stalled streams.
func TestSlowConsumersStayBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("2,000 streams against a replica process")
	}
	const (
		streams  = 2000
		stalled  = 200
		changes  = 40
		fragment = 8 << 10
	)
	e := benchEtcd(t)
	st, err := store.OpenEtcd([]string{e.Endpoint})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()

	run := func(hunt string, stall int) (p99 time.Duration, growth int64) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		v0, err := st.Put(ctx, hunt, nil, []byte("initial"))
		if err != nil {
			t.Fatal(err)
		}
		addr, pid := startReplicaProcess(t, e.Endpoint)
		before := rss(t, pid)
		var (
			mu      sync.Mutex
			samples []time.Duration
			written sync.Map // version -> when its write started; nothing else writes to etcd meanwhile, so write k makes version v0+k+1
			ready   sync.WaitGroup
		)
		for i := range streams {
			conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			var stream pb.ConfigStream_WatchClient
			for try := 0; ; try++ { // the replica may not have synced yet
				if stream, err = pb.NewConfigStreamClient(conn).Watch(ctx, &pb.WatchRequest{Selector: "hunt=" + hunt}); err == nil {
					if _, err = stream.Recv(); err == nil {
						break
					}
				}
				if try == 100 {
					t.Fatal(err)
				}
				time.Sleep(20 * time.Millisecond)
			}
			ready.Add(1)
			go func() {
				for synced := false; ; {
					u, err := stream.Recv()
					if err != nil {
						return
					}
					if u.GetSynced() && !synced {
						synced = true
						ready.Done()
						if i < stall {
							<-ctx.Done() // stops reading
							return
						}
						continue
					}
					if at, ok := written.Load(u.GetVersion()); ok && u.GetHunt() == hunt {
						mu.Lock()
						samples = append(samples, time.Since(at.(time.Time)))
						mu.Unlock()
					}
				}
			}()
		}
		ready.Wait()
		var peak atomic.Int64
		done := make(chan struct{})
		go func() {
			for {
				peak.Store(max(peak.Load(), rss(t, pid)))
				select {
				case <-done:
					return
				case <-time.After(50 * time.Millisecond):
				}
			}
		}()
		payload := []byte(strings.Repeat("x", fragment))
		for k := range changes {
			want := v0 + uint64(k) + 1
			written.Store(want, time.Now())
			if v, err := st.Put(ctx, hunt, nil, payload); err != nil || v != want {
				t.Fatalf("write %d: version %d (%v), want %d: something else wrote to etcd", k, v, err, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
		time.Sleep(2 * time.Second) // the last changes arrive
		close(done)
		mu.Lock()
		defer mu.Unlock()
		if want := (streams - stall) * changes; len(samples) < want*95/100 {
			t.Errorf("%s: %d deliveries to reading streams, want about %d", hunt, len(samples), want)
		}
		slices.Sort(samples)
		return samples[len(samples)*99/100], peak.Load() - before
	}

	calm, calmGrowth := run("calm", 0)
	busy, busyGrowth := run("stalled", stalled)
	t.Logf("propagation p99 to reading streams: %s with no stalled stream, %s with %d of %d stalled", calm, busy, stalled, streams)
	t.Logf("replica RSS growth during the writes: %d MB calm, %d MB with stalled streams (%d KB per stalled stream)",
		calmGrowth>>20, busyGrowth>>20, max(0, busyGrowth-calmGrowth)/stalled>>10)
	if busy > 2*calm {
		t.Errorf("p99 %s with stalled streams, over twice the %s without", busy, calm)
	}
	// Each stalled stream may hold its 64 KB window, and the change it is
	// blocked on, twice over for the allocator: 256 KB each.
	if limit := calmGrowth + stalled*256<<10; busyGrowth > limit {
		t.Errorf("replica grew %d MB with stalled streams, over the %d MB bound", busyGrowth>>20, limit>>20)
	}
}
