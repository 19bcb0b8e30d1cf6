package runner

import (
	"context"
	"fmt"
	"io"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/client-go/rest"

	"github.com/churnlab/churnlab/experiments/controlplane"
	"github.com/churnlab/churnlab/experiments/scenario"
)

// Target is where a live run's Kubernetes cluster comes from. Each
// system's run gets a cluster of its own from Up, and gives it back with
// Cluster.Down.
type Target interface {
	Name() string // the results directory and summary mode: local, kube or kind
	Up(ctx context.Context, sc *scenario.Scenario, progress io.Writer) (*Cluster, error)
}

// Cluster is a Kubernetes cluster ready for one live run.
type Cluster struct {
	Admin *rest.Config // sets the scene up; API Priority and Fairness exempts it
	// Operator is the baseline operator's identity, OperatorUser: a plain
	// user whose requests land in OperatorPriorityLevel, so APF can
	// throttle it.
	Operator              *rest.Config
	OperatorUser          string
	OperatorPriorityLevel string
	// OperatorKubeconfig is Operator as a kubeconfig file, for the
	// operator run as its own process.
	OperatorKubeconfig string
	// Namespace holds the run's game pods, config objects and the
	// operator's work.
	Namespace string
	// GamePods is the Deployment of the run's game pods on this cluster.
	// Their game servers run in the runner's process, and the pods are
	// for the control plane (scheduling, status and churn), unless the
	// cluster has Images: then the run makes them run cmd/podagent.
	GamePods func(namespace, name string, labels map[string]string, replicas int32) *appsv1.Deployment
	// EtcdMetrics is the control plane's etcd /metrics URL, "" when the
	// target cannot reach it.
	EtcdMetrics string
	// BinDir holds etcd, for a reference service whose store is etcd,
	// and is where the baseline operator's program (cmd/veltrix) is built.
	BinDir string
	// Images, on a cluster whose pods run churnlab's own programs (kind),
	// makes their images and loads them into its nodes; nil where those
	// programs run on this machine.
	Images ProgramImages
	// HostAddress, where Images is set, is this machine's address that
	// the cluster's pods reach: the run's uplink listens there.
	HostAddress string
	Down        func() // stops or releases the cluster; safe to call twice
}

// ProgramImages puts churnlab's own programs into a cluster's pods: on a
// cluster that has them, every part of both systems runs in pods
// (live_incluster.go).
type ProgramImages interface {
	// Image returns the image of cmd/<program>, built here and loaded
	// into every node.
	Image(ctx context.Context, program string) (string, error)
	// NodeAddress is an address of one of the nodes that this machine
	// reaches, for the NodePorts of the run's Services.
	NodeAddress() (string, error)
	// EtcdImage is the etcd image the nodes hold for their control
	// plane, which the reference's store pod runs too.
	EtcdImage() string
}

// Targets lists the names NewTarget knows.
var Targets = []string{"local", "kube", "kind"}

// TargetOptions are what the targets other than local need.
type TargetOptions struct {
	BinDir     string // the checkout's bin/: control-plane binaries, bin/veltrix
	Kubeconfig string // kube: the kubeconfig file; "" for $KUBECONFIG or ~/.kube/config
	Context    string // kube: the kubeconfig context; "" for its current one
	PodImage   string // kube, kind: the game pods' container image; default DefaultPodImage
	Cache      string // kind: where the node image and the private engine's state are kept
	KeepEngine bool   // kind: leave a private engine the target starts running after Close
}

// NewTarget returns the target called name.
func NewTarget(name string, opts TargetOptions) (Target, error) {
	if opts.PodImage == "" {
		opts.PodImage = DefaultPodImage
	}
	switch name {
	case "local":
		return localTarget{binDir: opts.BinDir}, nil
	case "kube":
		return kubeTarget{opts: opts}, nil
	case "kind":
		if opts.Cache == "" {
			return nil, fmt.Errorf("the kind target needs TargetOptions.Cache, where its node image and engine live")
		}
		return &kindTarget{opts: opts}, nil
	}
	return nil, fmt.Errorf("unknown target %q: want one of %v", name, Targets)
}

// localTarget is a control plane on this machine (package controlplane):
// kube-apiserver with APF sized as the live-scale scenario says, etcd,
// the controller manager, the scheduler and kwok's fake nodes.
type localTarget struct{ binDir string }

func (localTarget) Name() string { return "local" }

func (t localTarget) Up(ctx context.Context, sc *scenario.Scenario, progress io.Writer) (*Cluster, error) {
	// The live-scale scenario gives the operator's level one queue
	// (scenario.AtLiveScale); the control plane configures the same.
	operatorLevel, _ := sc.Cluster.APIServer.Level(controlplane.OperatorPriorityLevel)
	cp, err := controlplane.Start(ctx, controlplane.Options{
		BinDir:                      t.binDir,
		Nodes:                       sc.Cluster.Nodes,
		MaxRequestsInflight:         sc.Cluster.APIServer.MaxRequestsInflight,
		MaxMutatingRequestsInflight: sc.Cluster.APIServer.MaxMutatingRequestsInflight,
		QueueLengthLimit:            operatorLevel.QueueLengthLimit,
		Progress:                    progress,
	})
	if err != nil {
		return nil, err
	}
	return &Cluster{
		Admin:                 cp.Admin,
		Operator:              cp.Operator,
		OperatorUser:          controlplane.OperatorUser,
		OperatorPriorityLevel: controlplane.OperatorPriorityLevel,
		OperatorKubeconfig:    cp.OperatorKubeconfig,
		Namespace:             "default",
		GamePods:              controlplane.FakeNodeDeployment,
		EtcdMetrics:           cp.EtcdURL + "/metrics",
		BinDir:                t.binDir,
		Down:                  cp.Stop,
	}, nil
}
