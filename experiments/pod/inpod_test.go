package pod

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/churnlab/churnlab/baseline"
	"github.com/churnlab/churnlab/experiments/controlplane"
	"github.com/churnlab/churnlab/reference/agent"
	"github.com/churnlab/churnlab/reference/cache"
	"github.com/churnlab/churnlab/reference/server"
	"github.com/churnlab/churnlab/reference/store"
)

// TestNodeAgentSourceThroughANodeServer: a pod's config client asks its
// node's agent (over HTTP, as a pod in the cluster does) and is loaded
// with the fragment's size; the next pod of the hunt on that node is
// loaded from the node's L2, with nothing over the uplink.
func TestNodeAgentSourceThroughANodeServer(t *testing.T) {
	st, err := store.OpenBolt(t.TempDir() + "/configd.db")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	fragment := strings.Repeat("x", 100_000)
	if _, err := st.Put(context.Background(), "h-0", nil, []byte(fragment)); err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(server.Options{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	wg.Add(2)
	go func() { defer wg.Done(); srv.Serve(ctx, l) }() //nolint:errcheck // nil when ctx ends
	l2, err := cache.OpenL2(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	a, err := agent.New(agent.Options{Endpoints: []string{l.Addr().String()}, Node: "node-1", L2: l2})
	if err != nil {
		t.Fatal(err)
	}
	go func() { defer wg.Done(); a.Run(ctx) }() //nolint:errcheck // nil when ctx ends
	web := httptest.NewServer(&agent.NodeServer{Agent: a})
	t.Cleanup(web.Close)

	source := &NodeAgentSource{URL: web.URL, Hunts: 1}
	for i, want := range []int64{int64(len(fragment)), 0} {
		p := newPod(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("game-%d", i)}}, "")
		loaded := make(chan int64, 1)
		podCtx, stop := context.WithCancel(ctx)
		served := make(chan error, 1)
		go func() { served <- source.Serve(podCtx, p, func(n int64) { loaded <- n }) }()
		if got := <-loaded; got != want {
			t.Errorf("pod %d: loaded with %d bytes over the uplink, want %d", i, got, want)
		}
		if i == 0 {
			defer stop() // the first pod stays, so the node keeps the hunt
			continue
		}
		stop()
		if err := <-served; err != nil {
			t.Errorf("pod %d: Serve: %v", i, err)
		}
	}
	if err := (&NodeAgentSource{URL: web.URL}).Serve(ctx, newPod(&corev1.Pod{}, ""), func(int64) {}); err == nil || !strings.Contains(err.Error(), "hunt") {
		t.Errorf("no hunts: %v, want an error that says so", err)
	}
}

// TestInPodMarksItselfAndTheObserverReadsIt: on a real control plane, a
// game pod's own program (RunInPod, as cmd/podagent runs it) pulls its
// bundle once the operator's annotation names it and marks itself
// ConfigReady; the runner's Observer follows the pod from Running to
// loaded (with the pod's own time and byte count) to deleted.
func TestInPodMarksItselfAndTheObserverReadsIt(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a control plane")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	bin, err := controlplane.EnsureBuilt(ctx, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := controlplane.Start(ctx, controlplane.Options{BinDir: bin, Nodes: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cp.Stop)
	kube, err := kubernetes.NewForConfig(cp.Admin)
	if err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{"app": "game"}
	d := controlplane.FakeNodeDeployment("default", "game", labels, 1)
	d.Spec.Template.Spec.ReadinessGates = []corev1.PodReadinessGate{{ConditionType: ConfigReady}}
	if _, err := kube.AppsV1().Deployments("default").Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	type seen struct {
		what  string
		pod   *Pod
		at    time.Time
		bytes int64
	}
	events := make(chan seen, 16)
	obs := NewObserver(ObserverOptions{Client: kube, Namespace: "default", Selector: "app=game", Port: 8080, Events: Events{
		Started: func(p *Pod) { events <- seen{what: "started", pod: p} },
		Loaded: func(p *Pod, at time.Time, _ time.Duration, n int64) {
			events <- seen{what: "loaded", pod: p, at: at, bytes: n}
		},
		Failed:  func(p *Pod, err error) { t.Errorf("observer: pod %s: %v", p.Name, err) },
		Stopped: func(p *Pod) { events <- seen{what: "stopped", pod: p} },
	}})
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Add(1)
	go func() { defer wg.Done(); obs.Run(ctx) }() //nolint:errcheck // nil when ctx ends
	next := func(want string) seen {
		t.Helper()
		select {
		case e := <-events:
			if e.what != want {
				t.Fatalf("observer: %s %s, want %s", e.what, e.pod.Name, want)
			}
			return e
		case <-time.After(time.Minute):
			t.Fatalf("observer: no %s within a minute", want)
		}
		return seen{}
	}
	started := next("started")
	if ip, _, err := net.SplitHostPort(started.pod.Addr()); err != nil || net.ParseIP(ip) == nil || !strings.HasSuffix(started.pod.Addr(), ":8080") {
		t.Errorf("started pod's address %q, want its pod IP and port 8080", started.pod.Addr())
	}
	if started.pod.Ready() {
		t.Errorf("pod %s ready before it has config", started.pod.Name)
	}

	bundle := strings.Repeat("b", 300_000)
	operator := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("pod") != started.pod.Name {
			http.Error(w, "no such pod", http.StatusNotFound)
			return
		}
		w.Header().Set("X-Bundle-Version", "abc-g1")
		fmt.Fprint(w, bundle)
	}))
	defer operator.Close()
	wg.Add(1)
	go func() {
		defer wg.Done()
		err := RunInPod(ctx, InPodOptions{
			Client: kube, Namespace: "default", Name: started.pod.Name,
			Game:   GameOptions{Capacity: 1000, MaxQueue: time.Second},
			Source: &BundleSource{URL: operator.URL},
			Failed: func(err error) { t.Logf("pod: %v", err) },
		})
		if err != nil {
			t.Errorf("RunInPod: %v", err)
		}
	}()
	// The operator's mark: only now may the pod pull.
	marked := time.Now()
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:"abc-g1"}}}`, baseline.BundleAnnotation)
	if _, err := kube.CoreV1().Pods("default").Patch(ctx, started.pod.Name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	loaded := next("loaded")
	if loaded.bytes != int64(len(bundle)) || loaded.at.Before(marked) || time.Since(loaded.at) > time.Minute || !loaded.pod.Ready() {
		t.Errorf("loaded with %d bytes at %s (marked at %s), ready %v; want %d bytes after the mark, ready", loaded.bytes, loaded.at, marked, loaded.pod.Ready(), len(bundle))
	}
	if total, ready := obs.Pods(); total != 1 || ready != 1 || obs.Lookup(started.pod.Name) == nil {
		t.Errorf("observer follows %d pods, %d ready, lookup %v; want the one, ready", total, ready, obs.Lookup(started.pod.Name))
	}
	zero := int64(0)
	if err := kube.CoreV1().Pods("default").Delete(ctx, started.pod.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
		t.Fatal(err)
	}
	if stopped := next("stopped"); stopped.pod.UID != started.pod.UID {
		t.Errorf("stopped %s, want %s", stopped.pod.Name, started.pod.Name)
	}
}
