package runner

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/churnlab/churnlab/baseline"
	"github.com/churnlab/churnlab/experiments/controlplane"
	"github.com/churnlab/churnlab/experiments/scenario"
	"github.com/churnlab/churnlab/internal/lines"
)

// DefaultPodImage is the game pods' container on the kube target: the
// pause image, which most clusters already hold (it is containerd's
// sandbox image). The game servers themselves run in the runner's
// process there; on kind the pods run cmd/podagent's image instead.
const DefaultPodImage = "registry.k8s.io/pause:3.10"

// operatorServiceAccount is the baseline operator's identity on a cluster
// the run does not own.
const operatorServiceAccount = "veltrix-operator"

// kubeTarget is a cluster a kubeconfig names, used as it is. Each run
// makes a namespace of its own (churnlab-XXXXX), a service account for
// the operator with a token from the TokenRequest API, and game pods that
// run PodImage, so that the cluster's scheduler and kubelets place, start,
// report and replace real pods; each Running pod's game server runs in the
// runner's process, as on the local target. Down deletes the namespace and
// what the baseline installed cluster-wide.
//
// The cluster keeps its own API Priority and Fairness and its etcd is out
// of reach: the operator lands in whichever priority level serves service
// accounts there (the run asks the API server which), etcd's metrics are
// not scraped, and the scenario's apiServer settings are not applied.
type kubeTarget struct{ opts TargetOptions }

func (kubeTarget) Name() string { return "kube" }

func (t kubeTarget) Up(ctx context.Context, _ *scenario.Scenario, progress io.Writer) (*Cluster, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = t.opts.Kubeconfig
	admin, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: t.opts.Context}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kube target: loading the kubeconfig (--kubeconfig %q, --context %q): %w", t.opts.Kubeconfig, t.opts.Context, err)
	}
	return upOnCluster(ctx, admin, t.opts, progress)
}

// upOnCluster readies a cluster the run does not own for one live run.
func upOnCluster(ctx context.Context, admin *rest.Config, opts TargetOptions, progress io.Writer) (_ *Cluster, err error) {
	admin = rest.CopyConfig(admin)
	admin.QPS = -1 // the admin sets scenes up, hundreds of pods at once
	kube, err := kubernetes.NewForConfig(admin)
	if err != nil {
		return nil, err
	}
	ns, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		GenerateName: "churnlab-",
		Labels:       map[string]string{"app.kubernetes.io/managed-by": "churnlab"},
	}}, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("kube target: creating the run's namespace on %s: %w", admin.Host, err)
	}
	lines.Say(progress, "kube target: namespace %s on %s", ns.Name, admin.Host)
	tmp, err := os.MkdirTemp("", "churnlab-kube-")
	if err != nil {
		return nil, err
	}
	down := func() {
		// The run's context may be gone by now: clean up on a fresh one.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		background := metav1.DeletePropagationBackground
		if err := kube.CoreV1().Namespaces().Delete(ctx, ns.Name, metav1.DeleteOptions{PropagationPolicy: &background}); err != nil && !apierrors.IsNotFound(err) {
			lines.Say(progress, "kube target: deleting namespace %s: %v", ns.Name, err)
		}
		if err := baseline.Uninstall(ctx, admin); err != nil {
			lines.Say(progress, "kube target: %v", err)
		}
		os.RemoveAll(tmp)
	}
	defer func() {
		if err != nil {
			down()
		}
	}()

	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: operatorServiceAccount}}
	if _, err := kube.CoreV1().ServiceAccounts(ns.Name).Create(ctx, sa, metav1.CreateOptions{}); err != nil {
		return nil, fmt.Errorf("kube target: creating the operator's service account: %w", err)
	}
	lifetime := int64((6 * time.Hour).Seconds())
	token, err := kube.CoreV1().ServiceAccounts(ns.Name).CreateToken(ctx, operatorServiceAccount,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &lifetime}}, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("kube target: a token for the operator's service account: %w", err)
	}
	operator := rest.AnonymousClientConfig(admin)
	operator.BearerToken = token.Status.Token
	level, err := controlplane.PriorityLevelOf(ctx, admin, operator)
	if err != nil {
		return nil, fmt.Errorf("kube target: %w", err)
	}
	kubeconfig := filepath.Join(tmp, "operator.kubeconfig")
	if err := controlplane.WriteKubeconfig(kubeconfig, operator); err != nil {
		return nil, err
	}
	return &Cluster{
		Admin:                 admin,
		Operator:              operator,
		OperatorUser:          "system:serviceaccount:" + ns.Name + ":" + operatorServiceAccount,
		OperatorPriorityLevel: level,
		OperatorKubeconfig:    kubeconfig,
		Namespace:             ns.Name,
		GamePods:              imageDeployment(opts.PodImage),
		BinDir:                opts.BinDir,
		Down:                  sync.OnceFunc(down),
	}, nil
}

// imageDeployment returns GamePods for pods that run image on any node,
// asking for next to nothing, and stop at once when deleted: the local
// target's Deployment without its node selector. It keeps the toleration
// of kwok's taint, harmless where no node has it, so that a kwok cluster
// (such as the local target's) runs them too.
func imageDeployment(image string) func(namespace, name string, labels map[string]string, replicas int32) *appsv1.Deployment {
	return func(namespace, name string, labels map[string]string, replicas int32) *appsv1.Deployment {
		d := controlplane.FakeNodeDeployment(namespace, name, labels, replicas)
		pod := &d.Spec.Template.Spec
		pod.NodeSelector = nil
		grace := int64(0)
		pod.TerminationGracePeriodSeconds = &grace
		pod.Containers[0].Image = image
		pod.Containers[0].Resources.Requests = corev1.ResourceList{
			corev1.ResourceCPU:    resource.MustParse("1m"),
			corev1.ResourceMemory: resource.MustParse("8Mi"),
		}
		return d
	}
}
