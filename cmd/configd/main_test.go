package main

import (
	"bytes"
	"context"
	"io"
	"os"
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

	"github.com/churnlab/churnlab/reference/agent"
	"github.com/churnlab/churnlab/reference/cache"
	pb "github.com/churnlab/churnlab/reference/proto"
)

func TestBadFlagsExit2(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "key.bin")
	if err := os.WriteFile(keyFile, []byte(strings.Repeat("s", 32)), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--store", "bbolt"}, "needs --data DIR"},
		{[]string{"--store", "etcd"}, "needs --etcd-endpoints"},
		{[]string{"--store", "postgres"}, `--store "postgres"`},
		{[]string{"--store", "foundationdb"}, "without the fdb build tag"},
		{[]string{"--data", "x", "--tls-cert", "c.pem"}, "go together"},
		{[]string{"--data", t.TempDir(), "--tokens", "/nonexistent"}, "/nonexistent"},
		{[]string{"--bogus"}, "flag provided but not defined"},
		{[]string{"--data", t.TempDir(), "--token-key", "/nonexistent"}, "--token-key"},
		{[]string{"mint-token", "--key", "/nonexistent"}, "--key"},
		{[]string{"mint-token", "--key", keyFile, "--role", "pod"}, "--role pod needs --scope SELECTOR"},
		{[]string{"mint-token", "--key", keyFile, "--role", "pod", "--scope", "hunt in (x"}, `a pod token needs a valid scope selector; "hunt in (x" is not one`},
		{[]string{"mint-token", "--role", "admin"}, "missing --key FILE"},
		{[]string{"mint-token", "--key", keyFile, "extra"}, `unexpected arguments ["extra"]`},
		{[]string{"--data", t.TempDir(), "--max-fragment-bytes", "lots"}, `want a number of bytes, e.g. 1048576, 512KiB or 6MiB, got "lots"`},
		{[]string{"--data", t.TempDir(), "--max-fragment-bytes", "2GiB"}, "want a number of bytes"},
		{[]string{"--data", t.TempDir(), "--max-fragment-bytes", "1025MiB"}, "over the 1073741824-byte limit"},
	}
	for _, c := range cases {
		var stderr bytes.Buffer
		if code := run(context.Background(), c.args, &stderr, nil); code != 2 || !strings.Contains(stderr.String(), c.want) {
			t.Errorf("configd %v: exit %d, %q; want 2 and %q", c.args, code, stderr.String(), c.want)
		}
		if strings.Contains(stderr.String(), "<nil>") {
			t.Errorf("configd %v: %q prints <nil> instead of what is missing", c.args, stderr.String())
		}
	}
}

// startConfigd runs configd with args until ctx ends. It returns the gRPC
// address, the channel its exit code arrives on, and its stderr (to read
// once it has exited).
func startConfigd(ctx context.Context, t *testing.T, args ...string) (string, <-chan int, *bytes.Buffer) {
	t.Helper()
	ready := make(chan string, 1)
	exit := make(chan int, 1)
	stderr := &bytes.Buffer{}
	go func() { exit <- run(ctx, args, stderr, ready) }()
	select {
	case addr := <-ready:
		return addr, exit, stderr
	case code := <-exit:
		t.Fatalf("configd %v exited %d: %s", args, code, stderr.String())
	}
	return "", nil, nil
}

