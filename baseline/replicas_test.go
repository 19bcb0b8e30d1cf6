package baseline

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/churnlab/churnlab/experiments/controlplane"
)

// TestReplicasEachReconcile is T2's mechanism: Veltrix replicas do not
// share the work, each reconciles every pod, so API traffic grows with the
// replica count.
func TestReplicasEachReconcile(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a control plane")
	}
	const pods, replicas = 20, 3
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cp, admin := startGameCluster(ctx, t, controlplane.Options{Nodes: 2}, 200_000, 10, pods)
	waitRunning(t, admin, pods, nil)
	op, err := New(cp.Operator, Options{Controller: true, Replicas: replicas})
	if err != nil {
		t.Fatal(err)
	}
	opURL := serveOperator(t, ctx, op)
	time.Sleep(6 * time.Second)
	before := scrape(t, opURL+"/metrics", nil)
	const window = 10 * time.Second
	time.Sleep(window)
	after := scrape(t, opURL+"/metrics", nil)

	want := float64(pods) / 5 // per replica
	for _, r := range []string{"0", "1", "2"} {
		got := delta(before, after, "veltrix_reconciles_total", map[string]string{"replica": r}) / window.Seconds()
		t.Logf("replica %s: %.1f reconciles/s", r, got)
		if math.Abs(got-want) > 0.25*want {
			t.Errorf("replica %s reconciles %.1f/s, want about %d pods / 5 s = %.1f/s", r, got, pods, want)
		}
	}
	// F9's reconcile is one LIST of the config objects; the pod comes
	// from each replica's informer.
	lists := delta(before, after, "veltrix_api_requests_total", map[string]string{"verb": "list"}) / window.Seconds()
	if wantLists := replicas * want; math.Abs(lists-wantLists) > 0.25*wantLists {
		t.Errorf("%.1f LISTs/s, want one per reconcile per replica: %.1f/s", lists, wantLists)
	}
	if gets := delta(before, after, "veltrix_api_requests_total", map[string]string{"verb": "get"}); gets != 0 {
		t.Errorf("%.0f GETs in the window with no pod starting; want none (the pod comes from the cache)", gets)
	}
}
