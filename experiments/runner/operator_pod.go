package runner

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/churnlab/churnlab/experiments/scenario"
)

// operatorName names the in-cluster operator's Deployment, Service and
// pods' app label.
const operatorName = "veltrix-operator"

// operatorPod is the baseline operator (cmd/veltrix) as a Deployment in
// the run's namespace, under the operator's service account, as a team
// would run it. Its bundle endpoint and /metrics are a NodePort Service,
// which the runner reaches on a node's address.
type operatorPod struct {
	url     string
	kube    kubernetes.Interface
	ns      string
	logPath string
}

// startOperatorPod deploys the operator and waits until it answers.
func startOperatorPod(ctx context.Context, c *Cluster, sc *scenario.Scenario, logPath string) (*operatorPod, error) {
	image, err := c.Images.Image(ctx, "veltrix")
	if err != nil {
		return nil, fmt.Errorf("the operator's image: %w", err)
	}
	kube, err := kubernetes.NewForConfig(c.Admin)
	if err != nil {
		return nil, err
	}
	labels := map[string]string{"app": operatorName}
	one := int32(1)
	deployment := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: operatorName, Namespace: c.Namespace},
		Spec: appsv1.DeploymentSpec{
			Replicas: &one,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					ServiceAccountName: operatorServiceAccount,
					Containers: []corev1.Container{{
						Name:            "veltrix",
						Image:           image,
						ImagePullPolicy: corev1.PullNever,
						// No --kubeconfig: the pod's own service account.
						Args:  append([]string{"--listen=0.0.0.0:8080"}, operatorArgs(sc, c.Namespace)...),
						Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
						ReadinessProbe: &corev1.Probe{
							ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(8080)}},
							PeriodSeconds: 1,
						},
						// Half a core, as a team sizes an operator that decodes
						// megabytes per reconcile: the request is its CPU
						// weight against the node's other pods (kube-apiserver
						// asks 250m), and with 10m it got about a hundredth of
						// the CPU under the storm and stopped answering.
						Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
							corev1.ResourceCPU: resource.MustParse("500m"), corev1.ResourceMemory: resource.MustParse("64Mi"),
						}},
					}},
				},
			},
		},
	}
	if _, err := kube.AppsV1().Deployments(c.Namespace).Create(ctx, deployment, metav1.CreateOptions{}); err != nil {
		return nil, fmt.Errorf("deploying the operator: %w", err)
	}
	svc, err := kube.CoreV1().Services(c.Namespace).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: operatorName, Namespace: c.Namespace},
		Spec: corev1.ServiceSpec{
			Type:     corev1.ServiceTypeNodePort,
			Selector: labels,
			Ports:    []corev1.ServicePort{{Name: "http", Port: 8080, TargetPort: intstr.FromInt32(8080)}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("the operator's service: %w", err)
	}
	node, err := c.Images.NodeAddress()
	if err != nil {
		return nil, err
	}
	p := &operatorPod{
		url:  "http://" + node + ":" + strconv.Itoa(int(svc.Spec.Ports[0].NodePort)),
		kube: kube, ns: c.Namespace, logPath: logPath,
	}
	client := &http.Client{Timeout: time.Second}
	for deadline := time.Now().Add(90 * time.Second); ; {
		if resp, err := client.Get(p.url + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p, nil
			}
		}
		if time.Now().After(deadline) {
			p.saveLog()
			return nil, fmt.Errorf("the operator's pod did not answer on %s within 90 s (%s); its log: %s", p.url, p.podStatus(), logPath)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (p *operatorPod) endpoint() string { return p.url }

func (p *operatorPod) setController(ctx context.Context, on bool) error {
	return setController(ctx, p.url, on)
}

// wait keeps the pod's log: the namespace, and the pod with it, go when
// the cluster does.
func (p *operatorPod) wait() error {
	p.saveLog()
	return nil
}

// operatorPods lists the operator's pods.
func (p *operatorPod) pods(ctx context.Context) ([]corev1.Pod, error) {
	list, err := p.kube.CoreV1().Pods(p.ns).List(ctx, metav1.ListOptions{LabelSelector: "app=" + operatorName})
	if err != nil {
		return nil, err
	}
	return list.Items, nil
}

// saveLog copies the operator pod's log into logPath.
func (p *operatorPod) saveLog() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pods, err := p.pods(ctx)
	if err != nil || len(pods) == 0 {
		return
	}
	logs, err := p.kube.CoreV1().Pods(p.ns).GetLogs(pods[0].Name, &corev1.PodLogOptions{}).Stream(ctx)
	if err != nil {
		return
	}
	defer logs.Close()
	f, err := os.Create(p.logPath)
	if err != nil {
		return
	}
	defer f.Close()
	io.Copy(f, logs) //nolint:errcheck // a log kept for reading, best effort
}

// podStatus says where the operator's pod is, for an error.
func (p *operatorPod) podStatus() string {
	pods, err := p.pods(context.Background())
	if err != nil {
		return err.Error()
	}
	if len(pods) == 0 {
		return "no pod"
	}
	s := pods[0].Status
	out := "pod " + pods[0].Name + " " + string(s.Phase)
	for _, cs := range s.ContainerStatuses {
		if w := cs.State.Waiting; w != nil {
			out += ", " + w.Reason + ": " + w.Message
		}
	}
	return out
}
