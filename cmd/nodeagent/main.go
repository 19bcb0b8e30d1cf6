// Command nodeagent is the reference config service's node agent where
// it runs as a DaemonSet (the kind target): one agent per node (package
// reference/agent) holds one Watch stream to the service's replicas for
// the hunts of the node's pods, keeps their fragments in the node's L2
// cache (a hostPath, so that it outlives the agent's own restarts), and
// serves the node's pods over HTTP (agent.NodeServer).
//
//	nodeagent --endpoints 172.18.0.1:40111,172.18.0.1:40112 --node $NODE_NAME --l2 /var/lib/churnlab/l2 --listen $HOST_IP:7790
//
// Exit codes: 0 after SIGINT or SIGTERM, 1 when the agent fails, 2 for
// bad flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/churnlab/churnlab/reference/agent"
	"github.com/churnlab/churnlab/reference/cache"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stderr, nil))
}

// run serves until ctx ends; ready, if not nil, receives the address once
// it listens.
func run(ctx context.Context, args []string, stderr io.Writer, ready chan<- string) int {
	fs := flag.NewFlagSet("nodeagent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		endpoints = fs.String("endpoints", "", "the service's replicas, comma-separated host:port")
		l2Dir     = fs.String("l2", "", "the node's L2 cache directory")
		listen    = fs.String("listen", "127.0.0.1:7790", "where the node's pods reach the agent")
		opts      agent.Options
	)
	fs.StringVar(&opts.Node, "node", os.Getenv("NODE_NAME"), "the node's name (default $NODE_NAME)")
	fs.DurationVar(&opts.Debounce, "debounce", 10*time.Second, "how long a hunt stays on the stream after its last pod leaves (R3)")
	fs.DurationVar(&opts.Keepalive, "keepalive", 30*time.Second, "keepalive ping interval (R7)")
	fs.Uint64Var(&opts.Seed, "seed", 0, "seeds the backoff jitter")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	bad := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "nodeagent: "+format+"\n", a...)
		return 2
	}
	switch {
	case fs.NArg() > 0:
		return bad("unexpected arguments %q", fs.Args())
	case *endpoints == "":
		return bad("--endpoints is required")
	case *l2Dir == "":
		return bad("--l2 is required")
	case opts.Node == "":
		return bad("--node is required (or NODE_NAME)")
	case opts.Debounce <= 0 || opts.Keepalive <= 0:
		return bad("--debounce and --keepalive must be above 0")
	}
	for _, e := range strings.Split(*endpoints, ",") {
		if _, _, err := net.SplitHostPort(e); err != nil {
			return bad("--endpoints: %q: %v", e, err)
		}
		opts.Endpoints = append(opts.Endpoints, e)
	}
	if err := os.MkdirAll(*l2Dir, 0o755); err != nil {
		return bad("--l2: %v", err)
	}
	l2, err := cache.OpenL2(*l2Dir)
	if err != nil {
		return bad("--l2: %v", err)
	}
	opts.L2 = l2
	srv := &agent.NodeServer{}
	opts.OnUpdate = srv.Updated
	a, err := agent.New(opts)
	if err != nil {
		return bad("%v", err)
	}
	srv.Agent = a
	l, err := net.Listen("tcp", *listen)
	if err != nil {
		return bad("--listen: %v", err)
	}
	httpSrv := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- httpSrv.Serve(l) }()
	if ready != nil {
		ready <- l.Addr().String()
	}
	fmt.Fprintf(stderr, "nodeagent: node %s, serving on %s, streaming from %s\n", opts.Node, l.Addr(), *endpoints)
	err = a.Run(ctx)
	httpSrv.Close()
	<-served
	if err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintf(stderr, "nodeagent: %v\n", err)
		return 1
	}
	return 0
}
