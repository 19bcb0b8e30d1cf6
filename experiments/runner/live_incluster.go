package runner

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/churnlab/churnlab/experiments/pod"
	"github.com/churnlab/churnlab/experiments/scenario"
	"github.com/churnlab/churnlab/internal/ctxsleep"
	"github.com/churnlab/churnlab/reference/agent"
)

// Where the cluster runs churnlab's own programs (Cluster.Images: the
// kind target), every part of both systems is a pod:
//
//   - the game pods run cmd/podagent: the game server and its config
//     client; each marks itself ConfigReady once it has config, and the
//     runner follows them with a pod.Observer;
//   - the baseline's operator is a Deployment (operator_pod.go);
//   - the reference's configd replicas are a StatefulSet over one etcd
//     store pod (bbolt cannot be shared between pods), and its node agents
//     (cmd/nodeagent) a DaemonSet with their L2 caches on a hostPath.
//
// The runner keeps the churn, the load, the scrapes and the uplink: every
// byte of config between the config services and the pods crosses a
// listener of the run's uplink on this machine, at the address the pods
// reach it by (Cluster.HostAddress), which forwards it into the cluster.

// The in-cluster parts' names and ports.
const (
	gameServiceAccount = "game"
	gamePort           = 8080
	configdName        = "configd"
	configdPort        = 7070
	configdMetricsPort = 9090
	storeName          = "configd-store"
	agentName          = "nodeagent"
	agentPort          = 7790
)

// inCluster reports whether the cluster runs the systems' programs in
// pods.
func (l *liveRun) inCluster() bool { return l.cluster.Images != nil }

// uplinkListen listens on addr through the run's uplink; "" is a free
// port where the pods reach this machine (in the cluster) or on loopback.
func (l *liveRun) uplinkListen(addr string) (net.Listener, error) {
	if addr == "" && l.inCluster() {
		addr = net.JoinHostPort(l.cluster.HostAddress, "0")
	}
	return l.link.Listen(addr)
}

// lookupPod returns the game pod called name that the run follows, or
// nil.
func (l *liveRun) lookupPod(name string) *pod.Pod {
	l.podsMu.Lock()
	defer l.podsMu.Unlock()
	if l.pods == nil {
		return nil
	}
	return l.pods.Lookup(name)
}

// inClusterGamePods makes d's pods run cmd/podagent with the system's
// config client (args), under a service account that may read its pod
// and set its status.
func (l *liveRun) inClusterGamePods(ctx context.Context, d *appsv1.Deployment, args []string) error {
	image, err := l.cluster.Images.Image(ctx, "podagent")
	if err != nil {
		return fmt.Errorf("the game pods' image: %w", err)
	}
	ns := l.cluster.Namespace
	if _, err := l.kube.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: gameServiceAccount}}, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("the game pods' service account: %w", err)
	}
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: gameServiceAccount},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list", "watch"}},
			{APIGroups: []string{""}, Resources: []string{"pods/status"}, Verbs: []string{"patch"}},
		},
	}
	if _, err := l.kube.RbacV1().Roles(ns).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("the game pods' role: %w", err)
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: gameServiceAccount},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: gameServiceAccount},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: gameServiceAccount, Namespace: ns}},
	}
	if _, err := l.kube.RbacV1().RoleBindings(ns).Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("the game pods' role binding: %w", err)
	}
	spec := &d.Spec.Template.Spec
	spec.ServiceAccountName = gameServiceAccount
	c := &spec.Containers[0]
	c.Image, c.ImagePullPolicy = image, corev1.PullNever
	c.Args = append([]string{
		"--listen=:" + strconv.Itoa(gamePort),
		"--capacity=" + strconv.FormatFloat(l.sc.Workload.PodCapacity.PerSecond(), 'g', -1, 64),
		"--base-latency=" + l.sc.Workload.BaseLatency.D().String(),
		"--max-queue=" + l.sc.Model.Pods.MaxQueue.D().String(),
		"--seed=" + strconv.FormatUint(l.sc.Seed, 10),
	}, args...)
	c.Env = append(c.Env, downward("POD_NAME", "metadata.name"), downward("POD_NAMESPACE", "metadata.namespace"), downward("HOST_IP", "status.hostIP"))
	c.Ports = []corev1.ContainerPort{{Name: "game", ContainerPort: gamePort}}
	c.ReadinessProbe = httpProbe("/healthz", gamePort)
	c.Resources.Requests = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10m"), corev1.ResourceMemory: resource.MustParse("16Mi")}
	return nil
}

