package reference

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"
)

// TestReconnectStorm (issue #8): 2,000 agents stream from one replica,
// which crashes and comes back after every hunt changed: every agent
// reconnects at once, with two 64 KB fragments to catch up on. The
// replica is made small on purpose, catching up 2 streams at a time with
// 8 waiting, so that it must shed the rest with ResourceExhausted and a
// retry hint, which the agents honour with jitter. Every agent must be
// streaming again within 60 s; the test logs how long it took and how
// many Watch calls were shed.
func TestReconnectStorm(t *testing.T) {
	if testing.Short() {
		t.Skip("2,000 agents against one replica")
	}
	const agents, hunts = 2000, 20
	ctx := context.Background()
	etcd, admin, latest := startEtcdWithHunts(t, hunts)
	var err error
	r := &replica{addr: "127.0.0.1:0", etcd: etcd.Endpoint, catchUps: 2, waiters: 8}
	r.start(t)
	t.Cleanup(r.kill)
	fleet := startFleet(t, agents, hunts, []*replica{r})
	fleet.startPods(t)
	fleet.converge(t, latest, 60*time.Second)

	// The replica crashes, and every hunt changes (64 KB each) before it
	// is back: each reconnecting agent has two fragments to catch up on.
	r.kill()
	big := bytes.Repeat([]byte("x"), 64<<10)
	for h := range hunts {
		id := fmt.Sprintf("h-%d", h)
		if latest[id], err = admin.Put(ctx, id, nil, big); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(time.Second) // every agent notices and starts backing off
	r.start(t)
	restarted := time.Now()
	var shed int
	for {
		waiting := 0
		shed = 0
		for _, a := range fleet.agents {
			st := a.Stats()
			if st.Syncs < 2 {
				waiting++
			}
			shed += st.Shed
		}
		if waiting == 0 {
			break
		}
		if time.Since(restarted) > 60*time.Second {
			t.Fatalf("%d of %d agents not streaming again 60 s after the replica restarted (%d Watch calls shed)", waiting, agents, shed)
		}
		time.Sleep(50 * time.Millisecond)
	}
	fleet.converge(t, latest, 60*time.Second)
	took := time.Since(restarted)
	var mem runtime.MemStats
	runtime.ReadMemStats(&mem)
	t.Logf("all %d agents streaming again, at the newest versions, %s after the restart; %d Watch calls shed with ResourceExhausted; test process heap %d MB",
		agents, took.Round(10*time.Millisecond), shed, mem.HeapInuse>>20)
	if shed == 0 {
		t.Error("no Watch was shed: 2,000 agents reconnecting into 2 catch-up slots and 8 places should have overflowed")
	}
	// And they still get changes.
	for c := range 5 {
		id := fmt.Sprintf("h-%d", c)
		if latest[id], err = admin.Put(ctx, id, nil, []byte(fmt.Sprintf("after the storm %d", c))); err != nil {
			t.Fatal(err)
		}
	}
	fleet.converge(t, latest, 30*time.Second)
	fleet.checkHistory(t)
}
