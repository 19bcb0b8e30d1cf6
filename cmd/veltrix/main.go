// Command veltrix runs the Veltrix-like baseline operator (package
// baseline) against a Kubernetes API server: its reconcilers, and an HTTP
// server with the bundle endpoint, /metrics and the controller switch.
//
//	veltrix --kubeconfig operator.kubeconfig --replicas 3 --listen 127.0.0.1:8080
//
// Exit codes: 0 after a clean shutdown (SIGINT or SIGTERM), 1 when the
// operator fails, 2 for bad flags.
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
	"syscall"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/churnlab/churnlab/baseline"
	"github.com/churnlab/churnlab/experiments/scenario"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stderr))
}

func run(ctx context.Context, args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("veltrix", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		kubeconfig = fs.String("kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig of the operator's identity (default: in-cluster)")
		listen     = fs.String("listen", "127.0.0.1:8080", "address of the bundle endpoint, /metrics and /admin/controller")
		uplink     = fs.String("uplink", "", `bundle egress limit, e.g. "1Gbps" or "20MB/s" (default: unlimited)`)
		opts       baseline.Options
		qps        float64
	)
	fs.StringVar(&opts.Namespace, "namespace", "default", "namespace of the game pods and config objects")
	fs.StringVar(&opts.PodSelector, "pod-selector", "app=game", "label selector of the game pods")
	fs.IntVar(&opts.Replicas, "replicas", 1, "operator replicas; each reconciles every pod")
	fs.BoolVar(&opts.Controller, "controller", true, "run the periodic full reconcile")
	fs.DurationVar(&opts.ReconcileInterval, "reconcile-interval", 5*time.Second, "full reconcile of each pod this often")
	fs.Float64Var(&qps, "qps", 50, "client-side API rate limit per replica")
	fs.IntVar(&opts.Burst, "burst", 100, "client-side API burst per replica")
	fs.IntVar(&opts.Workers, "workers", 8, "concurrent reconciles per replica")
	fs.IntVar(&opts.APICallsPerReconcile, "api-calls-per-reconcile", 1, "API requests of one full reconcile: a LIST of the config, then GETs, then --writes-per-reconcile PATCHes of the pod")
	fs.IntVar(&opts.WritesPerReconcile, "writes-per-reconcile", 0, "how many of a reconcile's API requests are PATCHes")
	fs.IntVar(&opts.ReloadParallelism, "reload-parallelism", 8, "concurrent GETs when reloading config for a starting pod")
	fs.BoolVar(&opts.Gzip, "gzip", false, "gzip bundles")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "veltrix: unexpected arguments %q\n", fs.Args())
		return 2
	}
	opts.QPS = float32(qps)
	if *uplink != "" {
		bw, err := scenario.ParseBandwidth(*uplink)
		if err != nil {
			fmt.Fprintf(stderr, "veltrix: --uplink: %v\n", err)
			return 2
		}
		opts.Uplink = bw.BytesPerSecond()
	}
	cfg, err := restConfig(*kubeconfig)
	if err != nil {
		fmt.Fprintf(stderr, "veltrix: %v\n", err)
		return 2
	}
	op, err := baseline.New(cfg, opts)
	if err != nil {
		fmt.Fprintf(stderr, "veltrix: %v\n", err)
		return 2
	}
	ctrllog.SetLogger(zap.New(zap.WriteTo(stderr)))
	if err := serve(ctx, op, *listen, stderr); err != nil {
		fmt.Fprintf(stderr, "veltrix: %v\n", err)
		return 1
	}
	return 0
}

func restConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig == "" {
		cfg, err := rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("no --kubeconfig and not in a cluster: %w", err)
		}
		return cfg, nil
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("--kubeconfig %s: %w", kubeconfig, err)
	}
	return cfg, nil
}

// serve runs the operator and its HTTP server until ctx ends or either fails.
func serve(ctx context.Context, op *baseline.Operator, addr string, stderr io.Writer) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: op.Handler(), ReadHeaderTimeout: 10 * time.Second}
	httpErr := make(chan error, 1)
	go func() { httpErr <- srv.Serve(l) }()
	fmt.Fprintf(stderr, "veltrix: serving on http://%s\n", l.Addr())
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	opErr := make(chan error, 1)
	go func() { opErr <- op.Run(ctx) }()
	select {
	case err = <-httpErr:
		cancel()
		<-opErr
	case err = <-opErr:
	}
	shutdownCtx, done := context.WithTimeout(context.Background(), 5*time.Second)
	defer done()
	_ = srv.Shutdown(shutdownCtx)
	if errors.Is(err, http.ErrServerClosed) || errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}