// downward is an environment variable from the pod's own fields.
func downward(name, field string) corev1.EnvVar {
	return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: field}}}
}

// httpProbe is a readiness probe of path every second, lenient on a busy
// node: 2 s to answer, three misses in a row to fail.
func httpProbe(path string, port int) *corev1.Probe {
	return &corev1.Probe{
		ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: intstr.FromInt(port)}},
		PeriodSeconds: 1, TimeoutSeconds: 2, FailureThreshold: 3,
	}
}

// waitReady waits until ready reports every one of the run's pods of
// some kind ready.
func (l *liveRun) waitReady(ctx context.Context, what string, ready func() (int32, int32, error)) error {
	return l.waitFor(ctx, 2*time.Minute, what, func() (bool, string) {
		n, want, err := ready()
		if err != nil {
			return false, err.Error()
		}
		return want > 0 && n == want, fmt.Sprintf("%d of %d ready", n, want)
	})
}

// forward accepts connections on l until ctx ends, and joins each to a
// connection dial makes.
func forward(ctx context.Context, wg *sync.WaitGroup, l net.Listener, dial func(context.Context) (net.Conn, error)) {
	wg.Add(2)
	go func() { defer wg.Done(); <-ctx.Done(); l.Close() }()
	go func() {
		defer wg.Done()
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer in.Close()
				out, err := dial(ctx)
				if err != nil {
					return // the client sees the connection close: as a refused dial
				}
				defer out.Close()
				done := make(chan struct{}, 2)
				go func() { io.Copy(out, in); done <- struct{}{} }() //nolint:errcheck // either side ending ends both
				go func() { io.Copy(in, out); done <- struct{}{} }() //nolint:errcheck // as above
				select {
				case <-done:
				case <-ctx.Done():
				}
			}()
		}
	}()
}

// --- reference, in the cluster ---

// installInCluster runs the store and the configd replicas as pods, and
// gives each replica a listener of the uplink that forwards to it.
func (r *referenceSystem) installInCluster(ctx context.Context) error {
	run := r.run
	if run.injectPushDelay != 0 {
		return fmt.Errorf("an injected push delay needs configd in this process, not in the cluster's pods")
	}
	if run.sc.Reference.Store.Kind == "bbolt" && run.sc.Reference.Replicas > 1 {
		run.notef("reference store: one etcd pod that the %d configd pods share (the scenario's bbolt is one process's file)", run.sc.Reference.Replicas)
	}
	ns, kube := run.cluster.Namespace, run.kube
	storeIP, err := r.startStore(ctx)
	if err != nil {
		return err
	}
	image, err := run.cluster.Images.Image(ctx, "configd")
	if err != nil {
		return fmt.Errorf("configd's image: %w", err)
	}
	labels := map[string]string{"app": configdName}
	replicas := int32(run.sc.Reference.Replicas)
	ref := run.sc.Reference
	set := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: configdName},
		Spec: appsv1.StatefulSetSpec{
			Replicas:            &replicas,
			Selector:            &metav1.LabelSelector{MatchLabels: labels},
			PodManagementPolicy: appsv1.ParallelPodManagement,
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					Containers: []corev1.Container{{
						Name: configdName, Image: image, ImagePullPolicy: corev1.PullNever,
						Args: []string{
							"--store=etcd", "--etcd-endpoints=http://" + net.JoinHostPort(storeIP, "2379"),
							"--listen=:" + strconv.Itoa(configdPort), "--metrics-listen=:" + strconv.Itoa(configdMetricsPort),
							"--keepalive=" + ref.Keepalive.D().String(),
							"--l1-entries=" + strconv.Itoa(ref.L1.Entries), "--l1-bytes=" + strconv.Itoa(ref.L1.Entries*int(ref.L1.EntryBytes)),
						},
						Ports:          []corev1.ContainerPort{{Name: "grpc", ContainerPort: configdPort}, {Name: "metrics", ContainerPort: configdMetricsPort}},
						ReadinessProbe: httpProbe("/metrics", configdMetricsPort),
						Resources:      requests("100m", "32Mi"),
					}},
				},
			},
		},
	}
	if _, err := kube.AppsV1().StatefulSets(ns).Create(ctx, set, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("configd's StatefulSet: %w", err)
	}
	if err := run.waitReady(ctx, "configd's pods", func() (int32, int32, error) {
		s, err := kube.AppsV1().StatefulSets(ns).Get(ctx, configdName, metav1.GetOptions{})
		if err != nil {
			return 0, 0, err
		}
		return s.Status.ReadyReplicas, replicas, nil
	}); err != nil {
		return err
	}
	for i := range int(replicas) {
		l, err := run.uplinkListen("")
		if err != nil {
			return err
		}
		name := fmt.Sprintf("%s-%d", configdName, i)
		forward(ctx, &r.wg, l, func(ctx context.Context) (net.Conn, error) {
			ip, err := r.podIP(ctx, name)
			if err != nil {
				return nil, err
			}
			var d net.Dialer
			return d.DialContext(ctx, "tcp", net.JoinHostPort(ip, strconv.Itoa(configdPort)))
		})
		r.replicas = append(r.replicas, &replica{addr: l.Addr().String()})
	}
	return nil
}

