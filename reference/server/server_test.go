package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	pb "github.com/churnlab/churnlab/reference/proto"
	"github.com/churnlab/churnlab/reference/store"
)

const (
	adminToken = "admin-secret"
	podToken   = "pod-secret" // may watch within hunt in (h-1,h-2)
)

var testTokens = "# test tokens\n" + adminToken + ",admin\n" + podToken + ",pod,hunt in (h-1,h-2)\n"

// startServer runs a replica on a loopback port until the test ends.
func startServer(t *testing.T, st store.Store, opts Options) (*Server, *grpc.ClientConn) {
	t.Helper()
	opts.Store = st
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx, l) }()
	conn, err := grpc.NewClient(l.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		cancel()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	waitServing(t, conn)
	return s, conn
}

func waitServing(t testing.TB, conn *grpc.ClientConn) {
	t.Helper()
	h := healthpb.NewHealthClient(conn)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := h.Check(context.Background(), &healthpb.HealthCheckRequest{})
		if err == nil && resp.Status == healthpb.HealthCheckResponse_SERVING {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("server not SERVING within 10 s")
}

func boltStore(t testing.TB) store.Store {
	t.Helper()
	st, err := store.OpenBolt(filepath.Join(t.TempDir(), "configd.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func withToken(ctx context.Context, token string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
}

func put(t *testing.T, conn *grpc.ClientConn, hunt string, labels map[string]string, fragment string) uint64 {
	t.Helper()
	resp, err := pb.NewConfigAdminClient(conn).Put(withToken(context.Background(), adminToken),
		&pb.PutRequest{Hunt: hunt, Labels: labels, Fragment: []byte(fragment)})
	if err != nil {
		t.Fatal(err)
	}
	return resp.Version
}

// recvUntilSynced collects a stream's catch-up.
func recvUntilSynced(t *testing.T, stream pb.ConfigStream_WatchClient) []*pb.ConfigUpdate {
	t.Helper()
	var got []*pb.ConfigUpdate
	for {
		u, err := stream.Recv()
		if err != nil {
			t.Fatalf("Recv: %v", err)
		}
		if u.Synced {
			return got
		}
		got = append(got, u)
	}
}

func TestWatchSendsOnlyWhatChanged(t *testing.T) {
	tokens, err := ParseTokens(strings.NewReader(testTokens), "tokens")
	if err != nil {
		t.Fatal(err)
	}
	_, conn := startServer(t, boltStore(t), Options{Tokens: tokens})
	v1 := put(t, conn, "h-1", nil, "one")
	put(t, conn, "h-2", nil, "two")
	put(t, conn, "h-3", nil, "three") // outside the selector below

	ctx, cancel := context.WithCancel(withToken(context.Background(), podToken))
	defer cancel()
	client := pb.NewConfigStreamClient(conn)
	stream, err := client.Watch(ctx, &pb.WatchRequest{Selector: "hunt in (h-1,h-2)"})
	if err != nil {
		t.Fatal(err)
	}
	first := recvUntilSynced(t, stream)
	if len(first) != 2 || first[0].Hunt != "h-1" || string(first[0].GetFragment()) != "one" || first[1].Hunt != "h-2" {
		t.Fatalf("catch-up = %v, want h-1 and h-2", first)
	}
	// A change is pushed; the version goes up.
	v2 := put(t, conn, "h-1", nil, "one, revised")
	u, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if u.Hunt != "h-1" || u.Version != v2 || v2 <= v1 || string(u.GetFragment()) != "one, revised" {
		t.Errorf("pushed %v, want h-1 at %d > %d", u, v2, v1)
	}
	cancel()

	// Reconnect knowing every version: the catch-up carries no fragment.
	known := map[string]uint64{"h-1": v2, "h-2": first[1].Version}
	again, err := client.Watch(withToken(context.Background(), podToken), &pb.WatchRequest{Selector: "hunt in (h-1,h-2)", KnownVersions: known})
	if err != nil {
		t.Fatal(err)
	}
	if got := recvUntilSynced(t, again); len(got) != 0 {
		t.Errorf("reconnect with current versions received %v; want nothing", got)
	}
	// Knowing an old version of h-2: only h-2 comes.
	known["h-2"] = 0
	third, _ := client.Watch(withToken(context.Background(), podToken), &pb.WatchRequest{Selector: "hunt in (h-1,h-2)", KnownVersions: known})
	if got := recvUntilSynced(t, third); len(got) != 1 || got[0].Hunt != "h-2" {
		t.Errorf("reconnect missing h-2 received %v; want h-2 only", got)
	}
}

// TestInjectPushDelay: the test-only injected regression makes each push
// wait at least its delay (a lower bound only: sleeping guarantees it),
// so the live gate has a slower server to catch.
func TestInjectPushDelay(t *testing.T) {
	const delay = 50 * time.Millisecond
	_, conn := startServer(t, boltStore(t), Options{InjectPushDelay: delay})
	put(t, conn, "h-1", nil, "one")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := pb.NewConfigStreamClient(conn).Watch(ctx, &pb.WatchRequest{Selector: "hunt=h-1"})
	if err != nil {
		t.Fatal(err)
	}
	recvUntilSynced(t, stream)
	written := time.Now() // before the write: the push may start before Put returns
	put(t, conn, "h-1", nil, "one, revised")
	if _, err := stream.Recv(); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(written); took < delay {
		t.Errorf("the push came %s after the write; the injected delay is %s", took, delay)
	}
}

func TestHuntLeavingTheSelectorIsDeleted(t *testing.T) {
	_, conn := startServer(t, boltStore(t), Options{})
	put(t, conn, "h-1", map[string]string{"region": "eu"}, "x")
	stream, err := pb.NewConfigStreamClient(conn).Watch(context.Background(), &pb.WatchRequest{Selector: "region=eu"})
	if err != nil {
		t.Fatal(err)
	}
	if got := recvUntilSynced(t, stream); len(got) != 1 {
		t.Fatalf("catch-up %v", got)
	}
	put(t, conn, "h-1", map[string]string{"region": "us"}, "x")
	u, err := stream.Recv()
	if err != nil || u.Hunt != "h-1" || !u.GetDeleted() {
		t.Errorf("after relabelling: %v, %v; want h-1 deleted", u, err)
	}
	if _, err := pb.NewConfigAdminClient(conn).Delete(context.Background(), &pb.DeleteRequest{Hunt: "nope"}); status.Code(err) != codes.NotFound {
		t.Errorf("Delete of a missing hunt: %v, want NotFound", err)
	}
}

func TestBadRequestsGetStatusCodes(t *testing.T) {
	tokens, _ := ParseTokens(strings.NewReader(testTokens), "tokens")
	_, conn := startServer(t, boltStore(t), Options{Tokens: tokens, MaxFragmentBytes: 10})
	put(t, conn, "h-1", nil, "x")
	stream := pb.NewConfigStreamClient(conn)
	admin := pb.NewConfigAdminClient(conn)
	watch := func(ctx context.Context, sel string) error {
		s, err := stream.Watch(ctx, &pb.WatchRequest{Selector: sel})
		if err != nil {
			return err
		}
		_, err = s.Recv()
		return err
	}
	bg := context.Background()
	cases := []struct {
		name string
		err  error
		code codes.Code
		msg  string
	}{
		{"bad selector", watch(withToken(bg, adminToken), "hunt in (h-1"), codes.InvalidArgument, "selector"},
		{"empty selector", watch(withToken(bg, adminToken), ""), codes.InvalidArgument, "empty selector"},
		{"no token", watch(bg, "hunt=h-1"), codes.Unauthenticated, "missing authorization"},
		{"unknown token", watch(withToken(bg, "guess"), "hunt=h-1"), codes.Unauthenticated, "unknown token"},
		{"outside scope, hunt exists", watch(withToken(bg, podToken), "hunt=h-3"), codes.PermissionDenied, "may not watch"},
		{"outside scope, no such hunt", watch(withToken(bg, podToken), "hunt=h-9"), codes.PermissionDenied, "may not watch"},
		{"pod token writes", func() error {
			_, err := admin.Put(withToken(bg, podToken), &pb.PutRequest{Hunt: "h-1", Fragment: []byte("x")})
			return err
		}(), codes.PermissionDenied, "cannot write"},
		{"oversized fragment", func() error {
			_, err := admin.Put(withToken(bg, adminToken), &pb.PutRequest{Hunt: "h-1", Fragment: []byte("01234567890")})
			return err
		}(), codes.InvalidArgument, "over the 10-byte limit"},
		{"bad hunt id", func() error {
			_, err := admin.Put(withToken(bg, adminToken), &pb.PutRequest{Hunt: "no spaces please"})
			return err
		}(), codes.InvalidArgument, "not a valid label value"},
		{"no hunt id", func() error {
			_, err := admin.Put(withToken(bg, adminToken), &pb.PutRequest{Fragment: []byte("x")})
			return err
		}(), codes.InvalidArgument, "a hunt id is required"},
		{"delete without hunt id", func() error {
			_, err := admin.Delete(withToken(bg, adminToken), &pb.DeleteRequest{})
			return err
		}(), codes.InvalidArgument, "a hunt id is required"},
	}
	for _, c := range cases {
		if status.Code(c.err) != c.code || !strings.Contains(status.Convert(c.err).Message(), c.msg) {
			t.Errorf("%s: %v; want %s with %q", c.name, c.err, c.code, c.msg)
		}
		if msg := status.Convert(c.err).Message(); strings.Contains(msg, "<nil>") || strings.Contains(msg, "[]") {
			t.Errorf("%s: %q prints an empty value instead of saying what is wrong", c.name, msg)
		}
	}
	// Within scope is allowed, narrower or equal.
	for _, sel := range []string{"hunt in (h-1,h-2)", "hunt=h-1", "hunt in (h-2)"} {
		if err := watch(withToken(bg, podToken), sel); err != nil && !errors.Is(err, io.EOF) {
			if status.Code(err) == codes.PermissionDenied {
				t.Errorf("selector %q within the token's scope was refused: %v", sel, err)
			}
		}
	}
}

func TestTokensFileErrorsNameTheLine(t *testing.T) {
	_, err := ParseTokens(strings.NewReader("a,admin\n,admin\nb,pod,hunt in (x\nc,root\n"), "tokens.csv")
	if err == nil {
		t.Fatal("bad tokens file accepted")
	}
	for _, want := range []string{"tokens.csv:2: empty token", "tokens.csv:3: pod token needs a valid selector", "tokens.csv:4: want TOKEN,admin"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

// TestTokensFileLines: each kind of line a tokens file may hold, and what
// a bad one is told; no message prints an empty error (<nil>).
func TestTokensFileLines(t *testing.T) {
	cases := []struct {
		name, line string
		want       string // "" for a good line
	}{
		// happy
		{"admin", "a,admin", ""},
		{"pod with a scope", "p,pod,hunt=h-17", ""},
		{"pod with a scope holding commas", "p,pod,hunt in (h-1,h-2)", ""},
		// sad
		{"pod without a scope", "x,pod", "tokens.csv:1: a pod token needs a scope, a label selector such as hunt=h-17, as its third field"},
		{"pod with an empty scope", "x,pod,", "tokens.csv:1: a pod token needs a scope"},
		{"pod with a blank scope", "x,pod, ", "tokens.csv:1: a pod token needs a scope"},
		{"pod with a bad scope", "x,pod,hunt in (x", `tokens.csv:1: pod token needs a valid selector as its third field, got "hunt in (x"`},
		{"admin with a scope", "x,admin,hunt=h-1", "tokens.csv:1: want TOKEN,admin or TOKEN,pod,SELECTOR"},
		{"no role", "x", "tokens.csv:1: want TOKEN,admin or TOKEN,pod,SELECTOR"},
		{"no token", ",pod,hunt=h-1", "tokens.csv:1: empty token"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseTokens(strings.NewReader(c.line+"\n"), "tokens.csv")
			switch {
			case c.want == "" && err != nil:
				t.Errorf("%q refused: %v", c.line, err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Errorf("%q: %v; want an error saying %q", c.line, err, c.want)
			case err != nil && strings.Contains(err.Error(), "<nil>"):
				t.Errorf("%q: %v prints <nil> instead of what is missing", c.line, err)
			}
		})
	}
}

// TestBearerSchemeIsCaseInsensitive: the authorization scheme's name is
// case-insensitive (RFC 7235 section 2.1), so bearer and BEARER work as
// Bearer does; anything else is refused as malformed.
func TestBearerSchemeIsCaseInsensitive(t *testing.T) {
	tokens, err := ParseTokens(strings.NewReader(testTokens), "tokens")
	if err != nil {
		t.Fatal(err)
	}
	_, conn := startServer(t, boltStore(t), Options{Tokens: tokens})
	admin := pb.NewConfigAdminClient(conn)
	cases := []struct {
		header string
		code   codes.Code
	}{
		// happy
		{"Bearer " + adminToken, codes.OK},
		{"bearer " + adminToken, codes.OK},
		{"BEARER " + adminToken, codes.OK},
		{"bEaReR " + adminToken, codes.OK},
		{"Bearer  " + adminToken, codes.OK}, // more than one space
		// sad
		{"Basic " + adminToken, codes.Unauthenticated},
		{"Bearer" + adminToken, codes.Unauthenticated},
		{"Bearer ", codes.Unauthenticated},
		{adminToken, codes.Unauthenticated},
		{"bearer guess", codes.Unauthenticated},
	}
	for _, c := range cases {
		ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", c.header)
		_, err := admin.Put(ctx, &pb.PutRequest{Hunt: "h-1", Fragment: []byte("x")})
		if status.Code(err) != c.code {
			t.Errorf("authorization: %q: %v; want %s", c.header, err, c.code)
		}
	}
}

// TestSlowConsumerResyncs: a stream that stops reading while more changes
// than the backlog holds go by blocks only itself; when it reads again it
// resyncs and ends at the newest version, having lost nothing. Another
// stream meanwhile gets every change.
func TestSlowConsumerResyncs(t *testing.T) {
	s, conn := startServer(t, boltStore(t), Options{Backlog: 4})
	put(t, conn, "h-1", nil, "x")
	client := pb.NewConfigStreamClient(conn)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	slow, err := client.Watch(ctx, &pb.WatchRequest{Selector: "hunt=h-1"})
	if err != nil {
		t.Fatal(err)
	}
	recvUntilSynced(t, slow)
	fast, err := client.Watch(ctx, &pb.WatchRequest{Selector: "hunt=h-1"})
	if err != nil {
		t.Fatal(err)
	}
	recvUntilSynced(t, fast)

	big := strings.Repeat("x", 256<<10) // enough to fill the slow stream's flow-control window
	var last uint64
	for i := range 50 {
		last = put(t, conn, "h-1", nil, fmt.Sprintf("%d%s", i, big))
		if u, err := fast.Recv(); err != nil || u.Version != last {
			t.Fatalf("fast stream got %v, %v; want version %d", u, err, last)
		}
	}
	var got uint64
	for got < last {
		u, err := slow.Recv()
		if err != nil {
			t.Fatalf("slow stream: %v", err)
		}
		if u.Version < got {
			t.Fatalf("slow stream went back from %d to %d", got, u.Version)
		}
		got = u.Version
	}
	if s.metricsResyncs() == 0 {
		t.Error("the slow stream never resynced: the backlog of 4 should not have held 50 changes")
	}
}
