package runner

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/churnlab/churnlab/baseline"
	"github.com/churnlab/churnlab/experiments/controlplane"
	"github.com/churnlab/churnlab/experiments/scenario"
	"github.com/churnlab/churnlab/sim"
)

// TestKubeTargetOnAnyCluster plays a short storm on the kube target
// against a cluster it does not own, known only by its kubeconfig (here a
// control plane the test starts): the operator runs as a service account
// in a namespace of the run's own, with a token from the TokenRequest API,
// and APF names its priority level; the run cleans up after itself in the
// cluster.
func TestKubeTargetOnAnyCluster(t *testing.T) {
	local, tmp := liveTarget(t)
	ctx := context.Background()
	cp, err := controlplane.Start(ctx, controlplane.Options{BinDir: local.(localTarget).binDir, Nodes: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Stop()
	target, err := NewTarget("kube", TargetOptions{BinDir: local.(localTarget).binDir, Kubeconfig: cp.AdminKubeconfig})
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	sc := shortStorm(t, "30s", scenario.Set{Path: "events[2].at", Value: "5s"})
	outs, err := RunLive(ctx, sc, LiveOptions{Target: target, OutDir: out, Systems: []sim.System{sim.Baseline}})
	if err != nil {
		t.Fatal(err)
	}
	o := outs[0]
	if want := filepath.Join(out, "restart-storm", "kube", "baseline"); o.Dir != want {
		t.Errorf("results in %s, want %s", o.Dir, want)
	}
	s := writtenSummary(t, o.Dir)
	if s.Mode != "kube" || *s.Requests.SuccessRatio < 0.99 || s.Config.PropagationP99Ms == nil {
		t.Errorf("mode %s, success %.4f, propagation %v; want kube, nearly all ok, the change at 5 s propagated",
			s.Mode, *s.Requests.SuccessRatio, s.Config.PropagationP99Ms)
	}
	// The operator's requests were counted at the priority level the API
	// server named for its service account.
	if s.APIServer.Requests == nil || *s.APIServer.Requests == 0 {
		t.Errorf("no operator requests counted at its APF priority level")
	}
	scrapes, err := os.ReadFile(filepath.Join(o.Dir, "scrapes.csv"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(scrapes, []byte(",etcd,")) {
		t.Errorf("scrapes.csv has etcd rows; the kube target cannot reach a cluster's etcd")
	}

	// Cleaned up in the cluster: the run's namespace is going or gone, and
	// so is what the baseline installed cluster-wide.
	admin := kubernetes.NewForConfigOrDie(cp.Admin)
	namespaces, err := admin.CoreV1().Namespaces().List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/managed-by=churnlab"})
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range namespaces.Items {
		if !strings.HasPrefix(ns.Name, "churnlab-") || ns.DeletionTimestamp == nil {
			t.Errorf("namespace %s left behind (not being deleted)", ns.Name)
		}
	}
	if len(namespaces.Items) == 0 {
		t.Log("the run's namespace is gone already")
	}
	if _, err := admin.RbacV1().ClusterRoles().Get(ctx, "veltrix-operator", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the operator's ClusterRole: %v; want it deleted", err)
	}
	crd, err := apiextensionsclient.NewForConfigOrDie(cp.Admin).ApiextensionsV1().CustomResourceDefinitions().Get(ctx, baseline.Resource.GroupResource().String(), metav1.GetOptions{})
	if err == nil && crd.DeletionTimestamp == nil {
		t.Errorf("the VeltrixConfig CRD is left behind (not being deleted)")
	} else if err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
	cp.Stop()
	checkCleanedUp(t, tmp)
}