func TestServesAndStopsCleanly(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr, exit, stderr := startConfigd(ctx, t, "--store", "bbolt", "--data", t.TempDir(), "--listen", "127.0.0.1:0")
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
		if err == nil && resp.Status == healthpb.HealthCheckResponse_SERVING {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not SERVING: %v %v", resp, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := pb.NewConfigAdminClient(conn).Put(ctx, &pb.PutRequest{Hunt: "h-1", Fragment: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	// A stream open at shutdown must not hold it up.
	streamCtx, endStream := context.WithCancel(context.Background())
	defer endStream()
	stream, err := pb.NewConfigStreamClient(conn).Watch(streamCtx, &pb.WatchRequest{Selector: "hunt=h-1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case code := <-exit:
		if code != 0 {
			t.Errorf("exit %d after shutdown, want 0: %s", code, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("configd did not stop within 15 s")
	}
	for {
		if _, err := stream.Recv(); err != nil {
			if status.Code(err) != codes.Unavailable {
				t.Errorf("open stream ended with %v, want Unavailable so that its agent fails over", err)
			}
			break
		}
	}
}

// TestDataDirInUseExits2: a second configd on a --data directory the
// first holds exits 2 at once, saying the database is in use and naming
// its file, instead of waiting on bbolt's lock for ever.
func TestDataDirInUseExits2(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	data := t.TempDir()
	startConfigd(ctx, t, "--store", "bbolt", "--data", data, "--listen", "127.0.0.1:0")
	exit := make(chan int, 1)
	var stderr bytes.Buffer
	go func() {
		exit <- run(ctx, []string{"--store", "bbolt", "--data", data, "--listen", "127.0.0.1:0"}, &stderr, nil)
	}()
	select {
	case code := <-exit:
		file := filepath.Join(data, "configd.db")
		if code != 2 || !strings.Contains(stderr.String(), "database in use") || !strings.Contains(stderr.String(), file) {
			t.Errorf("second configd on %s: exit %d, %q; want 2 saying the database %s is in use", data, code, stderr.String(), file)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("second configd on the same --data did not exit within 10 s")
	}
}

// TestLargeFragments: with --max-fragment-bytes 6MiB, a 5 MiB Put
// succeeds (gRPC's own 4 MiB receive limit used to refuse it) and an
// agent watching the hunt receives it; a fragment one byte over the limit
// is refused with InvalidArgument naming the limit.
func TestLargeFragments(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr, _, _ := startConfigd(ctx, t, "--store", "bbolt", "--data", t.TempDir(), "--listen", "127.0.0.1:0", "--max-fragment-bytes", "6MiB")
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	admin := pb.NewConfigAdminClient(conn)
	cases := []struct {
		name  string
		bytes int
		code  codes.Code
		msg   string
	}{
		// happy: over gRPC's default 4 MiB, within the flag's 6 MiB
		{"5 MiB", 5 << 20, codes.OK, ""},
		{"exactly 6 MiB", 6 << 20, codes.OK, ""},
		// sad: over the flag's limit
		{"6 MiB and a byte", 6<<20 + 1, codes.InvalidArgument, "is 6291457 bytes, over the 6291456-byte limit"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := admin.Put(ctx, &pb.PutRequest{Hunt: "h-big", Fragment: bytes.Repeat([]byte("x"), c.bytes)})
			if status.Code(err) != c.code || !strings.Contains(status.Convert(err).Message(), c.msg) {
				t.Errorf("Put of %d bytes: %v; want %s with %q", c.bytes, err, c.code, c.msg)
			}
		})
	}
	// The last fragment accepted (6 MiB) reaches an agent with its default options.
	l2, err := cache.OpenL2(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	a, err := agent.New(agent.Options{Endpoints: []string{addr}, Node: "node-1", L2: l2})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stopAgent := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { a.Run(runCtx); close(done) }() //nolint:errcheck // nil when ctx ends
	defer func() { stopAgent(); <-done }()
	acquireCtx, cancelAcquire := context.WithTimeout(ctx, 20*time.Second)
	defer cancelAcquire()
	f, _, err := a.Acquire(acquireCtx, "game-1", "h-big")
	if err != nil || len(f) != 6<<20 {
		t.Errorf("agent Acquire: %d bytes, %v; want the 6 MiB fragment", len(f), err)
	}
}

// TestSignedTokenFromMintToken: a token from configd mint-token lets an
// admin write to a configd started with --token-key, and a request with
// none is refused.
func TestSignedTokenFromMintToken(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "key.bin")
	if err := os.WriteFile(keyFile, []byte(strings.Repeat("s", 32)), 0o600); err != nil {
		t.Fatal(err)
	}
	var token bytes.Buffer
	if code := mintToken([]string{"--key", keyFile, "--role", "admin", "--ttl", "1h"}, &token, io.Discard); code != 0 {
		t.Fatalf("mint-token exited %d", code)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr, _, _ := startConfigd(ctx, t, "--store", "bbolt", "--data", t.TempDir(), "--listen", "127.0.0.1:0", "--token-key", keyFile)
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	admin := pb.NewConfigAdminClient(conn)
	put := func(ctx context.Context) error {
		_, err := admin.Put(ctx, &pb.PutRequest{Hunt: "h-1", Fragment: []byte("x")})
		return err
	}
	if err := put(ctx); status.Code(err) != codes.Unauthenticated {
		t.Errorf("Put without a token: %v, want Unauthenticated", err)
	}
	signed := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+strings.TrimSpace(token.String()))
	if err := put(signed); err != nil {
		t.Errorf("Put with a minted admin token: %v", err)
	}
}
