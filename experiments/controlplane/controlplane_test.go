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

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
