package controlplane

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	_ "embed"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	flowcontrolv1 "k8s.io/api/flowcontrol/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// OperatorUser and OperatorGroup are the identity the operator's
// rest.Config authenticates as: a plain token user, not in system:masters,
// so API Priority and Fairness can throttle it.
const (
	OperatorUser  = "churnlab-operator"
	OperatorGroup = "churnlab:operators"
)

// FakeNodeAnnotation marks the nodes kwok manages.
const FakeNodeAnnotation = "kwok.x-k8s.io/node"

// Options configures a control plane. Zero values take the defaults noted.
type Options struct {
	BinDir string // where make controlplane put the binaries; default: bin/ of the churnlab checkout
	Nodes  int    // kwok fake nodes; default 3
	// kube-apiserver's inflight limits; default 400 and 200 (its own
	// defaults). A scaled-down run lowers them so that it throttles the
	// way the full-size cluster did (F11).
	MaxRequestsInflight         int
	MaxMutatingRequestsInflight int
	// QueueLengthLimit, when set, shrinks the queues of the global-default
	// priority level (where the operator's requests land) to one queue of
	// this length. APF's queues do not shrink with the inflight limits, so
	// a scaled-down run scales them too, or a burst that overflowed the
	// full-size cluster's queues would just wait in the small one's.
	QueueLengthLimit int
	Progress         io.Writer // one line per step; nil for none
}

// ControlPlane is a running local control plane.
type ControlPlane struct {
	Dir      string       // temporary directory holding data, certs and logs
	Admin    *rest.Config // system:masters; APF exempts it
	Operator *rest.Config // OperatorUser in OperatorGroup; APF throttles it
	// AdminKubeconfig and OperatorKubeconfig are kubeconfig files for the
	// two identities, for kubectl and for the operator run as a program.
	AdminKubeconfig    string
	OperatorKubeconfig string
	// EtcdURL is the control plane's etcd client URL; its /metrics
	// counts leader changes.
	EtcdURL string

	procs    []*process
	stopOnce sync.Once
	stopped  chan struct{}
}

// Start brings up etcd, kube-apiserver, kube-controller-manager,
// kube-scheduler and kwok with opts.Nodes fake nodes, and waits until each
// is ready. On any failure it stops what it started and removes its
// directory. When ctx ends, the control plane stops itself.
func Start(ctx context.Context, opts Options) (_ *ControlPlane, err error) {
	if opts.Nodes == 0 {
		opts.Nodes = 3
	}
	if opts.MaxRequestsInflight == 0 {
		opts.MaxRequestsInflight = 400
	}
	if opts.MaxMutatingRequestsInflight == 0 {
		opts.MaxMutatingRequestsInflight = 200
	}
	if opts.BinDir == "" {
		if opts.BinDir, err = DefaultBinDir(); err != nil {
			return nil, err
		}
	}
	if err := checkBinaries(opts.BinDir); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "churnlab-controlplane-")
	if err != nil {
		return nil, fmt.Errorf("controlplane: %w", err)
	}
	cp := &ControlPlane{Dir: dir, stopped: make(chan struct{})}
	defer func() {
		if err != nil {
			cp.Stop()
		}
	}()
	s := &starter{cp: cp, opts: opts, ctx: ctx}
	steps := []struct {
		name string
		run  func() error
	}{
		{"credentials", s.credentials},
		{"etcd", s.etcd},
		{"kube-apiserver", s.apiserver},
		{"API Priority and Fairness queues", s.queues},
		{"kube-controller-manager", s.controllerManager},
		{"kube-scheduler", s.scheduler},
		{"kwok", s.kwok},
		{fmt.Sprintf("%d fake nodes", opts.Nodes), s.nodes},
	}
	for i, step := range steps {
		if opts.Progress != nil {
			fmt.Fprintf(opts.Progress, "controlplane: step %d/%d: %s\n", i+1, len(steps), step.name)
		}
		if err := step.run(); err != nil {
			return nil, fmt.Errorf("controlplane: step %q: %w", step.name, err)
		}
	}
	go func() {
		select {
		case <-ctx.Done():
			cp.Stop()
		case <-cp.stopped:
		}
	}()
	return cp, nil
}

// Stop stops every component, newest first, and removes the directory. It
// is safe to call more than once and from several goroutines.
func (cp *ControlPlane) Stop() {
	cp.stopOnce.Do(func() {
		for i := len(cp.procs) - 1; i >= 0; i-- {
			cp.procs[i].stop(10 * time.Second)
		}
		os.RemoveAll(cp.Dir)
		close(cp.stopped)
	})
}

