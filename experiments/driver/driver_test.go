package driver

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/churnlab/churnlab/experiments/controlplane"
	"github.com/churnlab/churnlab/experiments/metrics"
	"github.com/churnlab/churnlab/experiments/scenario"
)

// TestDriverOnARealAPIServer plays two controllers against a real
// kube-apiserver: one in workload-low that lists its config maps ten
// times a second, and 12 replicas that LIST them as fast as they can in
// a level of one seat that rejects rather than queues. Setup makes their
// identities, flow schemas, the level and the objects; the second gets
// 429s from the real APF and the first none.
func TestDriverOnARealAPIServer(t *testing.T) {
	ctx := context.Background()
	bin, err := controlplane.EnsureBuilt(ctx, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	// 15 seats in all: the level tiny's share is one seat.
	cp, err := controlplane.Start(ctx, controlplane.Options{BinDir: bin, Nodes: 2, MaxRequestsInflight: 10, MaxMutatingRequestsInflight: 5})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cp.Stop)
	sc, err := scenario.Parse("driver.yaml", []byte(`apiVersion: churnlab/v1
kind: Scenario
metadata: {name: driver}
cluster:
  apiServer:
    priorityLevels: [{name: tiny, shares: 1, lendablePercent: 0, borrowingLimitPercent: 0}]
controllers:
  - name: lister
    replicas: 1
    qps: 50/s
    triggers:
      - every: 100ms
        requests: [{verb: list, resource: configmaps, scope: namespace, objects: 20, objectSize: 1KB}]
  - name: flooder
    replicas: 12
    qps: 1000/s
    burst: 1000
    priorityLevel: tiny
    triggers:
      - every: 20ms
        requests: [{verb: list, resource: configmaps, scope: namespace, objects: 20, objectSize: 5KB, from: etcd}]
  - name: reloader
    replicas: 1
    workers: 0
    qps: 100/s
    burst: 100
    triggers:
      - on: start
        requests: [{verb: get, resource: configmaps, objectSize: 5KB, repeat: 20, parallel: 4}]
  - name: looper
    replicas: 1
    qps: 100/s
    burst: 100
    triggers:
      - every: 200ms
        each: pod
        requests: [{verb: get, resource: pods}]
`))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	results := map[string][2]int{} // controller: requests, 429s
	var notes []string
	d, err := New(Options{Admin: cp.Admin, Namespace: "default", PodSelector: "app=looped", Scenario: sc,
		Record: func(r Result) {
			mu.Lock()
			defer mu.Unlock()
			n := results[r.Controller]
			n[0]++
			if r.Throttled {
				n[1]++
			}
			results[r.Controller] = n
		},
		Note: func(format string, args ...any) {
			mu.Lock()
			defer mu.Unlock()
			notes = append(notes, fmt.Sprintf(format, args...))
		}})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	admin := kubernetes.NewForConfigOrDie(cp.Admin)
	looped := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "looped", Labels: map[string]string{"app": "looped"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "pause"}}}}
	if _, err := admin.CoreV1().Pods("default").Create(ctx, looped, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cms, err := admin.CoreV1().ConfigMaps("default").List(ctx, metav1.ListOptions{LabelSelector: ""})
	if err != nil {
		t.Fatal(err)
	}
	made := 0
	for _, cm := range cms.Items {
		if len(cm.Data["payload"]) == 5_000 {
			made++
		}
	}
	if made != 20 {
		t.Errorf("%d config maps of 5 kB, want 20: the most any request reads, of the largest size any declares", made)
	}
	runCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := d.Run(runCtx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	t.Logf("results %v, notes %v", results, notes)
	// How many requests 5 s hold depends on the machine; that the lister
	// worked and was never throttled while the flooder was does not.
	if l := results["lister"]; l[0] == 0 || l[1] != 0 {
		t.Errorf("lister: %d requests, %d 429s; want some and none throttled", l[0], l[1])
	}
	// Its start: one GET of each config map, four at a time, every one
	// found (a missing one would be a note; the flooder's may have some,
	// 429s past client-go's retries).
	if r := results["reloader"]; r[0] != 20 || slices.ContainsFunc(notes, func(n string) bool { return strings.Contains(n, "reloader") }) {
		t.Errorf("reloader: %d requests, want 20; notes %v", r[0], notes)
	}
	// Its pod's loop: a GET an interval after the last began, so at most
	// one each 200 ms of the 5 s, and more than one (it requeues).
	if l := results["looper"]; l[0] < 2 || l[0] > 26 {
		t.Errorf("looper: %d GETs of its pod in 5 s of a 200 ms loop, want 2-26", l[0])
	}
	if f := results["flooder"]; f[1] == 0 {
		t.Errorf("flooder: %d requests and no 429 from a level of one seat", f[0])
	}
	rejected := scrape(t, cp.Admin).Sum("apiserver_flowcontrol_rejected_requests_total", map[string]string{"priority_level": "tiny"})
	if rejected == 0 {
		t.Error("the API server rejected nothing in priority level tiny")
	}
}

func scrape(t *testing.T, admin *rest.Config) metrics.Families {
	t.Helper()
	transport, err := rest.TransportFor(admin)
	if err != nil {
		t.Fatal(err)
	}
	fams, err := metrics.Scrape(context.Background(), &http.Client{Transport: transport}, admin.Host+"/metrics")
	if err != nil {
		t.Fatal(err)
	}
	return fams
}
