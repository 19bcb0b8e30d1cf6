package baseline

import (
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/churnlab/churnlab/experiments/controlplane"
	"github.com/churnlab/churnlab/experiments/metrics"
)

func init() {
	// The operator logs through controller-runtime; tests keep it quiet.
	ctrllog.SetLogger(logr.Discard())
}

const (
	stormPods     = 60
	stormRestarts = 30
	configBytes   = 2_000_000 // F5
	configObjects = 20
)

// TestRestartStorm429 is the baseline failing for Veltrix's reasons on real
// parts: a real kube-apiserver's API Priority and Fairness answers the
// operator 429 when a restart storm makes it reload every config object for
// every restarted pod, and stops once the controller is switched off (T3).
func TestRestartStorm429(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a control plane")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// APF scaled down with the cluster (F11): 40 seats in all, a few of
	// them for the operator's priority level, and a short queue.
	cp, admin := startGameCluster(ctx, t, controlplane.Options{
		Nodes:               3,
		MaxRequestsInflight: 20, MaxMutatingRequestsInflight: 20, QueueLengthLimit: 10,
	}, configBytes, configObjects, stormPods)
	initial := waitRunning(t, admin, stormPods, nil)

	op, err := New(cp.Operator, Options{
		Controller: true,
		QPS:        2000, Burst: 4000, // no client-side limit: the server decides
		Uplink: 100e6,
	})
	if err != nil {
		t.Fatal(err)
	}
	opURL := serveOperator(t, ctx, op)

	// Before the storm: the running pods are adopted and reconciled every 5 s.
	time.Sleep(6 * time.Second) // let the reconciles settle into their 5 s rhythm
	before := scrape(t, opURL+"/metrics", nil)
	const window = 15 * time.Second
	time.Sleep(window)
	after := scrape(t, opURL+"/metrics", nil)
	rate := delta(before, after, "veltrix_reconciles_total", nil) / window.Seconds()
	want := float64(stormPods) / 5
	t.Logf("before the storm: %.1f reconciles/s (pods/5s = %.1f); API calls by verb and code: %v", rate, want, byLabels(after, "veltrix_api_requests_total", "verb", "code"))
	if math.Abs(rate-want) > 0.25*want {
		t.Errorf("reconcile rate %.1f/s, want about %d pods / 5 s = %.1f/s", rate, stormPods, want)
	}

	// The storm: delete half the pods at once; the Deployment replaces them.
	apiTransport, err := rest.TransportFor(cp.Admin)
	if err != nil {
		t.Fatal(err)
	}
	apiBefore := scrape(t, cp.Admin.Host+"/metrics", apiTransport)
	bytesBefore := scrape(t, opURL+"/metrics", nil).Sum("veltrix_bundle_bytes_served_total", nil)
	pods, err := admin.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=game"})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for _, p := range pods.Items[:stormRestarts] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			grace := int64(0)
			if err := admin.CoreV1().Pods("default").Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: &grace}); err != nil {
				t.Errorf("deleting %s: %v", p.Name, err)
			}
		}()
	}
	wg.Wait()

	// Throttling shows up in the API server's own metrics, for the
	// operator's flow (admin traffic is exempt and never rejected).
	var rejected, code429 float64
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) && rejected == 0 {
		time.Sleep(500 * time.Millisecond)
		apiNow := scrape(t, cp.Admin.Host+"/metrics", apiTransport)
		rejected = delta(apiBefore, apiNow, "apiserver_flowcontrol_rejected_requests_total", map[string]string{"priority_level": controlplane.OperatorPriorityLevel})
		code429 = delta(apiBefore, apiNow, "apiserver_request_total", map[string]string{"code": "429"})
	}
	t.Logf("storm: %.0f requests rejected by APF at global-default, %.0f answered 429", rejected, code429)
	if rejected == 0 || code429 == 0 {
		t.Fatalf("no 429 for the operator's flow within 60 s of the storm")
	}

	// T3: switch the controller off mid-storm; the 429s stop.
	post(t, opURL+"/admin/controller?enabled=false")
	time.Sleep(5 * time.Second) // requests already queued finish or fail
	offBefore := scrape(t, cp.Admin.Host+"/metrics", apiTransport)
	time.Sleep(10 * time.Second)
	offAfter := scrape(t, cp.Admin.Host+"/metrics", apiTransport)
	if n := delta(offBefore, offAfter, "apiserver_request_total", map[string]string{"code": "429"}); n != 0 {
		t.Errorf("%.0f 429s in the 10 s after the controller was switched off; want 0", n)
	}
	if n := delta(offBefore, offAfter, "apiserver_flowcontrol_rejected_requests_total", map[string]string{"priority_level": controlplane.OperatorPriorityLevel}); n != 0 {
		t.Errorf("%.0f APF rejections with the controller off; want 0", n)
	}

	// Back on, every replacement pod gets its bundle and pulls it once.
	post(t, opURL+"/admin/controller?enabled=true")
	replacements := waitRunning(t, admin, stormPods, initial)
	if len(replacements) != stormRestarts {
		t.Fatalf("%d replacement pods, want %d", len(replacements), stormRestarts)
	}
	waitAnnotated(t, admin, replacements, 3*time.Minute)
	size := pullBundles(t, opURL, replacements)
	served := scrape(t, opURL+"/metrics", nil).Sum("veltrix_bundle_bytes_served_total", nil) - bytesBefore
	t.Logf("bundle endpoint served %.0f bytes to %d restarted pods (bundle %d bytes)", served, len(replacements), size)
	if want := float64(stormRestarts * size); math.Abs(served-want) > 0.01*want {
		t.Errorf("bundle bytes served %.0f, want %d restarted pods x %d bytes = %.0f", served, stormRestarts, size, want)
	}
	if size < configBytes {
		t.Errorf("bundle is %d bytes, smaller than the %d bytes of config", size, configBytes)
	}
}