func requests(cpu, memory string) corev1.ResourceRequirements {
	return corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse(memory)}}
}

// podIP returns the IP of the run's pod called name, once it runs.
func (r *referenceSystem) podIP(ctx context.Context, name string) (string, error) {
	p, err := r.run.kube.CoreV1().Pods(r.run.cluster.Namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return "", err
	}
	if p.Status.PodIP == "" || p.DeletionTimestamp != nil {
		return "", fmt.Errorf("pod %s has no IP", name)
	}
	return p.Status.PodIP, nil
}

// startStore runs etcd (the image the nodes hold for their control
// plane) as the store's pod, its data on a hostPath of the control-plane
// node so that a storeOutage (scaled to 0 and back) keeps it, and returns
// its Service's cluster IP.
func (r *referenceSystem) startStore(ctx context.Context) (string, error) {
	ns, kube := r.run.cluster.Namespace, r.run.kube
	labels := map[string]string{"app": storeName}
	one := int32(1)
	dirType := corev1.HostPathDirectoryOrCreate
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: storeName},
		Spec: appsv1.DeploymentSpec{
			Replicas: &one,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					NodeSelector: map[string]string{"node-role.kubernetes.io/control-plane": ""},
					Tolerations:  []corev1.Toleration{{Key: "node-role.kubernetes.io/control-plane", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}},
					Containers: []corev1.Container{{
						Name: "etcd", Image: r.run.cluster.Images.EtcdImage(), ImagePullPolicy: corev1.PullNever,
						Command: []string{"etcd", "--name=store", "--data-dir=/var/lib/store",
							"--listen-client-urls=http://0.0.0.0:2379", "--advertise-client-urls=http://127.0.0.1:2379",
							"--listen-metrics-urls=http://0.0.0.0:2381"},
						Ports:          []corev1.ContainerPort{{Name: "client", ContainerPort: 2379}},
						ReadinessProbe: httpProbe("/health", 2381),
						VolumeMounts:   []corev1.VolumeMount{{Name: "data", MountPath: "/var/lib/store"}},
						Resources:      requests("100m", "64Mi"),
					}},
					Volumes: []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{
						Path: "/var/lib/churnlab/" + ns + "/store", Type: &dirType}}}},
				},
			},
		},
	}
	if _, err := kube.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
		return "", fmt.Errorf("the store's Deployment: %w", err)
	}
	svc, err := kube.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: storeName},
		Spec:       corev1.ServiceSpec{Selector: labels, Ports: []corev1.ServicePort{{Name: "client", Port: 2379, TargetPort: intstr.FromInt(2379)}}},
	}, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("the store's Service: %w", err)
	}
	return svc.Spec.ClusterIP, r.run.waitReady(ctx, "the store's pod", func() (int32, int32, error) {
		d, err := kube.AppsV1().Deployments(ns).Get(ctx, storeName, metav1.GetOptions{})
		if err != nil {
			return 0, 0, err
		}
		return d.Status.ReadyReplicas, 1, nil
	})
}

