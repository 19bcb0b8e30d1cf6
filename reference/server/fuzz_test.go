package server

import (
	"context"
	"net"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"k8s.io/apimachinery/pkg/labels"

	pb "github.com/churnlab/churnlab/reference/proto"
)

// FuzzWatchRequest sends arbitrary selectors, known versions and token
// scopes through a real gRPC server (over an in-memory connection). The
// server must answer every one with a status or a stream, never panic,
// and keep serving.
func FuzzWatchRequest(f *testing.F) {
	for _, seed := range []struct{ selector, hunt, scope string }{
		{"hunt=h-1", "h-1", "hunt in (h-1,h-2)"},
		{"hunt in (h-1", "h-1", "hunt=h-1"},
		{"", "", "x!=y"},
		{"!hunt,region notin (eu)", "h-\x00", "hunt"},
		{"a=b,c=d,e in (f)", "h-1", "a=b"},
	} {
		f.Add(seed.selector, seed.hunt, uint64(7), seed.scope)
	}
	st := boltStore(f)
	s, err := New(Options{Store: st})
	if err != nil {
		f.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := bufconn.Listen(1 << 20)
	served := make(chan struct{})
	go func() { s.Serve(ctx, l); close(served) }() //nolint:errcheck // nil when ctx ends
	f.Cleanup(func() { cancel(); <-served })
	conn, err := grpc.NewClient("passthrough:///bufconn",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return l.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { conn.Close() })
	waitServing(f, conn)
	if _, err := st.Put(ctx, "h-1", map[string]string{"region": "eu"}, []byte("x")); err != nil {
		f.Fatal(err)
	}
	client := pb.NewConfigStreamClient(conn)

	f.Fuzz(func(t *testing.T, selector, hunt string, version uint64, scope string) {
		callCtx, stop := context.WithCancel(ctx)
		defer stop()
		stream, err := client.Watch(callCtx, &pb.WatchRequest{Selector: selector, KnownVersions: map[string]uint64{hunt: version}})
		if err == nil {
			_, err = stream.Recv()
		}
		if err != nil {
			if c := status.Code(err); c != codes.InvalidArgument && c != codes.Unavailable && c != codes.Internal {
				t.Fatalf("selector %q, known %q@%d: %v", selector, hunt, version, err)
			}
		}
		// Token scopes: parsing and containment never panic, and a
		// selector is always within itself.
		if sel, err := labels.Parse(scope); err == nil {
			if !within(sel, sel) {
				t.Fatalf("selector %q is not within itself", scope)
			}
			if other, err := labels.Parse(selector); err == nil {
				_ = within(other, sel)
			}
		}
	})
}

// TestMetricsLint runs Prometheus' own metric linter (what promtool check
// metrics runs) over everything the server exposes.
func TestMetricsLint(t *testing.T) {
	s, _ := startServer(t, boltStore(t), Options{})
	problems, err := testutil.GatherAndLint(s.opts.Registry)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
}
