package runner

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/kind/pkg/apis/config/v1alpha4"
	kindcluster "sigs.k8s.io/kind/pkg/cluster"
	"sigs.k8s.io/kind/pkg/cluster/nodeutils"
	kindexec "sigs.k8s.io/kind/pkg/exec"

	"github.com/churnlab/churnlab/experiments/controlplane"
	"github.com/churnlab/churnlab/experiments/engine"
	"github.com/churnlab/churnlab/experiments/kindnode"
	"github.com/churnlab/churnlab/experiments/scenario"
	"github.com/churnlab/churnlab/internal/lines"
)

// kindTarget is a kind cluster (sigs.k8s.io/kind) that each run creates
// with the scenario's node count and deletes at the end: the kube target
// on a cluster of containers. Its nodes run churnlab's own node image
// (package kindnode, built offline at the control plane's Kubernetes
// version) in a container engine from package engine: the user's Docker
// or Podman when one answers, else a private dockerd that the target
// starts once and stops at Close, unless TargetOptions.KeepEngine.
//
// A scenario of one node gets a one-node cluster, whose control-plane
// node also runs the pods (kind untaints it); N nodes get a control plane
// and N workers.
type kindTarget struct {
	opts TargetOptions

	prepared sync.Once
	engine   *engine.Engine
	image    string
	err      error
	// restoreEnv puts back the environment prepare changed for the engine.
	restoreEnv func()
}

func (*kindTarget) Name() string { return "kind" }

// prepare finds or starts the engine, and builds and loads the node
// image, once for all of the target's clusters.
func (t *kindTarget) prepare(ctx context.Context, progress io.Writer) error {
	t.prepared.Do(func() { t.err = t.prepareOnce(ctx, progress) })
	return t.err
}

func (t *kindTarget) prepareOnce(ctx context.Context, progress io.Writer) error {
	begin := time.Now()
	lines.Say(progress, "kind target: step 1/3: the node image's binaries (tools/controlplane/build.sh node)")
	if _, err := controlplane.EnsureNodeBuilt(ctx, progress); err != nil {
		return fmt.Errorf("kind target: %w", err)
	}
	lines.Say(progress, "kind target: step 2/3: a container engine")
	e, err := engine.Ensure(ctx, engine.Options{
		State: filepath.Join(t.opts.Cache, "engine"), ExecRoot: engine.DefaultExecRoot,
		Capshim: filepath.Join(t.opts.BinDir, "capshim"), Keep: t.opts.KeepEngine, Progress: progress,
	})
	if err != nil {
		return fmt.Errorf("kind target: %w", err)
	}
	t.engine = e
	// kind's provider and the docker CLI it runs read the engine from the
	// environment.
	var restore []func()
	for _, kv := range e.Env {
		k, v, _ := strings.Cut(kv, "=")
		if old, had := os.LookupEnv(k); had {
			restore = append(restore, func() { os.Setenv(k, old) })
		} else {
			restore = append(restore, func() { os.Unsetenv(k) })
		}
		os.Setenv(k, v)
	}
	t.restoreEnv = func() {
		for _, r := range restore {
			r()
		}
	}
	lines.Say(progress, "kind target: step 3/3: the node image (Kubernetes %s)", kindnode.KubernetesVersion)
	built, err := kindnode.Build(ctx, kindnode.Options{
		Binaries: kindnode.Binaries{ControlPlane: t.opts.BinDir, Node: filepath.Join(t.opts.BinDir, "node")},
		Cache:    filepath.Join(t.opts.Cache, "kind-node"),
		Progress: progress,
	})
	if err != nil {
		return fmt.Errorf("kind target: %w", err)
	}
	if err := loadImage(ctx, built, progress); err != nil {
		return fmt.Errorf("kind target: %w", err)
	}
	t.image = built.Ref
	lines.Say(progress, "kind target: engine and node image ready in %s", time.Since(begin).Round(100*time.Millisecond))
	return nil
}