// startAgents runs the node agents as a DaemonSet on the nodes' own
// network, each with its node's L2 on a hostPath, streaming from the
// replicas' uplink listeners, and follows each node's updates.
func (r *referenceSystem) startAgents(ctx context.Context) error {
	run := r.run
	ns, kube := run.cluster.Namespace, run.kube
	image, err := run.cluster.Images.Image(ctx, "nodeagent")
	if err != nil {
		return fmt.Errorf("the node agent's image: %w", err)
	}
	var endpoints []string
	for _, rep := range r.replicas {
		endpoints = append(endpoints, rep.addr)
	}
	labels := map[string]string{"app": agentName}
	dirType := corev1.HostPathDirectoryOrCreate
	ds := &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: agentName},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					HostNetwork: true,
					Tolerations: []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
					Containers: []corev1.Container{{
						Name: agentName, Image: image, ImagePullPolicy: corev1.PullNever,
						Args: []string{
							"--endpoints=" + strings.Join(endpoints, ","), "--node=$(NODE_NAME)", "--l2=/l2",
							"--listen=$(HOST_IP):" + strconv.Itoa(agentPort),
							"--debounce=" + run.sc.Reference.Debounce.D().String(), "--keepalive=" + run.sc.Reference.Keepalive.D().String(),
						},
						Env:            []corev1.EnvVar{downward("NODE_NAME", "spec.nodeName"), downward("HOST_IP", "status.hostIP")},
						ReadinessProbe: httpProbe("/healthz", agentPort),
						VolumeMounts:   []corev1.VolumeMount{{Name: "l2", MountPath: "/l2"}},
						Resources:      requests("50m", "16Mi"),
					}},
					Volumes: []corev1.Volume{{Name: "l2", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{
						Path: "/var/lib/churnlab/" + ns + "/l2", Type: &dirType}}}},
				},
			},
		},
	}
	if _, err := kube.AppsV1().DaemonSets(ns).Create(ctx, ds, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("the node agents' DaemonSet: %w", err)
	}
	if err := run.waitReady(ctx, "the node agents", func() (int32, int32, error) {
		d, err := kube.AppsV1().DaemonSets(ns).Get(ctx, agentName, metav1.GetOptions{})
		if err != nil {
			return 0, 0, err
		}
		return d.Status.NumberReady, d.Status.DesiredNumberScheduled, nil
	}); err != nil {
		return err
	}
	pods, err := kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=" + agentName})
	if err != nil {
		return err
	}
	for _, p := range pods.Items {
		r.followUpdates(ctx, p.Spec.NodeName, "http://"+net.JoinHostPort(p.Status.HostIP, strconv.Itoa(agentPort))+"/updates")
	}
	return nil
}

// followUpdates reads a node agent's /updates until ctx ends, connecting
// again when the stream breaks, and records each update's propagation at
// the time the agent stamped it.
func (r *referenceSystem) followUpdates(ctx context.Context, node, url string) {
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		reported := false
		for {
			err := readLines(ctx, url, func(line string) {
				hunt, version, at, err := agent.ParseUpdate(line)
				if err != nil {
					r.run.notef("node %s: %v", node, err)
					return
				}
				r.updated(node, hunt, version, at)
			})
			if ctx.Err() != nil {
				return
			}
			if !reported {
				reported = true
				r.run.notef("node %s's agent updates broke off (first time; following again): %v", node, err)
			}
			if !ctxsleep.Sleep(ctx, time.Second) {
				return
			}
		}
	}()
}

