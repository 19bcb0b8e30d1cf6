package controlplane

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/churnlab/churnlab/internal/proctest"
)

// startForTest builds what is missing, starts a control plane and stops it
// when the test ends, pass or fail.
func startForTest(t *testing.T, opts Options) *ControlPlane {
	t.Helper()
	ctx := context.Background()
	var err error
	if opts.BinDir, err = EnsureBuilt(ctx, os.Stderr); err != nil {
		t.Fatal(err)
	}
	cp, err := Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cp.Stop)
	return cp
}

func TestStartServesBothIdentities(t *testing.T) {
	cp := startForTest(t, Options{Nodes: 2, QueueLengthLimit: 7})
	ctx := context.Background()

	admin := kubernetes.NewForConfigOrDie(cp.Admin)
	nodes, err := admin.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes.Items) != 2 {
		t.Errorf("%d nodes, want the 2 fake ones", len(nodes.Items))
	}

	// The operator identity is authenticated but has no rights until RBAC
	// grants them, and APF does not exempt it.
	op := kubernetes.NewForConfigOrDie(cp.Operator)
	_, err = op.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
	if !apierrors.IsForbidden(err) {
		t.Errorf("operator listing pods: %v; want Forbidden", err)
	} else if !strings.Contains(err.Error(), OperatorUser) {
		t.Errorf("Forbidden error does not name %s: %v", OperatorUser, err)
	}
	if level := priorityLevelOf(t, cp, cp.Operator.BearerToken); level != OperatorPriorityLevel {
		t.Errorf("operator requests run at priority level %q; want %s, which throttles", level, OperatorPriorityLevel)
	}
	if adminLevel := priorityLevelOf(t, cp, cp.Admin.BearerToken); adminLevel != "exempt" {
		t.Errorf("admin requests run at priority level %q; want exempt", adminLevel)
	}
	pl, err := admin.FlowcontrolV1().PriorityLevelConfigurations().Get(ctx, OperatorPriorityLevel, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if q := pl.Spec.Limited.LimitResponse.Queuing; q.Queues != 1 || q.QueueLengthLimit != 7 {
		t.Errorf("%s queuing = %+v; want 1 queue of 7", OperatorPriorityLevel, *q)
	}
}

func priorityLevelOf(t *testing.T, cp *ControlPlane, token string) string {
	t.Helper()
	cfg := rest.CopyConfig(cp.Admin)
	cfg.BearerToken = token
	level, err := PriorityLevelOf(context.Background(), cp.Admin, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return level
}

// TestStopLeavesNothing checks that Stop ends every process and removes
// the directory.
func TestStopLeavesNothing(t *testing.T) {
	cp := startForTest(t, Options{Nodes: 1})
	pids, dir := cp.Pids(), cp.Dir
	cp.Stop()
	checkGone(t, pids, dir)
}

func checkGone(t *testing.T, pids []int, dir string) {
	t.Helper()
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); err == nil {
			t.Errorf("process %d still running", pid)
		}
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s still exists (%v)", dir, err)
	}
}