// Pids returns the process ids of the running components, for tests that
// check nothing is left behind.
func (cp *ControlPlane) Pids() []int {
	var pids []int
	for _, p := range cp.procs {
		pids = append(pids, p.cmd.Process.Pid)
	}
	return pids
}

// Binaries lists the programs Start runs, all from Options.BinDir.
var Binaries = []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"}

func checkBinaries(bin string) error {
	var missing []string
	for _, b := range Binaries {
		if _, err := os.Stat(filepath.Join(bin, b)); err != nil {
			missing = append(missing, b)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("controlplane: %v missing from %s; run make controlplane", missing, bin)
	}
	return nil
}

// DefaultBinDir returns bin/ of the churnlab checkout that contains the
// working directory.
func DefaultBinDir() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("controlplane: %w", err)
	}
	for {
		if data, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && isChurnlabModule(data) {
			return filepath.Join(dir, "bin"), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("controlplane: not inside a churnlab checkout; set Options.BinDir")
		}
		dir = parent
	}
}

func isChurnlabModule(gomod []byte) bool {
	const first = "module github.com/churnlab/churnlab\n"
	return len(gomod) >= len(first) && string(gomod[:len(first)]) == first
}

// starter holds what the start steps share.
type starter struct {
	cp   *ControlPlane
	opts Options
	ctx  context.Context

	adminToken, operatorToken string
	etcdURL                   string
	apiPort                   int
	admin                     *kubernetes.Clientset
}

func (s *starter) path(name string) string { return filepath.Join(s.cp.Dir, name) }

func (s *starter) start(name string, args ...string) (*process, error) {
	p, err := startProcess(s.cp.Dir, name, filepath.Join(s.opts.BinDir, name), args...)
	if err != nil {
		return nil, err
	}
	s.cp.procs = append(s.cp.procs, p)
	return p, nil
}

func randomToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on Linux
	return hex.EncodeToString(b)
}

// credentials writes the service-account signing key and the static token
// file: one admin token, one operator token.
func (s *starter) credentials() error {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	if err := os.WriteFile(s.path("sa.key"), keyPEM, 0o600); err != nil {
		return err
	}
	s.adminToken, s.operatorToken = randomToken(), randomToken()
	tokens := fmt.Sprintf("%s,admin,admin,system:masters\n%s,%s,%s,%s\n",
		s.adminToken, s.operatorToken, OperatorUser, OperatorUser, OperatorGroup)
	return os.WriteFile(s.path("tokens.csv"), []byte(tokens), 0o600)
}

func (s *starter) etcd() error {
	p, url, err := launchEtcd(s.ctx, s.cp.Dir, s.opts.BinDir)
	if p != nil {
		s.cp.procs = append(s.cp.procs, p)
	}
	s.etcdURL, s.cp.EtcdURL = url, url
	return err
}

func (s *starter) apiserver() error {
	var err error
	if s.apiPort, err = freePort(); err != nil {
		return err
	}
	p, err := s.start("kube-apiserver",
		"--etcd-servers="+s.etcdURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=10.0.0.1", // stored as data only; 127.0.0.1 makes it log an error every 10 s
		"--secure-port="+itoa(s.apiPort),
		"--cert-dir="+s.path("apiserver-certs"),
		"--token-auth-file="+s.path("tokens.csv"),
		"--authorization-mode=RBAC",
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file="+s.path("sa.key"),
		"--service-account-signing-key-file="+s.path("sa.key"),
		"--service-cluster-ip-range=10.96.0.0/16",
		"--enable-priority-and-fairness=true",
		"--max-requests-inflight="+itoa(s.opts.MaxRequestsInflight),
		"--max-mutating-requests-inflight="+itoa(s.opts.MaxMutatingRequestsInflight),
		"--v=0")
	if err != nil {
		return err
	}
	base := fmt.Sprintf("https://127.0.0.1:%d", s.apiPort)
	if err := p.waitReady(s.ctx, base+"/readyz", s.adminToken, 90*time.Second); err != nil {
		return err
	}
	caFile := s.path("apiserver-certs/apiserver.crt")
	tlsConfig := rest.TLSClientConfig{CAFile: caFile}
	// The admin sets scenes up (hundreds of pods at once): no client-side limit.
	s.cp.Admin = &rest.Config{Host: base, BearerToken: s.adminToken, TLSClientConfig: tlsConfig, QPS: -1}
	s.cp.Operator = &rest.Config{Host: base, BearerToken: s.operatorToken, TLSClientConfig: tlsConfig}
	if s.admin, err = kubernetes.NewForConfig(s.cp.Admin); err != nil {
		return err
	}
	s.cp.AdminKubeconfig = s.path("admin.kubeconfig")
	s.cp.OperatorKubeconfig = s.path("operator.kubeconfig")
	return errors.Join(
		WriteKubeconfig(s.cp.AdminKubeconfig, s.cp.Admin),
		WriteKubeconfig(s.cp.OperatorKubeconfig, s.cp.Operator))
}

