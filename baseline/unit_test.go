package baseline

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
)

func TestAPIVerb(t *testing.T) {
	cases := []struct {
		method, url, want string
	}{
		{"GET", "/api/v1/namespaces/default/pods/game-1", "get"},
		{"GET", "/api/v1/namespaces/default/pods", "list"},
		{"GET", "/api/v1/namespaces/default/pods?watch=true", "watch"},
		{"GET", "/apis/veltrix.churnlab.io/v1alpha1/namespaces/default/veltrixconfigs", "list"},
		{"GET", "/apis/veltrix.churnlab.io/v1alpha1/namespaces/default/veltrixconfigs/config-0001", "get"},
		{"GET", "/api/v1/nodes", "list"},                                // cluster-scoped collection
		{"GET", "/api/v1/namespaces/default/pods/game-1/status", "get"}, // subresource
		{"PATCH", "/api/v1/namespaces/default/pods/game-1", "patch"},
		{"POST", "/api/v1/namespaces/default/pods", "create"},
		{"DELETE", "/api/v1/namespaces/default/pods/game-1", "delete"},
	}
	for _, c := range cases {
		req := httptest.NewRequest(c.method, c.url, nil)
		if got := apiVerb(req); got != c.want {
			t.Errorf("%s %s = %q, want %q", c.method, c.url, got, c.want)
		}
	}
}

func configObject(name, data string) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"metadata": map[string]any{"name": name},
		"spec":     map[string]any{"data": data},
	}}
}

func TestBundleHoldsEveryObjectInNameOrder(t *testing.T) {
	s := newBundleStore(0, newOperatorMetrics())
	pod := types.NamespacedName{Namespace: "default", Name: "game-1"}
	v1, err := s.put(pod, "uid-1", []*unstructured.Unstructured{configObject("b", "BBB"), configObject("a", "AA")}, false)
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := s.prepared(pod, "uid-1"); !ok || v != v1 {
		t.Errorf("prepared(uid-1) = %q, %v; want %q, true", v, ok, v1)
	}
	if _, ok := s.prepared(pod, "uid-2"); ok {
		t.Error("prepared must match the pod's UID: a restarted pod has a new one")
	}
	rec := httptest.NewRecorder()
	s.serve(rec, httptest.NewRequest("GET", "/bundle?namespace=default&pod=game-1", nil))
	if got, want := rec.Body.String(), "--- a\nAA\n--- b\nBBB\n"; got != want {
		t.Errorf("bundle = %q, want %q", got, want)
	}
	if rec.Header().Get("X-Bundle-Version") != v1 {
		t.Errorf("version header %q, want %q", rec.Header().Get("X-Bundle-Version"), v1)
	}

	v2, _ := s.put(pod, "uid-1", []*unstructured.Unstructured{configObject("a", "AA"), configObject("b", "changed")}, true)
	if v2 == v1 {
		t.Error("a changed config kept its version")
	}
	rec = httptest.NewRecorder()
	s.serve(rec, httptest.NewRequest("GET", "/bundle?namespace=default&pod=game-1", nil))
	zr, err := gzip.NewReader(rec.Body)
	if err != nil {
		t.Fatalf("gzip bundle: %v", err)
	}
	plain, _ := io.ReadAll(zr)
	if !bytes.Contains(plain, []byte("changed")) || rec.Header().Get("X-Bundle-Encoding") != "gzip" {
		t.Errorf("gzip bundle %q, encoding header %q", plain, rec.Header().Get("X-Bundle-Encoding"))
	}
}

func TestBundleServeSadPaths(t *testing.T) {
	s := newBundleStore(0, newOperatorMetrics())
	s.adopt(types.NamespacedName{Namespace: "default", Name: "old"}, "u")
	cases := []struct {
		url  string
		code int
	}{
		{"/bundle", http.StatusBadRequest},                          // no pod named
		{"/bundle?namespace=default&pod=nope", http.StatusNotFound}, // never prepared
		{"/bundle?namespace=default&pod=old", http.StatusNotFound},  // adopted: it has its config
	}
	for _, c := range cases {
		rec := httptest.NewRecorder()
		s.serve(rec, httptest.NewRequest("GET", c.url, nil))
		if rec.Code != c.code {
			t.Errorf("%s: %d, want %d", c.url, rec.Code, c.code)
		}
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	cfg := &rest.Config{Host: "https://127.0.0.1:1"}
	sad := []struct {
		opts Options
		want string
	}{
		{Options{Replicas: -1}, "replicas"},
		{Options{ReconcileInterval: -time.Second}, "reconcile interval"},
		{Options{Burst: -1}, "burst"},
		{Options{Uplink: -5}, "uplink"},
		{Options{APICallsPerReconcile: 2, WritesPerReconcile: 2}, "at most 1 of its 2 API calls can be writes"},
		{Options{PodSelector: "app in (game"}, "pod selector"},
	}
	for _, c := range sad {
		if _, err := New(cfg, c.opts); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New(%+v) = %v, want an error about %s", c.opts, err, c.want)
		}
	}
}

func TestControllerSwitchOverHTTP(t *testing.T) {
	op, err := New(&rest.Config{Host: "https://127.0.0.1:1"}, Options{Controller: true})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(op.Handler())
	defer srv.Close()
	resp, err := http.Post(srv.URL+"/admin/controller?enabled=false", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if op.ControllerOn() {
		t.Error("controller still on after POST enabled=false")
	}
	resp, _ = http.Post(srv.URL+"/admin/controller?enabled=maybe", "", nil)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("enabled=maybe: %s, want 400", resp.Status)
	}
}

