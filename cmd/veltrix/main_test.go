package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/churnlab/churnlab/baseline"
	"github.com/churnlab/churnlab/experiments/controlplane"
)

func TestBadFlagsExit2(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--uplink", "1Gbs"}, `bad bandwidth "1Gbs"`},
		{[]string{"--replicas", "0", "--kubeconfig", "/nonexistent"}, "--kubeconfig /nonexistent"},
		{[]string{"--bogus"}, "flag provided but not defined: -bogus"},
		{[]string{"extra"}, `unexpected arguments ["extra"]`},
		{[]string{"--qps", "fast"}, `invalid value "fast"`},
	}
	for _, c := range cases {
		var stderr bytes.Buffer
		if code := run(context.Background(), c.args, &stderr); code != 2 || !strings.Contains(stderr.String(), c.want) {
			t.Errorf("veltrix %v: exit %d, stderr %q; want exit 2 and %q", c.args, code, stderr.String(), c.want)
		}
	}
}

// TestServesAgainstControlPlane runs the command against a real control
// plane as the operator identity, checks its endpoints, and stops it the
// way SIGINT does.
func TestServesAgainstControlPlane(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a control plane")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	bin, err := controlplane.EnsureBuilt(ctx, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := controlplane.Start(ctx, controlplane.Options{BinDir: bin, Nodes: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cp.Stop)
	if err := baseline.Install(ctx, cp.Admin, controlplane.OperatorUser); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()

	runCtx, stop := context.WithCancel(ctx)
	var stderr bytes.Buffer
	exit := make(chan int, 1)
	go func() {
		exit <- run(runCtx, []string{"--kubeconfig", cp.OperatorKubeconfig, "--listen", addr, "--uplink", "100Mbps"}, &stderr)
	}()
	defer stop()

	var metrics string
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) && !strings.Contains(metrics, "veltrix_controller_enabled 1") {
		time.Sleep(200 * time.Millisecond)
		if resp, err := http.Get("http://" + addr + "/metrics"); err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			metrics = string(body)
		}
	}
	if !strings.Contains(metrics, "veltrix_controller_enabled 1") {
		t.Fatalf("no operator metrics at %s within 30 s; stderr:\n%s", addr, stderr.String())
	}
	stop()
	select {
	case code := <-exit:
		if code != 0 {
			t.Errorf("exit %d after the context ended; want 0; stderr:\n%s", code, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("veltrix still running 30 s after its context ended")
	}
}
