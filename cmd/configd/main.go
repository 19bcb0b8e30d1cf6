// Command configd runs one replica of the reference config service
// (package reference/server).
//
//	configd --store bbolt --data DIR --listen 127.0.0.1:7070
//	configd --store etcd --etcd-endpoints http://127.0.0.1:2379 --listen 127.0.0.1:7071 --tokens tokens.csv
//	configd --token-key key.bin ...                  # also accept signed tokens
//	configd mint-token --key key.bin --role pod --scope hunt=h-17 --ttl 24h
//
// Exit codes: 0 after a clean shutdown (SIGINT or SIGTERM), 1 when the
// service fails, 2 for bad flags or files, and for a --data directory
// another configd holds (after store.DefaultLockTimeout, not for ever).
package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/churnlab/churnlab/reference/server"
	"github.com/churnlab/churnlab/reference/store"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stderr, nil))
}

// run starts the service and blocks until ctx ends. ready, if not nil,
// receives the gRPC address once it listens.
func run(ctx context.Context, args []string, stderr io.Writer, ready chan<- string) int {
	if len(args) > 0 && args[0] == "mint-token" {
		return mintToken(args[1:], os.Stdout, stderr)
	}
	fs := flag.NewFlagSet("configd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		storeKind     = fs.String("store", "bbolt", "config store: bbolt (embedded, one replica), etcd (shared by replicas) or foundationdb (built with -tags fdb)")
		fdbCluster    = fs.String("fdb-cluster-file", "", "foundationdb: cluster file (default: the client's default)")
		dataDir       = fs.String("data", "", "bbolt: directory of configd.db")
		etcdEndpoints = fs.String("etcd-endpoints", "", "etcd: comma-separated client URLs")
		listen        = fs.String("listen", "127.0.0.1:7070", "gRPC address")
		metricsListen = fs.String("metrics-listen", "", "address of /metrics (default: none)")
		tlsCert       = fs.String("tls-cert", "", "TLS certificate file (with --tls-key; default plaintext)")
		tlsKey        = fs.String("tls-key", "", "TLS key file")
		tokensFile    = fs.String("tokens", "", "tokens file: TOKEN,admin or TOKEN,pod,SCOPE per line (default: auth off)")
		tokenKey      = fs.String("token-key", "", "signing key file (at least 32 bytes): also accept tokens from configd mint-token")
		audience      = fs.String("audience", "configd", "the audience signed tokens must name")
		opts          server.Options
	)
	fs.IntVar(&opts.L1Entries, "l1-entries", 1000, "L1 cache entries (R5)")
	fs.IntVar(&opts.L1Bytes, "l1-bytes", 1000*512, "L1 cache bytes (R5)")
	opts.MaxFragmentBytes = 1 << 20
	fs.Var((*byteSize)(&opts.MaxFragmentBytes), "max-fragment-bytes", "largest fragment Put accepts, in bytes or with KiB, MiB or GiB (agents must accept as much: agent.Options.MaxMessageBytes, 64 MiB by default)")
	fs.IntVar(&opts.Backlog, "backlog", 1024, "changes kept for streams that fall behind; a stream further behind resyncs")
	fs.DurationVar(&opts.Keepalive, "keepalive", 30*time.Second, "keepalive ping interval (R7)")
	fs.IntVar(&opts.CatchUps, "catch-ups", 64, "streams caught up at once")
	fs.IntVar(&opts.CatchUpWaiters, "catch-up-waiters", 1024, "streams waiting to catch up; past that, Watch is shed with ResourceExhausted and a retry hint")
	fs.DurationVar(&opts.StoreCheck, "store-check", time.Second, "how often the store is pinged; cut off, the replica reports NOT_SERVING and configd_store_up 0")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	bad := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "configd: "+format+"\n", a...)
		return 2
	}
	if fs.NArg() > 0 {
		return bad("unexpected arguments %q", fs.Args())
	}
	if (*tlsCert == "") != (*tlsKey == "") {
		return bad("--tls-cert and --tls-key go together")
	}
	var st store.Store
	var err error
	switch *storeKind {
	case "bbolt":
		if *dataDir == "" {
			return bad("--store bbolt needs --data DIR")
		}
		if err := os.MkdirAll(*dataDir, 0o755); err != nil {
			return bad("--data: %v", err)
		}
		st, err = store.OpenBolt(filepath.Join(*dataDir, "configd.db"))
	case "etcd":
		if *etcdEndpoints == "" {
			return bad("--store etcd needs --etcd-endpoints")
		}
		st, err = store.OpenEtcd(strings.Split(*etcdEndpoints, ","))
	case "foundationdb":
		st, err = openFDB(*fdbCluster)
	default:
		return bad("--store %q: want bbolt, etcd or foundationdb", *storeKind)
	}
	if err != nil {
		return bad("%v", err)
	}
	defer st.Close()
	opts.Store = st
	if *tokensFile != "" {
		if opts.Tokens, err = server.LoadTokens(*tokensFile); err != nil {
			return bad("%v", err)
		}
	}
	if *tokenKey != "" {
		key, err := server.LoadSigningKey(*tokenKey)
		if err != nil {
			return bad("--token-key: %v", err)
		}
		if opts.Tokens, err = opts.Tokens.WithSigningKey(key, *audience, time.Now); err != nil {
			return bad("--token-key: %v", err)
		}
	}
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	if opts.Tokens == nil {
		logger.Warn("no --tokens or --token-key: authentication is off; anyone who can reach the port can read and write config")
	}
	opts.Logger = logger
	opts.Registry = prometheus.NewRegistry()
	opts.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	srv, err := server.New(opts)
	if err != nil {
		return bad("%v", err)
	}
	var grpcOpts []grpc.ServerOption
	if *tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(*tlsCert, *tlsKey)
		if err != nil {
			return bad("TLS: %v", err)
		}
		grpcOpts = append(grpcOpts, grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})))
	}
	if err := serve(ctx, srv, grpcOpts, *listen, *metricsListen, opts.Registry, logger, ready); err != nil {
		logger.Error("configd failed", "err", err)
		return 1
	}
	return 0
}