// WriteKubeconfig writes cfg, a bearer-token identity, as a kubeconfig
// file at path, for a program that takes --kubeconfig.
func WriteKubeconfig(path string, cfg *rest.Config) error {
	if cfg.BearerToken == "" {
		return fmt.Errorf("kubeconfig %s: the identity has no bearer token", path)
	}
	out := clientcmdapi.NewConfig()
	out.Clusters["cluster"] = &clientcmdapi.Cluster{
		Server:                   cfg.Host,
		CertificateAuthority:     cfg.TLSClientConfig.CAFile,
		CertificateAuthorityData: cfg.TLSClientConfig.CAData,
		InsecureSkipTLSVerify:    cfg.TLSClientConfig.Insecure,
	}
	out.AuthInfos["user"] = &clientcmdapi.AuthInfo{Token: cfg.BearerToken}
	out.Contexts["churnlab"] = &clientcmdapi.Context{Cluster: "cluster", AuthInfo: "user"}
	out.CurrentContext = "churnlab"
	return clientcmd.WriteToFile(*out, path)
}

// PriorityLevelOf asks the API server which APF priority level serves
// identity's requests, from APF's own response header on a discovery
// request; admin looks the level's name up.
func PriorityLevelOf(ctx context.Context, admin, identity *rest.Config) (string, error) {
	kube, err := kubernetes.NewForConfig(admin)
	if err != nil {
		return "", err
	}
	levels, err := kube.FlowcontrolV1().PriorityLevelConfigurations().List(ctx, metav1.ListOptions{})
	if err != nil {
		return "", fmt.Errorf("listing APF priority levels: %w", err)
	}
	transport, err := rest.TransportFor(identity)
	if err != nil {
		return "", err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, identity.Host+"/api", nil)
	if err != nil {
		return "", err
	}
	resp, err := transport.RoundTrip(req)
	if err != nil {
		return "", fmt.Errorf("asking which APF priority level serves %s: %w", identity.Host, err)
	}
	resp.Body.Close()
	uid := resp.Header.Get("X-Kubernetes-PF-PriorityLevel-UID")
	for _, l := range levels.Items {
		if string(l.UID) == uid {
			return l.Name, nil
		}
	}
	return "", fmt.Errorf("the API server named no APF priority level for the identity (X-Kubernetes-PF-PriorityLevel-UID %q, status %s); is API Priority and Fairness on?", uid, resp.Status)
}

// OperatorPriorityLevel is the APF priority level that serves the
// operator identity: APF's own catch-all for authenticated users.
const OperatorPriorityLevel = "global-default"

func (s *starter) queues() error {
	if s.opts.QueueLengthLimit == 0 {
		return nil
	}
	levels := s.admin.FlowcontrolV1().PriorityLevelConfigurations()
	pl, err := levels.Get(s.ctx, OperatorPriorityLevel, metav1.GetOptions{})
	if err != nil {
		return err
	}
	if pl.Spec.Limited == nil || pl.Spec.Limited.LimitResponse.Queuing == nil {
		return fmt.Errorf("priority level %s does not queue", OperatorPriorityLevel)
	}
	// Tell the API server to keep our spec instead of restoring its own.
	metav1.SetMetaDataAnnotation(&pl.ObjectMeta, flowcontrolv1.AutoUpdateAnnotationKey, "false")
	q := pl.Spec.Limited.LimitResponse.Queuing
	q.Queues, q.HandSize, q.QueueLengthLimit = 1, 1, int32(s.opts.QueueLengthLimit)
	_, err = levels.Update(s.ctx, pl, metav1.UpdateOptions{})
	return err
}

func (s *starter) controllerManager() error {
	return s.startKubeComponent("kube-controller-manager",
		"--service-account-private-key-file="+s.path("sa.key"),
		"--root-ca-file="+s.path("apiserver-certs/apiserver.crt"))
}

func (s *starter) scheduler() error { return s.startKubeComponent("kube-scheduler") }