// TestInterruptStopsEverything runs a control plane in a child process the
// way a command would (signal.NotifyContext), sends it SIGINT, and checks
// nothing is left.
func TestInterruptStopsEverything(t *testing.T) {
	if _, err := EnsureBuilt(context.Background(), os.Stderr); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestInterruptHelper$")
	cmd.Env = append(os.Environ(), "CHURNLAB_INTERRUPT_HELPER=1")
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	var pids []int
	var dir string
	lines := bufio.NewScanner(stdout)
	for lines.Scan() {
		if d, ok := strings.CutPrefix(lines.Text(), "started "); ok {
			fields := strings.Fields(d)
			dir = fields[0]
			for _, f := range fields[1:] {
				pid, _ := strconv.Atoi(f)
				pids = append(pids, pid)
			}
			break
		}
	}
	if dir == "" {
		t.Fatal("helper did not start a control plane")
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("helper exited with %v after SIGINT; want a clean exit", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("helper still running 60 s after SIGINT")
	}
	checkGone(t, pids, dir)
}

// TestInterruptHelper is the child of TestInterruptStopsEverything.
func TestInterruptHelper(t *testing.T) {
	if os.Getenv("CHURNLAB_INTERRUPT_HELPER") != "1" {
		t.Skip("run by TestInterruptStopsEverything")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	cp, err := Start(ctx, Options{Nodes: 1})
	if err != nil {
		t.Fatal(err)
	}
	var pids []string
	for _, p := range cp.Pids() {
		pids = append(pids, strconv.Itoa(p))
	}
	fmt.Printf("started %s %s\n", cp.Dir, strings.Join(pids, " "))
	<-ctx.Done()
	cp.Stop() // returns once the stop that ctx triggered has finished
}

// TestFailedStartCleansUp makes kube-apiserver fail at once and checks that
// Start names the step and the component's own words, and leaves neither
// the etcd it had started nor its directory behind.
func TestFailedStartCleansUp(t *testing.T) {
	realBin, err := EnsureBuilt(context.Background(), os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	fakeBin := t.TempDir()
	for _, b := range Binaries {
		if err := os.Symlink(filepath.Join(realBin, b), filepath.Join(fakeBin, b)); err != nil {
			t.Fatal(err)
		}
	}
	apiserver := filepath.Join(fakeBin, "kube-apiserver")
	os.Remove(apiserver)
	if err := os.WriteFile(apiserver, []byte("#!/bin/sh\necho 'boom: no etcd for you' >&2\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	dirsBefore, _ := filepath.Glob(filepath.Join(os.TempDir(), "churnlab-controlplane-*"))

	_, err = Start(context.Background(), Options{BinDir: fakeBin, Nodes: 1})
	if err == nil {
		t.Fatal("Start succeeded with a kube-apiserver that exits at once")
	}
	for _, want := range []string{`step "kube-apiserver"`, "exited before it was ready", "boom: no etcd for you"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	dirsAfter, _ := filepath.Glob(filepath.Join(os.TempDir(), "churnlab-controlplane-*"))
	if len(dirsAfter) > len(dirsBefore) {
		t.Errorf("temporary directories left behind: %v (before: %v)", dirsAfter, dirsBefore)
	}
	if pids := processesRunning(t, filepath.Join(fakeBin, "etcd")); len(pids) > 0 {
		t.Errorf("etcd still running after the failed start: pids %v", pids)
	}
}

// processesRunning returns the pids whose command line starts with binary.
func processesRunning(t *testing.T, binary string) []int {
	t.Helper()
	return proctest.Find(t, func(p proctest.Process) bool { return len(p.Cmdline) > 0 && p.Cmdline[0] == binary })
}

// BenchmarkStartStop measures bringing a one-node control plane up until
// every component is ready, and down again.
func BenchmarkStartStop(b *testing.B) {
	bin, err := EnsureBuilt(context.Background(), io.Discard)
	if err != nil {
		b.Fatal(err)
	}
	for range b.N {
		cp, err := Start(context.Background(), Options{BinDir: bin, Nodes: 1})
		if err != nil {
			b.Fatal(err)
		}
		cp.Stop()
	}
}

// TestReadinessGatesHoldReady: kwok's fake nodes keep a pod unready until
// each of its readiness gates is True, as a kubelet does, so a Deployment
// counts it available only then; a pod without gates is Ready at once.
func TestReadinessGatesHoldReady(t *testing.T) {
	cp := startForTest(t, Options{Nodes: 1})
	ctx := context.Background()
	admin := kubernetes.NewForConfigOrDie(cp.Admin)
	const gate = "example.churnlab.io/ready"
	gated := FakeNodeDeployment("default", "gated", map[string]string{"app": "gated"}, 2)
	gated.Spec.Template.Spec.ReadinessGates = []corev1.PodReadinessGate{{ConditionType: gate}}
	plain := FakeNodeDeployment("default", "plain", map[string]string{"app": "plain"}, 1)
	for _, d := range []*appsv1.Deployment{gated, plain} {
		if _, err := admin.AppsV1().Deployments("default").Create(ctx, d, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	ready := func(p corev1.Pod) bool {
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady {
				return c.Status == corev1.ConditionTrue
			}
		}
		return false
	}
	// pods waits until the app's pods are Running and returns them.
	pods := func(app string, want int) []corev1.Pod {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			list, err := admin.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=" + app})
			if err != nil {
				t.Fatal(err)
			}
			running := 0
			for _, p := range list.Items {
				if p.Status.Phase == corev1.PodRunning {
					running++
				}
			}
			if running == want {
				return list.Items
			}
		}
		t.Fatalf("%s: %d pods not Running within 30 s", app, want)
		return nil
	}
	if p := pods("plain", 1)[0]; !ready(p) {
		t.Errorf("pod %s without readiness gates is not Ready: %+v", p.Name, p.Status.Conditions)
	}
	gatedPods := pods("gated", 2)
	time.Sleep(time.Second) // time for kwok to (wrongly) mark them Ready
	for _, p := range gatedPods {
		if ready(p) {
			t.Fatalf("pod %s is Ready with its gate %s unset: %+v", p.Name, gate, p.Status.Conditions)
		}
	}
	patch := fmt.Sprintf(`{"status":{"conditions":[{"type":%q,"status":"True"}]}}`, gate)
	if _, err := admin.CoreV1().Pods("default").Patch(ctx, gatedPods[0].Name, types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{}, "status"); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		d, err := admin.AppsV1().Deployments("default").Get(ctx, "gated", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if d.Status.AvailableReplicas == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("gated Deployment has %d available pods 30 s after one pod's gate went True; want 1", d.Status.AvailableReplicas)
		}
	}
	other, err := admin.CoreV1().Pods("default").Get(ctx, gatedPods[1].Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ready(*other) {
		t.Errorf("pod %s became Ready though only %s's gate was set", other.Name, gatedPods[0].Name)
	}
}