func TestWriteConfigRefusesWhatEtcdWould(t *testing.T) {
	cfg := &rest.Config{Host: "https://127.0.0.1:1"} // never reached: the check comes first
	cases := []struct {
		size, objects int
		want          string
	}{
		{2_000_000, 1, "use at least 2 objects"}, // F5: 2 MB cannot be one object
		{10, 0, "cannot split"},
		{3, 5, "cannot split"},
	}
	for _, c := range cases {
		err := WriteConfig(context.Background(), cfg, "default", c.size, c.objects)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("WriteConfig(%d bytes, %d objects) = %v, want an error saying %q", c.size, c.objects, err, c.want)
		}
	}
}

// TestGenerations: every reload is a new generation; a pod on an older one
// (or adopted) is refreshed to the current one once, and a listing that
// differs from the last reload counts as a change.
func TestGenerations(t *testing.T) {
	s := newBundleStore(0, newOperatorMetrics())
	a := types.NamespacedName{Namespace: "default", Name: "a"}
	b := types.NamespacedName{Namespace: "default", Name: "b"}
	old := types.NamespacedName{Namespace: "default", Name: "old"}
	s.adopt(old, "u-old")
	if _, stale := s.refresh(old, "u-old"); stale {
		t.Error("an adopted pod is stale before any reload")
	}
	obj := configObject("c", "data")
	obj.SetResourceVersion("7")
	va, _ := s.put(a, "u-a", []*unstructured.Unstructured{obj}, false)
	vb, _ := s.put(b, "u-b", []*unstructured.Unstructured{obj}, false)
	if va == vb {
		t.Errorf("two reloads gave one version %q; each is a generation", va)
	}
	for _, p := range []struct {
		pod types.NamespacedName
		uid types.UID
	}{{a, "u-a"}, {old, "u-old"}} {
		v, stale := s.refresh(p.pod, p.uid)
		if !stale || v != vb {
			t.Errorf("%s: refresh = %q, %v; want the current %q", p.pod.Name, v, stale, vb)
		}
		if _, again := s.refresh(p.pod, p.uid); again {
			t.Errorf("%s: refreshed twice for one generation", p.pod.Name)
		}
	}
	if _, stale := s.refresh(b, "u-b"); stale {
		t.Error("the pod of the last reload is stale")
	}
}

// TestEachReplicaSeesChangesItself: a replica's first LIST only sets what
// it has seen; a later one that differs is a change, for that replica
// alone.
func TestEachReplicaSeesChangesItself(t *testing.T) {
	r0, r1 := &reconciler{}, &reconciler{}
	for _, r := range []*reconciler{r0, r1} {
		if r.changed(map[string]string{"c": "7"}) {
			t.Error("a replica's first listing counts as a change")
		}
	}
	if r0.changed(map[string]string{"c": "7"}) {
		t.Error("a listing equal to the last one counts as a change")
	}
	if !r0.changed(map[string]string{"c": "8"}) || !r1.changed(map[string]string{"c": "8"}) {
		t.Error("a new resourceVersion is not a change for every replica")
	}
}

// TestOneReplicaPreparesEachStartingPod: however many replicas reconcile a
// starting pod, one of them reloads for it, and the replicas take turns.
func TestOneReplicaPreparesEachStartingPod(t *testing.T) {
	s := newBundleStore(0, newOperatorMetrics())
	const replicas = 3
	perReplica := make([]int, replicas)
	for i := range 6 {
		pod := types.NamespacedName{Namespace: "default", Name: fmt.Sprintf("game-%d", i)}
		uid := types.UID(fmt.Sprint("u-", i))
		var preparers []int
		for _, r := range []int{2, 0, 1, 2, 0, 1} { // every replica asks, twice
			if s.prepares(pod, uid, r, replicas) {
				preparers = append(preparers, r)
			}
		}
		if len(preparers) != 2 || preparers[0] != preparers[1] {
			t.Fatalf("%s: replicas %v prepare it (each asked twice); want one replica, both times", pod.Name, preparers)
		}
		perReplica[preparers[0]]++
	}
	if !slices.Equal(perReplica, []int{2, 2, 2}) {
		t.Errorf("pods prepared per replica %v; want turns, 2 each", perReplica)
	}
	pod := types.NamespacedName{Namespace: "default", Name: "game-0"}
	var restarted []int
	for r := range replicas {
		if s.prepares(pod, "u-0-restarted", r, replicas) {
			restarted = append(restarted, r)
		}
	}
	if len(restarted) != 1 {
		t.Errorf("a restarted pod (new UID) has preparers %v; want one", restarted)
	}
}

func TestBundleGeneration(t *testing.T) {
	for version, want := range map[string]int{"0a1b2c3d4e5f6a7b-g12": 12, "x-g1": 1, "": 0, "abc": 0, "abc-g": 0, "abc-g0": 0, "abc-g-3": 0} {
		got, ok := BundleGeneration(version)
		if got != want && ok || ok != (want > 0) {
			t.Errorf("BundleGeneration(%q) = %d, %v; want %d", version, got, ok, want)
		}
	}
}