// startKubeComponent starts a component that talks to the API server as
// the admin and serves /healthz over HTTPS on a free port, with no leader
// election, and waits until it is healthy.
func (s *starter) startKubeComponent(name string, extra ...string) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	args := append([]string{
		"--kubeconfig=" + s.cp.AdminKubeconfig,
		"--authentication-kubeconfig=" + s.cp.AdminKubeconfig,
		"--authorization-kubeconfig=" + s.cp.AdminKubeconfig,
		"--bind-address=127.0.0.1", "--secure-port=" + itoa(port),
		"--leader-elect=false",
		"--v=0",
	}, extra...)
	p, err := s.start(name, args...)
	if err != nil {
		return err
	}
	return p.waitReady(s.ctx, fmt.Sprintf("https://127.0.0.1:%d/healthz", port), "", 60*time.Second)
}

// kwokStages is kwok's pod lifecycle: kwok's own, but for readiness
// gates, which keep a pod unready until each is True, as a kubelet does.
//
//go:embed kwok-stages.yaml
var kwokStages []byte

func (s *starter) kwok() error {
	port, err := freePort()
	if err != nil {
		return err
	}
	stages := s.path("kwok-stages.yaml")
	if err := os.WriteFile(stages, kwokStages, 0o644); err != nil {
		return err
	}
	p, err := s.start("kwok",
		"--config="+stages,
		"--kubeconfig="+s.cp.AdminKubeconfig,
		"--manage-nodes-with-annotation-selector="+FakeNodeAnnotation+"=fake",
		"--cidr=10.244.0.0/16",
		"--node-ip=10.0.0.2",
		"--server-address=127.0.0.1:"+itoa(port))
	if err != nil {
		return err
	}
	return p.waitReady(s.ctx, fmt.Sprintf("http://127.0.0.1:%d/healthz", port), "", 60*time.Second)
}

// nodes creates the fake nodes kwok manages, and waits until kwok has
// marked each one Ready.
func (s *starter) nodes() error {
	for i := range s.opts.Nodes {
		node := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{
				Name:        fmt.Sprintf("kwok-node-%d", i),
				Annotations: map[string]string{FakeNodeAnnotation: "fake"},
				Labels:      map[string]string{"type": "kwok", "kubernetes.io/hostname": fmt.Sprintf("kwok-node-%d", i)},
			},
			Spec: corev1.NodeSpec{Taints: []corev1.Taint{{Key: FakeNodeAnnotation, Value: "fake", Effect: corev1.TaintEffectNoSchedule}}},
		}
		if _, err := s.admin.CoreV1().Nodes().Create(s.ctx, node, metav1.CreateOptions{}); err != nil {
			return err
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		list, err := s.admin.CoreV1().Nodes().List(s.ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		ready := 0
		for _, n := range list.Items {
			for _, c := range n.Status.Conditions {
				if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
					ready++
				}
			}
		}
		if ready == s.opts.Nodes {
			return nil
		}
		select {
		case <-s.ctx.Done():
			return s.ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return fmt.Errorf("kwok did not mark %d nodes Ready within 60 s", s.opts.Nodes)
}

// EnsureBuilt runs `tools/controlplane/build.sh` of the churnlab checkout
// around the working directory (what `make controlplane` runs), which
// builds any missing binary and does nothing when all are current. It
// returns the bin directory.
func EnsureBuilt(ctx context.Context, out io.Writer) (string, error) {
	return build(ctx, out)
}

// EnsureNodeBuilt runs `tools/controlplane/build.sh node`: what the kind
// target's node image is made of besides the control plane (kubelet,
// kubeadm, kube-proxy, coredns, pause, nodenet, capshim). It returns the
// bin directory.
func EnsureNodeBuilt(ctx context.Context, out io.Writer) (string, error) {
	return build(ctx, out, "node")
}

func build(ctx context.Context, out io.Writer, args ...string) (string, error) {
	bin, err := DefaultBinDir()
	if err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, "bash", append([]string{filepath.Join(filepath.Dir(bin), "tools", "controlplane", "build.sh")}, args...)...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("controlplane: building the binaries (build.sh %s): %w", strings.Join(args, " "), err)
	}
	return bin, nil
}

// FakeNodeDeployment returns a Deployment of replicas pods labelled
// labels whose pods are scheduled onto the kwok nodes (which kwok then
// marks Running); its containers never run anywhere.
func FakeNodeDeployment(namespace, name string, labels map[string]string, replicas int32) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					Containers:   []corev1.Container{{Name: name, Image: "churnlab/" + name}},
					NodeSelector: map[string]string{"type": "kwok"},
					Tolerations: []corev1.Toleration{{
						Key: FakeNodeAnnotation, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule,
					}},
				},
			},
		},
	}
}
