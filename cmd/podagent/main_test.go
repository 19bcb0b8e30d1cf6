package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestBadInputExits2: every bad flag or missing setting is refused with
// exit 2 and a message naming it, before the pod touches the network.
func TestBadInputExits2(t *testing.T) {
	pod := map[string]string{"POD_NAME": "game-1", "POD_NAMESPACE": "ns"}
	for _, c := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"--system", "reference", "--agent", "http://x", "--hunts", "3"}, map[string]string{}, "POD_NAME and POD_NAMESPACE"}, // no downward API
		{[]string{"--system", "blue"}, pod, `--system "blue": want baseline or reference`},
		{[]string{"--system", "baseline"}, pod, "--system baseline needs --bundle-url"},
		{[]string{"--system", "reference", "--agent", "http://x"}, pod, "--hunts of at least 1"},
		{[]string{"--system", "baseline", "--bundle-url", "http://x", "--capacity", "0"}, pod, "--capacity must be above 0"},
		{[]string{"--system", "baseline", "--bundle-url", "http://x", "extra"}, pod, "unexpected arguments"},
		{[]string{"--max-queue", "soon"}, pod, "invalid value"},
	} {
		var stderr bytes.Buffer
		code := run(context.Background(), c.args, func(k string) string { return c.env[k] }, &stderr)
		if code != 2 || !strings.Contains(stderr.String(), c.want) {
			t.Errorf("podagent %v: exit %d, stderr %q; want exit 2 and %q", c.args, code, stderr.String(), c.want)
		}
	}
}
