package sim

import (
	"bytes"
	"fmt"
	"testing"
)

func requestsOf(t *testing.T, w *World, controller string) int64 {
	t.Helper()
	s, ok := summarize(w).Controllers[controller]
	if !ok {
		t.Fatalf("no results for controller %q", controller)
	}
	return *s.Requests
}

// TestWorkQueueDeduplicates: a trigger that fires every 10 ms for a
// reconcile that takes 100 ms (etcd reads at 100 ms) does not pile up: a
// key already waiting is not added again, so one worker makes one request
// at a time, about 10 a second, and eight workers about 8 times as many.
func TestWorkQueueDeduplicates(t *testing.T) {
	const sc = `duration: 30s
model: {etcd: {readCost: 100ms}}
controllers:
  - name: poller
    replicas: 1
    workers: %d
    qps: 1000/s
    triggers:
      - every: 10ms
        requests: [{verb: get, resource: configmaps, from: etcd}]
`
	one := requestsOf(t, runWorld(t, load(t, fmt.Sprintf(sc, 1)), Reference, 1), "poller")
	if one < 250 || one > 310 {
		t.Errorf("one worker made %d requests in 30 s of 100 ms reconciles; want about 300 (none piled up)", one)
	}
	// One key: a second worker has nothing to do while the first works it.
	eight := requestsOf(t, runWorld(t, load(t, fmt.Sprintf(sc, 8)), Reference, 1), "poller")
	if eight != one {
		t.Errorf("eight workers made %d requests for one key, one worker %d; a key is worked by one worker at a time", eight, one)
	}
}

// TestWorkersBoundPerPodReconciles: one key per pod; each worker runs
// one reconcile at a time, so the request rate grows with the workers
// until the timers' own rate caps it.
func TestWorkersBoundPerPodReconciles(t *testing.T) {
	const sc = `duration: 30s
cluster: {pods: 100, nodes: 10}
model: {etcd: {readCost: 10ms}}
controllers:
  - name: reconciler
    replicas: 1
    workers: %d
    qps: 10000/s
    burst: 10000
    triggers:
      - every: 1s
        each: pod
        requests: [{verb: get, resource: pods, from: etcd}]
`
	// etcd serves 100 reads a second; 100 pods a second is all of it.
	one := requestsOf(t, runWorld(t, load(t, fmt.Sprintf(sc, 1)), Reference, 1), "reconciler")
	four := requestsOf(t, runWorld(t, load(t, fmt.Sprintf(sc, 4)), Reference, 1), "reconciler")
	t.Logf("requests: %d with one worker, %d with four", one, four)
	// One worker: each reconcile waits its 10 ms read plus the server's
	// 2 ms, so about 83 a second, short of the pods' 100.
	if one > 30*88 || one < 30*75 {
		t.Errorf("one worker made %d requests in 30 s; want about 83 a second", one)
	}
	if four < 30*95 {
		t.Errorf("four workers made %d requests in 30 s; want every pod's, about 100 a second", four)
	}
}

// TestWatchFeedbackLoop: replicas on every node that patch an object
// they all watch wake each other: the loop runs as fast as their clients
// allow, and so it grows with the node count.
func TestWatchFeedbackLoop(t *testing.T) {
	const sc = `duration: 60s
cluster: {nodes: %d, pods: 40}
controllers:
  - name: status-writer
    perNode: true
    triggers:
      - on: start
        requests: [{verb: patch, resource: widgets.example.com}]
      - watch: widgets.example.com
        requests: [{verb: patch, resource: widgets.example.com}]
`
	small := requestsOf(t, runWorld(t, load(t, fmt.Sprintf(sc, 10)), Reference, 1), "status-writer")
	large := requestsOf(t, runWorld(t, load(t, fmt.Sprintf(sc, 40)), Reference, 1), "status-writer")
	t.Logf("patches in 60 s: %d on 10 nodes, %d on 40", small, large)
	// client-go's default 5 QPS a replica caps each node's patches.
	if small < 10*5*55 || small > 10*5*61+10*10 {
		t.Errorf("10 nodes made %d patches in 60 s; want each at its 5/s limit", small)
	}
	if large < 3*small {
		t.Errorf("40 nodes made %d patches, 10 made %d; want the loop to grow with the nodes", large, small)
	}
}

// TestClientCacheServesStale: with a cache whose entries live 10 s, a
// read every second reaches the API server once per 10 s.
func TestClientCacheServesStale(t *testing.T) {
	const sc = `duration: 60s
controllers:
  - name: cached
    replicas: 1
    %s
    triggers:
      - every: 1s
        requests: [{verb: list, resource: configmaps, objects: 10}]
`
	uncached := requestsOf(t, runWorld(t, load(t, fmt.Sprintf(sc, "")), Reference, 1), "cached")
	cached := requestsOf(t, runWorld(t, load(t, fmt.Sprintf(sc, "cache: {ttl: 10s}")), Reference, 1), "cached")
	if uncached < 58 || cached < 5 || cached > 7 {
		t.Errorf("%d LISTs uncached and %d through a 10 s cache in 60 s; want about 60 and 6", uncached, cached)
	}
}

// TestPerNodeFollowsNodesAndRelists: a DaemonSet's replicas start with
// the nodes, a new node starts one more, and an API server restart makes
// every replica relist.
func TestPerNodeFollowsNodesAndRelists(t *testing.T) {
	sc := load(t, `duration: 60s
cluster: {nodes: 10, pods: 40}
controllers:
  - name: agent
    perNode: true
    qps: 100/s
    burst: 100
    triggers:
      - on: start
        requests: [{verb: list, resource: pods, scope: node, objects: pods/nodes, scanned: pods, from: etcd, repeat: 3}]
events:
  - {at: 10s, nodeAdd: {nodes: 5, over: 5s}}
  - {at: 30s, apiServerRestart: {for: 2s}}
`)
	w := runWorld(t, sc, Reference, 1)
	if n := len(w.controllers.kinds[0].replicas); n != 15 {
		t.Errorf("%d agent replicas after adding 5 nodes to 10, want 15", n)
	}
	// 10 replicas list 3 times at the start, 5 more as their nodes come,
	// and all 15 again after the restart.
	if n := requestsOf(t, w, "agent"); n != 3*(10+5+15) {
		t.Errorf("agents made %d LISTs, want %d", n, 3*(10+5+15))
	}
}

// TestControllersDeterministic: the same seed gives the same bytes.
func TestControllersDeterministic(t *testing.T) {
	sc := load(t, `duration: 30s
cluster: {nodes: 8, pods: 40}
controllers:
  - name: agent
    perNode: true
    triggers:
      - every: 2s
        jitter: 1s
        requests: [{verb: patch, resource: nodes, scope: node}]
      - watch: pods
        resync: 5s
        requests: [{verb: get, resource: pods}]
events:
  - {at: 5s, restartStorm: {fraction: 0.5, over: 5s}}
`)
	a, _ := outputs(t, runWorld(t, sc, Baseline, 7), sc, Baseline, 7)
	b, _ := outputs(t, runWorld(t, sc, Baseline, 7), sc, Baseline, 7)
	if !bytes.Equal(a, b) {
		t.Error("two runs with seed 7 differ")
	}
}