// startGameCluster starts a control plane with opts (building what is
// missing), installs the operator's CRD and RBAC, writes configBytes of
// config in configObjects objects and a game Deployment of pods replicas.
// The control plane stops when the test ends.
func startGameCluster(ctx context.Context, t *testing.T, opts controlplane.Options, configBytes, configObjects int, pods int32) (*controlplane.ControlPlane, kubernetes.Interface) {
	t.Helper()
	var err error
	if opts.BinDir, err = controlplane.EnsureBuilt(ctx, os.Stderr); err != nil {
		t.Fatal(err)
	}
	cp, err := controlplane.Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cp.Stop)
	admin := kubernetes.NewForConfigOrDie(cp.Admin)
	if err := Install(ctx, cp.Admin, controlplane.OperatorUser); err != nil {
		t.Fatal(err)
	}
	if err := WriteConfig(ctx, cp.Admin, "default", configBytes, configObjects); err != nil {
		t.Fatal(err)
	}
	if err := createGameDeployment(ctx, admin, pods); err != nil {
		t.Fatal(err)
	}
	return cp, admin
}

func createGameDeployment(ctx context.Context, admin kubernetes.Interface, replicas int32) error {
	d := controlplane.FakeNodeDeployment("default", "game", map[string]string{"app": "game"}, replicas)
	_, err := admin.AppsV1().Deployments("default").Create(ctx, d, metav1.CreateOptions{})
	return err
}

// waitRunning waits until n game pods are Running and returns those whose
// UID is not in exclude.
func waitRunning(t *testing.T, admin kubernetes.Interface, n int, exclude map[types.UID]string) map[types.UID]string {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		pods, err := admin.CoreV1().Pods("default").List(context.Background(), metav1.ListOptions{LabelSelector: "app=game"})
		if err != nil {
			t.Fatal(err)
		}
		running := map[types.UID]string{}
		total := 0
		for _, p := range pods.Items {
			if p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil {
				total++
				if _, old := exclude[p.UID]; !old {
					running[p.UID] = p.Name
				}
			}
		}
		if total == n {
			return running
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d game pods Running after 2 min", total, n)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// waitAnnotated waits until the operator has prepared a bundle for every
// pod in pods.
func waitAnnotated(t *testing.T, admin kubernetes.Interface, pods map[types.UID]string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		list, err := admin.CoreV1().Pods("default").List(context.Background(), metav1.ListOptions{LabelSelector: "app=game"})
		if err != nil {
			t.Fatal(err)
		}
		ready := 0
		for _, p := range list.Items {
			if _, ok := pods[p.UID]; ok && p.Annotations[BundleAnnotation] != "" {
				ready++
			}
		}
		if ready == len(pods) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("bundles prepared for %d of %d pods after %s", ready, len(pods), timeout)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// pullBundles fetches each pod's bundle once, as the pods would, and
// returns the bundle's size.
func pullBundles(t *testing.T, opURL string, pods map[types.UID]string) int {
	t.Helper()
	sizes := map[int]bool{}
	for _, name := range pods {
		resp, err := http.Get(fmt.Sprintf("%s/bundle?namespace=default&pod=%s", opURL, name))
		if err != nil {
			t.Fatal(err)
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("bundle of %s: %s, %v", name, resp.Status, err)
		}
		sizes[int(n)] = true
	}
	if len(sizes) != 1 {
		t.Fatalf("bundles of different sizes: %v", sizes)
	}
	for s := range sizes {
		return s
	}
	return 0
}

func serveOperator(t *testing.T, ctx context.Context, op *Operator) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: op.Handler()}
	go srv.Serve(l) //nolint:errcheck // ends with Close below
	opCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- op.Run(opCtx) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("operator: %v", err)
		}
		srv.Close()
	})
	return "http://" + l.Addr().String()
}

func post(t *testing.T, url string) {
	t.Helper()
	resp, err := http.Post(url, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST %s: %s", url, resp.Status)
	}
}

// scrape reads a Prometheus text endpoint.
func scrape(t *testing.T, url string, transport http.RoundTripper) metrics.Families {
	t.Helper()
	families, err := metrics.Scrape(context.Background(), &http.Client{Transport: transport, Timeout: 30 * time.Second}, url)
	if err != nil {
		t.Fatal(err)
	}
	return families
}

func delta(before, after metrics.Families, name string, match map[string]string) float64 {
	return after.Sum(name, match) - before.Sum(name, match)
}

// byLabels renders a counter family's samples as "label1/label2=value".
func byLabels(families metrics.Families, name string, labels ...string) string {
	var out []string
	for _, m := range families[name].GetMetric() {
		var key []string
		for _, want := range labels {
			for _, l := range m.GetLabel() {
				if l.GetName() == want {
					key = append(key, l.GetValue())
				}
			}
		}
		out = append(out, fmt.Sprintf("%s=%.0f", strings.Join(key, "/"), m.GetCounter().GetValue()))
	}
	return strings.Join(out, " ")
}