// readLines calls line for each line of url's body until it ends.
func readLines(ctx context.Context, url string, line func(string)) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	lines := bufio.NewScanner(resp.Body)
	for lines.Scan() {
		line(lines.Text())
	}
	if err := lines.Err(); err != nil {
		return err
	}
	return io.ErrUnexpectedEOF
}

// podArgs are the in-cluster game pods' config client: their node's
// agent.
func (r *referenceSystem) podArgs() []string {
	return []string{"--system=reference", "--agent=http://$(HOST_IP):" + strconv.Itoa(agentPort), "--hunts=" + strconv.Itoa(r.run.sc.Config.Hunts)}
}

// playInCluster plays the reference's own events on its pods: a
// replicaKill scales configd's StatefulSet down by that many (the highest
// ordinals) for its time, a storeOutage the store's Deployment to none.
func (r *referenceSystem) playInCluster(ctx context.Context, e scenario.Event) (bool, error) {
	ns, kube := r.run.cluster.Namespace, r.run.kube
	type scaler interface {
		GetScale(ctx context.Context, name string, opts metav1.GetOptions) (*autoscalingv1.Scale, error)
		UpdateScale(ctx context.Context, name string, scale *autoscalingv1.Scale, opts metav1.UpdateOptions) (*autoscalingv1.Scale, error)
	}
	var (
		of       scaler
		name     string
		down, up int32
		lasts    time.Duration
	)
	switch {
	case e.ReplicaKill != nil:
		of, name, up, lasts = kube.AppsV1().StatefulSets(ns), configdName, int32(len(r.replicas)), e.ReplicaKill.For.D()
		down = up - int32(min(e.ReplicaKill.Replicas, len(r.replicas)))
	case e.StoreOutage != nil:
		of, name, down, up, lasts = kube.AppsV1().Deployments(ns), storeName, 0, 1, e.StoreOutage.For.D()
	default:
		return false, nil
	}
	scale := func(to int32) error {
		s, err := of.GetScale(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		s.Spec.Replicas = to
		_, err = of.UpdateScale(ctx, name, s, metav1.UpdateOptions{})
		return err
	}
	if err := scale(down); err != nil {
		return true, err
	}
	r.run.after(ctx, lasts, func() {
		if err := scale(up); err != nil && ctx.Err() == nil {
			r.run.notef("bringing %s back to %d: %v", name, up, err)
		}
	})
	return true, nil
}

// metricsInCluster is each configd pod's /metrics at its current IP.
func (r *referenceSystem) metricsInCluster() map[string]metricsEndpoint {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	pods, err := r.run.kube.CoreV1().Pods(r.run.cluster.Namespace).List(ctx, metav1.ListOptions{LabelSelector: "app=" + configdName})
	if err != nil {
		return nil
	}
	m := map[string]metricsEndpoint{}
	for _, p := range pods.Items {
		if p.Status.PodIP != "" {
			m[p.Name] = metricsEndpoint{"http://" + net.JoinHostPort(p.Status.PodIP, strconv.Itoa(configdMetricsPort)) + "/metrics", "configd_"}
		}
	}
	return m
}

// listClusterPods lists every pod of the cluster, as kubectl get pods -A
// -o wide would, with each one's images: what ran where.
func (l *liveRun) listClusterPods(ctx context.Context) ([]byte, error) {
	pods, err := l.kube.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing the cluster's pods: %w", err)
	}
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "NAMESPACE\tNAME\tNODE\tPHASE\tREADY\tIMAGES")
	for _, p := range pods.Items {
		ready := "false"
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady {
				ready = strings.ToLower(string(c.Status))
			}
		}
		var images []string
		for _, c := range p.Spec.Containers {
			images = append(images, c.Image)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", p.Namespace, p.Name, p.Spec.NodeName, p.Status.Phase, ready, strings.Join(images, ","))
	}
	w.Flush()
	return []byte(b.String()), nil
}
