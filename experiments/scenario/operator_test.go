package scenario

import (
	"os"
	"testing"
	"time"
)

// TestOperatorIsAValidController: the veltrix-2023 profile's operator,
// for the incident and for a scenario that turns its knobs, passes the
// checks any declared controller does, and its calls follow the baseline
// section.
func TestOperatorIsAValidController(t *testing.T) {
	files := os.DirFS("../scenarios")
	storm, err := ParseFS(files, "restart-storm.yaml")
	if err != nil {
		t.Fatal(err)
	}
	turned, err := ParseFS(files, "restart-storm.yaml", Set{"baseline.apiCallsPerReconcile", "4"},
		Set{"model.operator.writesPerReconcile", "1"}, Set{"baseline.reloadParallelism", "8"},
		Set{"baseline.workers", "16"}, Set{"baseline.reconcileInterval", "2s"})
	if err != nil {
		t.Fatal(err)
	}
	for name, sc := range map[string]*Scenario{"restart-storm": storm, "turned": turned} {
		op := sc.Operator()
		v := &validator{s: sc, errs: &Errors{}}
		v.controller("operator", op, map[string]bool{})
		if len(v.errs.List) > 0 {
			t.Errorf("%s: the operator is not a valid controller: %v", name, v.errs)
		}
		b := sc.Baseline
		if op.Name != OperatorName || op.Replicas != b.Replicas || op.Workers != b.Workers || op.QPS != b.ClientQPS ||
			op.Burst != b.ClientBurst || op.PriorityLevel != b.PriorityLevel {
			t.Errorf("%s: operator %+v does not follow the baseline section %+v", name, op, b)
		}
		reconcile, reload := op.Triggers[OperatorReconcile], op.Triggers[OperatorReload]
		if reconcile.Every != b.ReconcileInterval || reconcile.Each != "pod" || reconcile.Requests[0].Verb != "list" ||
			reconcile.Requests[0].From != "etcd" || reconcile.Requests[0].Objects.Eval(Size{}) != sc.Config.Objects {
			t.Errorf("%s: reconcile %+v, want a LIST of every config object from etcd each %s", name, reconcile, b.ReconcileInterval)
		}
		calls := 0
		for _, q := range reconcile.Requests {
			calls += q.Repeat
		}
		if calls != b.APICallsPerReconcile {
			t.Errorf("%s: %d calls a reconcile, want apiCallsPerReconcile %d", name, calls, b.APICallsPerReconcile)
		}
		if q := reload.Requests[0]; reload.On != "podStart" || q.Verb != "get" || q.Repeat != sc.Config.Objects || q.Parallel != b.ReloadParallelism {
			t.Errorf("%s: reload %+v, want a GET of each of %d objects, %d at a time", name, reload, sc.Config.Objects, b.ReloadParallelism)
		}
	}
	if got := turned.Operator().Triggers[OperatorReconcile].Requests; len(got) != 3 || got[1].Repeat != 2 || got[2].Verb != "patch" {
		t.Errorf("4 calls with 1 write: %+v, want LIST, 2 GETs, 1 PATCH", got)
	}
	if turned.Operator().Triggers[OperatorReconcile].Every.D() != 2*time.Second {
		t.Error("the reconcile interval did not follow baseline.reconcileInterval")
	}
}
