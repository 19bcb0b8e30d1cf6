package baseline

import (
	"context"
	"math"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"

	"github.com/churnlab/churnlab/experiments/controlplane"
	"github.com/churnlab/churnlab/experiments/metrics"
)

// TestReplicasEachReconcile is T2's mechanism: Veltrix replicas do not
// share the work, each reconciles every pod, so API traffic grows with the
// replica count. A starting pod still costs one reload, by the replicas in
// turn, and a config change one reload in each replica, as in the
// simulator's operator.
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

	// Six pods start: six reloads, two by each replica.
	const started = 6
	scale, err := admin.AppsV1().Deployments("default").GetScale(ctx, "game", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	scale.Spec.Replicas = pods + started
	if _, err := admin.AppsV1().Deployments("default").UpdateScale(ctx, "game", scale, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitRunning(t, admin, pods+started, nil)
	reloads := waitReloads(t, opURL, after, started)
	for _, r := range []string{"0", "1", "2"} {
		if n := delta(after, reloads, "veltrix_config_reloads_total", map[string]string{"replica": r}); n != started/replicas {
			t.Errorf("replica %s reloaded %.0f times for %d starting pods; want %d: the replicas take turns", r, n, started, started/replicas)
		}
	}

	// A config change: every replica's LIST finds it, and each reloads once.
	dyn := dynamic.NewForConfigOrDie(cp.Admin).Resource(Resource).Namespace("default")
	obj, err := dyn.Get(ctx, "config-0000", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := unstructured.SetNestedField(obj.Object, "changed", "spec", "data"); err != nil {
		t.Fatal(err)
	}
	if _, err := dyn.Update(ctx, obj, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	changed := waitReloads(t, opURL, reloads, replicas)
	for _, r := range []string{"0", "1", "2"} {
		if n := delta(reloads, changed, "veltrix_config_reloads_total", map[string]string{"replica": r}); n != 1 {
			t.Errorf("replica %s reloaded %.0f times for one config change; want 1", r, n)
		}
	}
}

// waitReloads waits until the operator has made want reloads since
// before, then five seconds more (a reconcile interval, in which any
// surplus reload would show), and returns its metrics.
func waitReloads(t *testing.T, opURL string, before metrics.Families, want float64) metrics.Families {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		now := scrape(t, opURL+"/metrics", nil)
		if got := delta(before, now, "veltrix_config_reloads_total", nil); got >= want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%.0f reloads in 60 s; want %.0f", delta(before, now, "veltrix_config_reloads_total", nil), want)
		}
		time.Sleep(500 * time.Millisecond)
	}
	time.Sleep(5 * time.Second)
	now := scrape(t, opURL+"/metrics", nil)
	if got := delta(before, now, "veltrix_config_reloads_total", nil); got != want {
		t.Errorf("%.0f reloads; want %.0f", got, want)
	}
	return now
}