func serve(ctx context.Context, srv *server.Server, grpcOpts []grpc.ServerOption, listen, metricsListen string,
	reg *prometheus.Registry, logger *slog.Logger, ready chan<- string) error {
	l, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	if metricsListen != "" {
		ml, err := net.Listen("tcp", metricsListen)
		if err != nil {
			l.Close()
			return err
		}
		metrics := &http.Server{Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), ReadHeaderTimeout: 10 * time.Second}
		go metrics.Serve(ml) //nolint:errcheck // ends with Close
		defer metrics.Close()
		logger.Info("metrics", "addr", "http://"+ml.Addr().String()+"/metrics")
	}
	logger.Info("serving", "addr", l.Addr().String())
	if ready != nil {
		ready <- l.Addr().String()
	}
	return srv.Serve(ctx, l, grpcOpts...)
}

// byteSize is a flag of bytes: 1048576, 512KiB, 6MiB or 1GiB.
type byteSize int

func (b *byteSize) String() string { return strconv.Itoa(int(*b)) }

func (b *byteSize) Set(s string) error {
	n, unit := s, 1
	for _, u := range []struct {
		suffix string
		bytes  int
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}} {
		if cut, ok := strings.CutSuffix(s, u.suffix); ok {
			n, unit = cut, u.bytes
			break
		}
	}
	v, err := strconv.Atoi(strings.TrimSpace(n))
	if err != nil || v < 0 || v > math.MaxInt32/unit {
		return fmt.Errorf("want a number of bytes, e.g. 1048576, 512KiB or 6MiB, got %q", s)
	}
	*b = byteSize(v * unit)
	return nil
}

// mintToken prints a signed token: configd mint-token --key FILE --role
// admin|pod [--scope SELECTOR] [--ttl D] [--audience A].
func mintToken(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("configd mint-token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	keyFile := fs.String("key", "", "signing key file, the one configd --token-key reads")
	role := fs.String("role", "pod", "admin (may write) or pod (may watch within --scope)")
	scope := fs.String("scope", "", "pod: label selector every watch must stay within, e.g. hunt=h-17")
	ttl := fs.Duration("ttl", 24*time.Hour, "how long the token works")
	audience := fs.String("audience", "configd", "the service it is for")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "configd mint-token: unexpected arguments %q\n", fs.Args())
		return 2
	}
	if *keyFile == "" {
		fmt.Fprintln(stderr, "configd mint-token: missing --key FILE, the signing key configd --token-key reads")
		return 2
	}
	key, err := server.LoadSigningKey(*keyFile)
	if err != nil {
		fmt.Fprintf(stderr, "configd mint-token: --key: %v\n", err)
		return 2
	}
	if *role == "pod" && strings.TrimSpace(*scope) == "" {
		fmt.Fprintln(stderr, "configd mint-token: --role pod needs --scope SELECTOR, the label selector its watches must stay within, e.g. --scope hunt=h-17")
		return 2
	}
	token, err := server.Mint(key, server.Claims{Audience: *audience, Expires: time.Now().Add(*ttl), Role: *role, Scope: *scope})
	if err != nil {
		fmt.Fprintf(stderr, "configd mint-token: %v\n", err)
		return 2
	}
	fmt.Fprintln(stdout, token)
	return 0
}