// loadImage loads the node image into the engine unless it holds it.
func loadImage(ctx context.Context, built kindnode.Built, progress io.Writer) error {
	if exec.CommandContext(ctx, "docker", "image", "inspect", built.Ref).Run() == nil {
		return nil
	}
	lines.Say(progress, "kind target: loading %s into the engine (about 10 s)", built.Ref)
	if out, err := exec.CommandContext(ctx, "docker", "load", "-i", built.Tarball).CombinedOutput(); err != nil {
		return fmt.Errorf("docker load -i %s: %w: %s", built.Tarball, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// Close stops the engine when the target started it (and was not asked
// to keep it). A later Up prepares again.
func (t *kindTarget) Close() error {
	if t.restoreEnv != nil {
		t.restoreEnv()
	}
	e := t.engine
	t.prepared, t.engine, t.err, t.restoreEnv = sync.Once{}, nil, nil, nil
	if e == nil {
		return nil
	}
	return e.Stop()
}

func (t *kindTarget) Up(ctx context.Context, sc *scenario.Scenario, progress io.Writer) (_ *Cluster, err error) {
	if err := t.prepare(ctx, progress); err != nil {
		return nil, err
	}
	engineKind, err := kindcluster.DetectNodeProvider()
	if err != nil {
		return nil, fmt.Errorf("kind target: %w", err)
	}
	provider := kindcluster.NewProvider(engineKind)
	suffix := make([]byte, 3)
	rand.Read(suffix)
	name := "churnlab-" + hex.EncodeToString(suffix)
	tmp, err := os.MkdirTemp("", "churnlab-kind-")
	if err != nil {
		return nil, err
	}
	kubeconfig := filepath.Join(tmp, "kubeconfig")
	deleteCluster := sync.OnceFunc(func() {
		if err := provider.Delete(name, kubeconfig); err != nil {
			lines.Say(progress, "kind target: deleting cluster %s: %v", name, withEngineOutput(err))
		}
		os.RemoveAll(tmp)
	})
	// Only a cluster this run created is deleted: when Create fails, kind
	// has already removed what it made, and a cluster of that name that
	// it found in its way is someone else's.
	created := false
	defer func() {
		switch {
		case err == nil:
		case created:
			deleteCluster()
		default:
			os.RemoveAll(tmp)
		}
	}()
	config := clusterConfig(sc)
	begin := time.Now()
	lines.Say(progress, "kind target: creating cluster %s on %s: %d node(s) of %s (about 30 s)", name, t.engine, len(config.Nodes), t.image)
	if err := provider.Create(name, kindcluster.CreateWithV1Alpha4Config(config), kindcluster.CreateWithNodeImage(t.image),
		kindcluster.CreateWithKubeconfigPath(kubeconfig), kindcluster.CreateWithWaitForReady(3*time.Minute),
		kindcluster.CreateWithDisplayUsage(false), kindcluster.CreateWithDisplaySalutation(false)); err != nil {
		return nil, fmt.Errorf("kind target: creating cluster %s: %w", name, withEngineOutput(err))
	}
	created = true
	lines.Say(progress, "kind target: cluster %s up in %s", name, time.Since(begin).Round(100*time.Millisecond))
	c, err := kubeTarget{opts: TargetOptions{Kubeconfig: kubeconfig, Context: "kind-" + name, BinDir: t.opts.BinDir, PodImage: t.opts.PodImage}}.Up(ctx, sc, progress)
	if err != nil {
		return nil, err
	}
	var unroute func()
	kubeDown := c.Down
	c.Down = sync.OnceFunc(func() {
		kubeDown()
		if unroute != nil {
			unroute()
		}
		deleteCluster()
	})
	defer func() {
		if err != nil {
			c.Down()
		}
	}()
	c.Images = &kindImages{provider: provider, cluster: name, binDir: t.opts.BinDir, cache: filepath.Join(t.opts.Cache, "programs"), progress: progress}
	if c.HostAddress, unroute, err = routeToPods(ctx, c.Admin, progress); err != nil {
		return nil, fmt.Errorf("kind target: %w", err)
	}
	return c, nil
}

// routeToPods routes this machine to each node's pod CIDR through the
// node, so that the runner's balancer reaches the game pods and the pods
// reach the runner's uplink, and returns this machine's address on the
// nodes' network. A route to the same pods that is already there is
// someone else's: it is an error, not replaced. unroute deletes the
// routes it added: kind keeps its network, and so its bridge, for the
// next cluster, and the routes would outlive this one.
func routeToPods(ctx context.Context, admin *rest.Config, progress io.Writer) (host string, _ func(), err error) {
	var added []*netlink.Route
	// Not the named result: a failed return sets that to nil before the
	// deferred clean-up below runs.
	unroute := func() {
		for _, r := range added {
			if err := netlink.RouteDel(r); err != nil {
				lines.Say(progress, "kind target: deleting the route to %s: %v", r.Dst, err)
			}
		}
	}
	defer func() {
		if err != nil {
			unroute()
		}
	}()
	kube, err := kubernetes.NewForConfig(admin)
	if err != nil {
		return "", nil, err
	}
	nodes, err := kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return "", nil, err
	}
	for _, n := range nodes.Items {
		nodeIP := ""
		for _, a := range n.Status.Addresses {
			if a.Type == corev1.NodeInternalIP && net.ParseIP(a.Address).To4() != nil {
				nodeIP = a.Address
			}
		}
		_, pods, err := net.ParseCIDR(n.Spec.PodCIDR)
		if nodeIP == "" || err != nil {
			return "", nil, fmt.Errorf("node %s has no IPv4 address or pod CIDR (%q)", n.Name, n.Spec.PodCIDR)
		}
		if host == "" {
			if host, err = localAddressFacing(net.ParseIP(nodeIP)); err != nil {
				return "", nil, err
			}
		}
		route := &netlink.Route{Dst: pods, Gw: net.ParseIP(nodeIP)}
		if err := netlink.RouteAdd(route); err != nil {
			return "", nil, fmt.Errorf("routing %s via node %s (%s): %w (a route to those pods that is not this run's?)", pods, n.Name, nodeIP, err)
		}
		added = append(added, route)
		lines.Say(progress, "kind target: this machine reaches node %s's pods %s through %s", n.Name, pods, nodeIP)
	}
	return host, unroute, nil
}

// localAddressFacing returns this machine's address on the network of
// ip.
func localAddressFacing(ip net.IP) (string, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return "", err
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.Contains(ip) && !n.IP.Equal(ip) {
			return n.IP.String(), nil
		}
	}
	return "", fmt.Errorf("no address of this machine is on node address %s's network", ip)
}

// kindImages loads images of churnlab's programs into a kind cluster's
// nodes (ctr import in each, as `kind load image-archive` does).
type kindImages struct {
	provider *kindcluster.Provider
	cluster  string
	binDir   string // its node/ holds the programs, built with CGO_ENABLED=0
	cache    string
	progress io.Writer
}

func (k *kindImages) Image(ctx context.Context, program string) (string, error) {
	built, err := kindnode.Program(filepath.Join(k.binDir, "node", program), k.cache)
	if err != nil {
		return "", err
	}
	nodes, err := k.provider.ListNodes(k.cluster)
	if err != nil {
		return "", err
	}
	begin := time.Now()
	for _, n := range nodes {
		f, err := os.Open(built.Tarball)
		if err != nil {
			return "", err
		}
		err = nodeutils.LoadImageArchive(n, f)
		f.Close()
		if err != nil {
			return "", fmt.Errorf("loading %s into node %s: %w", built.Ref, n, withEngineOutput(err))
		}
	}
	lines.Say(k.progress, "kind target: %s loaded into %d node(s) in %s", built.Ref, len(nodes), time.Since(begin).Round(100*time.Millisecond))
	return built.Ref, nil
}

func (k *kindImages) EtcdImage() string { return kindnode.EtcdImage }

func (k *kindImages) NodeAddress() (string, error) {
	nodes, err := k.provider.ListNodes(k.cluster)
	if err != nil {
		return "", err
	}
	for _, n := range nodes {
		if ip, _, err := n.IP(); err == nil && ip != "" {
			return ip, nil
		}
	}
	return "", fmt.Errorf("kind target: no node of %s has an IPv4 address", k.cluster)
}

// clusterConfig is sc's cluster for kind: one node that runs everything
// for a one-node scenario, else a control plane and sc.Cluster.Nodes
// workers; the API server's inflight limits are the scenario's, as on the
// local target. (kind writes kubeadm's v1beta3 config for 1.34, whose
// extraArgs is a map.)
func clusterConfig(sc *scenario.Scenario) *v1alpha4.Cluster {
	config := &v1alpha4.Cluster{Nodes: []v1alpha4.Node{{Role: v1alpha4.ControlPlaneRole}}}
	if sc.Cluster.Nodes > 1 {
		for range sc.Cluster.Nodes {
			config.Nodes = append(config.Nodes, v1alpha4.Node{Role: v1alpha4.WorkerRole})
		}
	}
	if api := sc.Cluster.APIServer; api.MaxRequestsInflight > 0 {
		config.KubeadmConfigPatches = []string{fmt.Sprintf(`kind: ClusterConfiguration
apiServer:
  extraArgs:
    max-requests-inflight: "%d"
    max-mutating-requests-inflight: "%d"
`, api.MaxRequestsInflight, api.MaxMutatingRequestsInflight)}
	}
	return config
}

// withEngineOutput adds to err what the container engine printed, when
// err comes from one of its commands: kind's own error says only
// `command "docker info ..." failed with error: exit status 1`, and the
// engine's reason (no daemon, no permission on its socket) is in the
// output kind kept.
func withEngineOutput(err error) error {
	run := kindexec.RunErrorForError(err)
	if run == nil {
		return err
	}
	// The output is stdout and stderr together: keep the last few lines
	// that are not the JSON a command such as docker info prints before
	// its complaint.
	var said []string
	for _, line := range strings.Split(string(run.Output), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "{") || strings.HasPrefix(line, "[") {
			continue
		}
		if len(line) > 300 {
			line = line[:300] + "..."
		}
		said = append(said, line)
	}
	if len(said) == 0 {
		return err
	}
	return fmt.Errorf("%w; %s said: %s", err, run.Command[0], strings.Join(said[max(0, len(said)-3):], " / "))
}
