package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestBadInputExits2: every bad flag is refused with exit 2 and a
// message naming it.
func TestBadInputExits2(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--l2", dir, "--node", "n"}, "--endpoints is required"},
		{[]string{"--endpoints", "a:1", "--node", "n"}, "--l2 is required"},
		{[]string{"--endpoints", "a:1", "--l2", dir, "--node", ""}, "--node is required"},
		{[]string{"--endpoints", "nohost", "--l2", dir, "--node", "n"}, `--endpoints: "nohost"`},
		{[]string{"--endpoints", "a:1", "--l2", dir, "--node", "n", "--debounce", "0s"}, "--debounce and --keepalive must be above 0"},
		{[]string{"--endpoints", "a:1", "--l2", dir, "--node", "n", "--listen", "256.0.0.1:1"}, "--listen"},
		{[]string{"--endpoints", "a:1", "--l2", dir, "--node", "n", "more"}, "unexpected arguments"},
	} {
		var stderr bytes.Buffer
		if code := run(context.Background(), c.args, &stderr, nil); code != 2 || !strings.Contains(stderr.String(), c.want) {
			t.Errorf("nodeagent %v: exit %d, stderr %q; want exit 2 and %q", c.args, code, stderr.String(), c.want)
		}
	}
}

// TestServesAndStopsOnSignal: the agent serves its node's pods and stops
// cleanly, exit 0, when its context ends (SIGTERM).
func TestServesAndStopsOnSignal(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	exit := make(chan int, 1)
	var stderr bytes.Buffer
	go func() {
		exit <- run(ctx, []string{"--endpoints", "127.0.0.1:1", "--l2", t.TempDir(), "--node", "node-1", "--listen", "127.0.0.1:0"}, &stderr, ready)
	}()
	addr := <-ready
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(body)) != "ok" {
		t.Errorf("/healthz: %d %q", resp.StatusCode, body)
	}
	cancel()
	select {
	case code := <-exit:
		if code != 0 {
			t.Errorf("exit %d after its context ended, want 0; stderr: %s", code, stderr.String())
		}
	case <-time.After(time.Minute):
		t.Fatal("the agent did not stop within a minute of its context ending")
	}
}
