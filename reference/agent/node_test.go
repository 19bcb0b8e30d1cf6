package agent

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/churnlab/churnlab/reference/cache"
)

// TestNodeServerServesHoldsAndStreamsUpdates: a node's pods get their
// hunt's fragment over HTTP, the second pod of a hunt from the node's L2
// (held: nothing over the uplink), and a runner following /updates sees
// every version that lands.
func TestNodeServerServesHoldsAndStreamsUpdates(t *testing.T) {
	st := boltStore(t)
	v1 := putHunt(t, st, "h-1", "fragment one")
	rep := startReplica(t, st)
	l2, err := cache.OpenL2(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	srv := &NodeServer{}
	a, err := New(Options{Endpoints: []string{rep.addr}, Node: "node-1", L2: l2, Debounce: time.Minute, OnUpdate: srv.Updated})
	if err != nil {
		t.Fatal(err)
	}
	srv.Agent = a
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.Run(ctx); close(done) }() //nolint:errcheck // nil when ctx ends
	t.Cleanup(func() { cancel(); <-done })
	web := httptest.NewServer(srv)
	t.Cleanup(web.Close)

	updates := make(chan string, 16)
	resp, err := http.Get(web.URL + "/updates")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	go func() {
		lines := bufio.NewScanner(resp.Body)
		for lines.Scan() {
			updates <- lines.Text()
		}
	}()

	fetch := func(pod string) (*http.Response, string) {
		t.Helper()
		resp, err := http.Get(web.URL + "/fragment?pod=" + pod + "&hunt=h-1")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %s", pod, resp.Status)
		}
		n, _ := strconv.Atoi(resp.Header.Get(HeaderLength))
		body := make([]byte, n)
		if _, err := io.ReadFull(resp.Body, body); err != nil {
			t.Fatal(err)
		}
		return resp, string(body)
	}
	first, fragment := fetch("game-1")
	if fragment != "fragment one" || first.Header.Get(HeaderVersion) != itoa(v1) || first.Header.Get(HeaderHeld) != "false" {
		t.Errorf("first pod: %q, version %s, held %s; want the fragment at %d, not held", fragment, first.Header.Get(HeaderVersion), first.Header.Get(HeaderHeld), v1)
	}
	second, _ := fetch("game-2")
	if second.Header.Get(HeaderHeld) != "true" {
		t.Errorf("second pod of the hunt: held %s, want true (the node's L2 had it)", second.Header.Get(HeaderHeld))
	}
	hunt, version, _, err := ParseUpdate(<-updates)
	if err != nil || hunt != "h-1" || version != v1 {
		t.Fatalf("first update: %s %d (%v), want h-1 %d", hunt, version, err, v1)
	}
	v2 := putHunt(t, st, "h-1", "fragment two")
	hunt, version, at, err := ParseUpdate(<-updates)
	if err != nil || hunt != "h-1" || version != v2 || time.Since(at) > time.Minute || time.Since(at) < 0 {
		t.Errorf("after a write: %s %d at %s (%v), want h-1 %d, just now", hunt, version, at, err, v2)
	}
}

func TestNodeServerSadPaths(t *testing.T) {
	web := httptest.NewServer(&NodeServer{})
	defer web.Close()
	for path, want := range map[string]int{
		"/fragment?hunt=h-1": http.StatusBadRequest, // no pod
		"/fragment?pod=p":    http.StatusBadRequest, // no hunt
		"/nothing":           http.StatusNotFound,
	} {
		resp, err := http.Get(web.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: %d, want %d", path, resp.StatusCode, want)
		}
	}
	for _, bad := range []string{"", "h-1", "h-1 x 3", "h-1 1", "h-1 -1 5"} {
		if _, _, _, err := ParseUpdate(bad); err == nil {
			t.Errorf("ParseUpdate(%q): no error", bad)
		}
	}
}

// FuzzParseUpdate: no line makes it panic, and every line Updated writes
// reads back.
func FuzzParseUpdate(f *testing.F) {
	f.Add("h-1", uint64(7), int64(1_700_000_000_000_000_000))
	f.Add("", uint64(0), int64(-1))
	f.Fuzz(func(t *testing.T, hunt string, version uint64, nanos int64) {
		line := hunt + " " + strconv.FormatUint(version, 10) + " " + strconv.FormatInt(nanos, 10)
		h, v, at, err := ParseUpdate(line)
		valid := slices.Equal(strings.Fields(hunt), []string{hunt})
		if valid && (err != nil || h != hunt || v != version || at.UnixNano() != nanos) {
			t.Fatalf("ParseUpdate(%q) = %q %d %d, %v", line, h, v, at.UnixNano(), err)
		}
		ParseUpdate(hunt) //nolint:errcheck // must not panic
	})
}
