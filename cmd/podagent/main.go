// Command podagent is a game pod's program where the game pods run in the
// cluster (the kind target): the pod's game server and its config client,
// as package pod's RunInPod runs them. The client is the baseline's
// (--system baseline: pull the whole bundle from the operator's endpoint
// whenever the operator marks the pod) or the reference's (--system
// reference: the fragment of the pod's hunt through its node's agent,
// cmd/nodeagent). The pod marks itself ConfigReady, its readiness gate,
// once it has config, and serves /play from then on.
//
//	podagent --system reference --agent http://$HOST_IP:7790 --hunts 20 --capacity 1000
//
// The pod's name and namespace come from POD_NAME and POD_NAMESPACE (the
// downward API), its API access from its service account.
//
// Exit codes: 0 after SIGINT or SIGTERM, 1 when the pod cannot run, 2 for
// bad flags.
package main

import (
	"context"
	"flag"
	"fmt"
	"hash/fnv"
	"io"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/churnlab/churnlab/experiments/pod"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Getenv, os.Stderr))
}

func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) int {
	fs := flag.NewFlagSet("podagent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		system    = fs.String("system", "", "how the pod gets its config: baseline or reference")
		bundleURL = fs.String("bundle-url", "", "baseline: the operator's bundle endpoint (behind the uplink)")
		agentURL  = fs.String("agent", "", "reference: the node's agent, e.g. http://$HOST_IP:7790")
		hunts     = fs.Int("hunts", 0, "reference: the hunts pods are spread over by name")
		game      pod.GameOptions
		seed      uint64
	)
	fs.StringVar(&game.Listen, "listen", ":8080", "the game server's address")
	fs.Float64Var(&game.Capacity, "capacity", 1000, "requests a second the pod serves (workload.podCapacity)")
	fs.DurationVar(&game.BaseLatency, "base-latency", 25*time.Millisecond, "fixed latency off the pod's queue (workload.baseLatency)")
	fs.DurationVar(&game.MaxQueue, "max-queue", time.Second, "queued work past which the pod sheds with 503 (model.pods.maxQueue)")
	fs.Uint64Var(&seed, "seed", 0, "seeds the service times, with the pod's name")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	bad := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "podagent: "+format+"\n", a...)
		return 2
	}
	if fs.NArg() > 0 {
		return bad("unexpected arguments %q", fs.Args())
	}
	name, namespace := getenv("POD_NAME"), getenv("POD_NAMESPACE")
	if name == "" || namespace == "" {
		return bad("POD_NAME and POD_NAMESPACE must be set (the pod spec passes metadata.name and metadata.namespace)")
	}
	if game.Capacity <= 0 || game.BaseLatency < 0 || game.MaxQueue < 0 {
		return bad("--capacity must be above 0, --base-latency and --max-queue at least 0")
	}
	var source pod.Source
	switch *system {
	case "baseline":
		if *bundleURL == "" {
			return bad("--system baseline needs --bundle-url")
		}
		source = &pod.BundleSource{URL: *bundleURL}
	case "reference":
		if *agentURL == "" || *hunts < 1 {
			return bad("--system reference needs --agent and --hunts of at least 1")
		}
		source = &pod.NodeAgentSource{URL: *agentURL, Hunts: *hunts}
	default:
		return bad("--system %q: want baseline or reference", *system)
	}
	h := fnv.New64a()
	h.Write([]byte(name))
	game.Seed = seed ^ h.Sum64()
	config, err := rest.InClusterConfig()
	if err != nil {
		fmt.Fprintf(stderr, "podagent: %v\n", err)
		return 1
	}
	client, err := kubernetes.NewForConfig(config)
	if err != nil {
		fmt.Fprintf(stderr, "podagent: %v\n", err)
		return 1
	}
	logger := log.New(stderr, "podagent: ", log.LstdFlags|log.Lmicroseconds)
	err = pod.RunInPod(ctx, pod.InPodOptions{
		Client: client, Namespace: namespace, Name: name, Game: game, Source: source,
		Failed: func(err error) { logger.Print(err) },
	})
	if err != nil {
		logger.Print(err)
		return 1
	}
	return 0
}
