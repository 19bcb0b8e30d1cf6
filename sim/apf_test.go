package sim

import (
	"fmt"
	"testing"
)

// TestAPFDefaultLimits: kube-apiserver's defaults (400 + 200 inflight)
// split by the 1.34 shares give the limits the real server reports in
// apiserver_flowcontrol_nominal_limit_seats and ..._lower_limit_seats,
// and the widest request of each level.
func TestAPFDefaultLimits(t *testing.T) {
	w := runWorld(t, load(t, "duration: 1s\n"), Reference, 1)
	want := map[string]struct{ nominal, lower, maxSeats int }{
		"system":          {74, 50, 12},
		"node-high":       {98, 73, 15},
		"leader-election": {25, 25, 4},
		"workload-high":   {98, 49, 15},
		"workload-low":    {245, 24, 37},
		"global-default":  {49, 24, 8},
		"catch-all":       {13, 13, maxListSeats},
	}
	for name, lim := range want {
		l := w.api.byName[name]
		if l.nominalCL != lim.nominal || l.minCL != lim.lower || l.maxSeats != lim.maxSeats {
			t.Errorf("%s: nominal %d, lower %d, widest %d; want %d, %d, %d", name, l.nominalCL, l.minCL, l.maxSeats, lim.nominal, lim.lower, lim.maxSeats)
		}
	}
}

// TestAPFWidths: a LIST is one seat per 100 kB it loads, a watch-cache
// LIST at most 1 MB's worth, a selector LIST from etcd at least half of
// what it scans, each capped by its level; a write to a resource with
// many watches holds seats for its events.
func TestAPFWidths(t *testing.T) {
	w := runWorld(t, load(t, "duration: 1s\n"), Reference, 1)
	low := w.api.byName["workload-low"]
	for _, tc := range []struct {
		name           string
		call           apiCall
		initial, final int
	}{
		{"get", apiCall{objects: 1, scanned: 1, size: 5e6}, 1, 0},
		{"list 80 x 25 kB from etcd", apiCall{list: true, objects: 80, scanned: 80, size: 25e3}, 20, 0},
		{"the same from the cache", apiCall{list: true, fromCache: true, objects: 80, scanned: 80, size: 25e3}, 10, 0},
		{"a node's pods from etcd", apiCall{list: true, selector: true, objects: 89, scanned: 7130, size: 1865}, 37, 0},
		{"a small list", apiCall{list: true, objects: 3, scanned: 3, size: 1000}, 1, 0},
	} {
		initial, final := w.api.seats(low, &tc.call)
		if initial != tc.initial || final != tc.final {
			t.Errorf("%s: %d then %d seats, want %d then %d", tc.name, initial, final, tc.initial, tc.final)
		}
	}
	w.api.watchers["falcos.falcosecurity.org"] = 45
	if _, final := w.api.seats(low, &apiCall{write: true, resource: "falcos.falcosecurity.org"}); final != 5 {
		t.Errorf("a write to a resource with 45 watches holds %d seats for its events, want 5", final)
	}
}

// TestAPFBorrowing: a level whose demand outgrows its nominal limit
// borrows from idle levels at the adjustments, and gets fewer 429s than
// with borrowing capped at 0, where it keeps its nominal limit.
func TestAPFBorrowing(t *testing.T) {
	const base = `duration: 60s
model: {etcd: {readCost: 40ms}}
controllers:
  - name: lister
    replicas: 1
    workers: 1000
    qps: 1000/s
    burst: 1000
    priorityLevel: global-default
    triggers:
      - every: 100ms
        each: pod
        requests: [{verb: get, resource: configmaps, from: etcd}]
`
	run := func(extra string) (*World, int64) {
		w := runWorld(t, load(t, base+extra), Reference, 1)
		return w, *summarize(w).PriorityLevels["global-default"].Throttled429
	}
	// etcd reads one at a time, here at 40 ms each: 600 pods every 100 ms
	// keep 600 GETs waiting, beyond global-default's 49 seats and a flow's
	// 300 places in its queues.
	borrowing, borrowed429 := run("cluster: {pods: 600, nodes: 60}\n")
	capped, capped429 := run("cluster:\n  pods: 600\n  nodes: 60\n  apiServer: {priorityLevels: [{name: global-default, shares: 20, lendablePercent: 50, borrowingLimitPercent: 0, queues: 128, handSize: 6, queueLengthLimit: 50}]}\n")
	gd := borrowing.api.byName["global-default"]
	if gd.currentCL <= gd.nominalCL {
		t.Errorf("global-default's limit is %d after a minute of demand; want it above its nominal %d", gd.currentCL, gd.nominalCL)
	}
	if c := capped.api.byName["global-default"]; c.currentCL > c.nominalCL {
		t.Errorf("with borrowingLimitPercent 0 global-default's limit is %d, above its nominal %d", c.currentCL, c.nominalCL)
	}
	t.Logf("429s: %d borrowing, %d capped", borrowed429, capped429)
	if borrowed429 >= capped429 {
		t.Errorf("borrowing got %d 429s, capped %d; want fewer when borrowing", borrowed429, capped429)
	}
	low := borrowing.api.byName["workload-low"]
	if low.currentCL >= low.nominalCL || low.currentCL < low.minCL {
		t.Errorf("idle workload-low's limit is %d; want it lent down toward its lower bound %d (nominal %d)", low.currentCL, low.minCL, low.nominalCL)
	}
}

// TestAPFOffOnlyInflightLimits: with priority and fairness off, a request
// beyond max-requests-inflight is answered 429 at once, whatever level it
// would have landed in.
func TestAPFOffOnlyInflightLimits(t *testing.T) {
	const base = `duration: 20s
controllers:
  - name: lister
    replicas: 1
    workers: 50
    qps: 1000/s
    burst: 1000
    priorityLevel: exempt
    triggers:
      - every: 50ms
        each: pod
        requests: [{verb: list, resource: pods, objects: pods, objectSize: 2KB, from: etcd}]
cluster:
  apiServer: {maxRequestsInflight: 4, maxMutatingRequestsInflight: 2, priorityAndFairness: %s}
`
	on := summarize(runWorld(t, load(t, fmt.Sprintf(base, "true")), Reference, 1))
	off := summarize(runWorld(t, load(t, fmt.Sprintf(base, "false")), Reference, 1))
	if n := *on.Controllers["lister"].Throttled429; n != 0 {
		t.Errorf("APF on: the exempt level got %d 429s, want none", n)
	}
	if n := *off.Controllers["lister"].Throttled429; n == 0 {
		t.Error("APF off: 50 workers against 4 read seats got no 429")
	}
	if off.Controllers["lister"].QueueWaitP99Ms != nil {
		t.Error("APF off: requests waited in a queue")
	}
}
