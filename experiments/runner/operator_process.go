package runner

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"time"

	"github.com/churnlab/churnlab/experiments/scenario"
)

// operatorProcess is the baseline operator (cmd/veltrix) run as its own
// program, as it would run in a cluster: on the same machine as the pods
// here, but in its own process, so that its decoding of every LIST does
// not take the pods' goroutines' turns in this one.
type operatorProcess struct {
	cmd  *exec.Cmd
	url  string // its bundle endpoint, /metrics and /admin/controller
	done chan struct{}
	err  error // how it exited, once done is closed
}

// buildOperator builds cmd/veltrix into binDir from the churnlab checkout
// binDir sits in (binDir/..), and returns the program's path. Go's build
// cache makes it a link, seconds, when nothing changed.
func buildOperator(ctx context.Context, binDir string) (string, error) {
	root := filepath.Dir(binDir)
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		return "", fmt.Errorf("building the operator: %s is not in a churnlab checkout: %w", binDir, err)
	}
	out := filepath.Join(binDir, "veltrix")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./cmd/veltrix")
	cmd.Dir = root
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building the operator (go build ./cmd/veltrix in %s): %w\n%s", root, err, msg)
	}
	return out, nil
}

// startOperator runs the operator program with the scenario's settings
// under the operator's identity, its output in logPath, and waits until
// it answers. Cancelling ctx stops it (SIGTERM, then SIGKILL after 10 s);
// the kernel kills it if this process dies first.
func startOperator(ctx context.Context, program, kubeconfig, namespace, logPath string, sc *scenario.Scenario) (*operatorProcess, error) {
	log, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	args := append([]string{
		"--kubeconfig=" + kubeconfig,
		"--listen=127.0.0.1:0", // it says where in its log
	}, operatorArgs(sc, namespace)...)
	cmd := exec.CommandContext(ctx, program, args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, fmt.Errorf("starting the operator: %w", err)
	}
	p := &operatorProcess{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		log.Close()
		close(p.done)
	}()
	client := &http.Client{Timeout: time.Second}
	for deadline := time.Now().Add(30 * time.Second); ; {
		if p.url == "" {
			data, _ := os.ReadFile(logPath)
			if m := servingLine.FindSubmatch(data); m != nil {
				p.url = string(m[1])
			}
		}
		if p.url != "" {
			if resp, err := client.Get(p.url + "/healthz"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return p, nil
				}
			}
		}
		select {
		case <-p.done:
			return nil, fmt.Errorf("the operator exited before it served (%v); its log: %s", p.err, logPath)
		case <-ctx.Done():
			<-p.done
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-p.done
			return nil, fmt.Errorf("the operator did not answer within 30 s; its log: %s", logPath)
		}
	}
}

// operatorArgs are cmd/veltrix's flags for the scenario's baseline, but
// where it listens and who it is. A scenario whose operator runs a loop
// per pod (baseline.workers 0, the 2023 operator) gets a worker for every
// pod it can have at once, old and new: each pod's reconcile then waits
// for no other's, as in the simulator.
func operatorArgs(sc *scenario.Scenario, namespace string) []string {
	b := sc.Baseline
	workers := b.Workers
	if workers == 0 {
		workers = 2 * sc.PeakPods()
	}
	return []string{
		"--workers=" + strconv.Itoa(workers),
		"--namespace=" + namespace,
		"--pod-selector=" + gameSelector,
		"--replicas=" + strconv.Itoa(b.Replicas),
		"--controller=" + strconv.FormatBool(b.Controller),
		"--reconcile-interval=" + b.ReconcileInterval.D().String(),
		"--qps=" + strconv.FormatFloat(b.ClientQPS.PerSecond(), 'f', -1, 64),
		"--burst=" + strconv.Itoa(b.ClientBurst),
		"--api-calls-per-reconcile=" + strconv.Itoa(b.APICallsPerReconcile),
		"--writes-per-reconcile=" + strconv.Itoa(sc.Model.Operator.WritesPerReconcile),
		"--reload-parallelism=" + strconv.Itoa(b.ReloadParallelism),
		"--gzip=" + strconv.FormatBool(b.Gzip),
	}
}

// operator is the running baseline operator, wherever it runs.
type operator interface {
	// endpoint is its bundle endpoint, /metrics and /admin/controller.
	endpoint() string
	setController(ctx context.Context, on bool) error
	// wait waits for it to stop after the run's context ended.
	wait() error
}

func (p *operatorProcess) endpoint() string { return p.url }

// servingLine is where cmd/veltrix says it listens.
var servingLine = regexp.MustCompile(`veltrix: serving on (http://[0-9.]+:[0-9]+)`)

// setController switches the operator's periodic reconcile (T3).
func (p *operatorProcess) setController(ctx context.Context, on bool) error {
	return setController(ctx, p.url, on)
}

func setController(ctx context.Context, url string, on bool) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+"/admin/controller?enabled="+strconv.FormatBool(on), nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("the operator answered %s to switching its controller", resp.Status)
	}
	return nil
}

// wait waits for the operator to exit after its context ended, and says
// how it ended if not by that stop.
func (p *operatorProcess) wait() error {
	<-p.done
	var exit *exec.ExitError
	if p.err == nil || errors.As(p.err, &exit) && exit.ExitCode() == 0 {
		return nil
	}
	if errors.Is(p.err, context.Canceled) || errors.Is(p.err, context.DeadlineExceeded) {
		return nil // exec's word for an exit its Cancel (our SIGTERM) caused
	}
	if errors.As(p.err, &exit) && (exit.ExitCode() == -1 || exit.ExitCode() == 143) {
		return nil // the SIGTERM of the stop
	}
	return p.err
}
