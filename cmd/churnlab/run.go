package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/churnlab/churnlab/experiments/controlplane"
	"github.com/churnlab/churnlab/experiments/metrics"
	"github.com/churnlab/churnlab/experiments/runner"
)

func newRunCommand(stdout, stderr io.Writer) *cobra.Command {
	var (
		file, system, target, out string
		uplinkKind                string
		targetOpts                runner.TargetOptions
		sets                      []string
		estimate                  bool
		injectPushDelay           time.Duration
	)
	cmd := &cobra.Command{
		Use:   "run -f FILE [--target local|kube|kind] [--system baseline|reference|both] [--uplink token-bucket|tc] [--set PATH=VALUE ...] [--out DIR] [--estimate]",
		Short: "Play a scenario live, at its live scale, against the real baseline and reference service",
		Long: `run plays the scenario's timeline, shrunk by its live.scale and cut to
live.duration, against the real systems on a real Kubernetes control plane:
the Veltrix-like operator (package baseline) and the streaming config
service (package reference), one after the other, each on a fresh cluster.
Game pods are in-process workers with real sockets (local, kube) or real
pods (kind), behind a load balancer with active health checks, under
vegeta load. It writes
<out>/<scenario>/<target>/<system>/{summary.json,timeseries.csv,vegeta.bin,vegeta.txt,scrapes.csv,notes.txt},
and cluster-pods.txt on kind.

Targets: local (the default) starts a control plane on this machine (make
controlplane builds it): kube-apiserver, etcd, the controller manager, the
scheduler and kwok's fake nodes, with APF sized as the scenario says. kube
uses the cluster a kubeconfig names (--kubeconfig, --context): the run makes
a namespace of its own, a service account for the operator, and game pods
that run --pod-image, and deletes them at the end; the cluster keeps its own
APF and its etcd is not scraped. kind creates a kind cluster with the
scenario's node count for each system and deletes it; its nodes run
churnlab's node image, built offline (churnlab kind node-image), in your
Docker or Podman, or else in a private dockerd that the run starts and
stops (--keep-engine leaves it up; churnlab kind engine down stops it).
There every part runs in pods: the game pods (cmd/podagent), the operator,
configd and its store, and the node agents; the run keeps the churn, the
load, the scrapes and the uplink. On local and kube the game servers run in
this process, reached over loopback, one per Running pod.

Each system takes live.duration plus about half a minute. Ctrl-C stops
everything the run started and writes nothing.`,
		Args: noArgs,
		RunE: func(*cobra.Command, []string) error {
			systems, err := parseSystem(system)
			if err != nil {
				return err
			}
			sc, err := loadScenario(file, sets)
			if err != nil {
				return err
			}
			if estimate {
				fmt.Fprintf(stdout, "about %s: %d system(s) x (%s of live time + about %s to set up)\n",
					roundEstimate(runner.LiveEstimate(sc, len(systems))), len(systems), sc.Live.Duration, runner.LiveSetup)
				return nil
			}
			ctx, stdout, stderr, stop := runContext(stdout, stderr)
			defer stop()
			if uplinkKind != runner.UplinkTokenBucket && uplinkKind != runner.UplinkTC {
				return badInput{fmt.Errorf("--uplink %q: want %s or %s", uplinkKind, runner.UplinkTokenBucket, runner.UplinkTC)}
			}
			if injectPushDelay < 0 {
				return badInput{fmt.Errorf("--inject-push-delay %s: must not be negative", injectPushDelay)}
			}
			if !slices.Contains(runner.Targets, target) {
				return badInput{fmt.Errorf("--target: unknown target %q: want one of %v", target, runner.Targets)}
			}
			if target != "kube" && (targetOpts.Kubeconfig != "" || targetOpts.Context != "") {
				return badInput{fmt.Errorf("--kubeconfig and --context are for --target kube, not %s", target)}
			}
			if target == "kube" {
				if err := checkKubeconfig(targetOpts); err != nil {
					return err
				}
			}
			if err := checkOutDir(out); err != nil {
				return err
			}
			// bin/ holds the control plane (built here for local) and the
			// operator's program, which every target's baseline run builds.
			if target == "local" || target == "kind" {
				targetOpts.BinDir, err = controlplane.EnsureBuilt(ctx, stderr)
			} else {
				targetOpts.BinDir, err = controlplane.DefaultBinDir()
			}
			if err != nil {
				return err
			}
			t, err := runner.NewTarget(target, targetOpts)
			if err != nil {
				return badInput{fmt.Errorf("--target: %w", err)}
			}
			outs, err := runner.RunLive(ctx, sc, runner.LiveOptions{
				Target: t, Systems: systems, OutDir: out, Progress: stderr, Uplink: uplinkKind, InjectPushDelay: injectPushDelay,
			})
			var summaries []*metrics.Summary
			for _, o := range outs {
				fmt.Fprintf(stdout, "wrote %s/{summary.json,timeseries.csv,priority-levels.csv,vegeta.bin,vegeta.txt,scrapes.csv,notes.txt}\n", o.Dir)
				summaries = append(summaries, o.Summary)
			}
			printComparison(stdout, summaries)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVarP(&file, "file", "f", "", "scenario file")
	f.StringVar(&target, "target", "local", fmt.Sprintf("where the cluster comes from: one of %v", runner.Targets))
	f.StringVar(&targetOpts.Kubeconfig, "kubeconfig", "", "kube target: kubeconfig file (default $KUBECONFIG, then ~/.kube/config)")
	f.StringVar(&targetOpts.Context, "context", "", "kube target: kubeconfig context (default its current one)")
	f.StringVar(&targetOpts.PodImage, "pod-image", runner.DefaultPodImage, "kube target: the game pods' container image (the game servers run in this process; on kind the pods run cmd/podagent)")
	f.StringVar(&targetOpts.Cache, "cache", defaultCache(), "kind target: where the node image and the private engine's state are kept")
	f.BoolVar(&targetOpts.KeepEngine, "keep-engine", false, "kind target: leave a private engine this run starts running, for later runs")
	f.StringVar(&system, "system", "both", "system to run: baseline, reference or both")
	f.StringVar(&uplinkKind, "uplink", runner.UplinkTokenBucket, "how config egress is shaped: token-bucket (in this process) or tc (tbf on a veth into a network namespace the run creates; root, iproute2)")
	f.StringVar(&out, "out", "runs", "results directory (runs/ by default; results/ holds the committed runs: make record)")
	f.StringArrayVar(&sets, "set", nil, setUsage)
	f.BoolVar(&estimate, "estimate", false, "print about how long the run takes, and do not run it")
	f.DurationVar(&injectPushDelay, "inject-push-delay", 0, "test only: every configd push waits this long, a regression for showing that make gate-live catches one")
	_ = f.MarkHidden("inject-push-delay")
	return cmd
}

// checkKubeconfig loads the kube target's kubeconfig and context as the
// target will, so that a missing file, a bad one or an unknown context is
// bad input, found before anything starts.
func checkKubeconfig(opts runner.TargetOptions) error {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = opts.Kubeconfig
	if _, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: opts.Context}).ClientConfig(); err != nil {
		file := opts.Kubeconfig
		if file == "" {
			file = "the default ($KUBECONFIG, then ~/.kube/config)"
		}
		context := opts.Context
		if context == "" {
			context = "its current one"
		}
		return badInput{fmt.Errorf("--target kube: cannot use kubeconfig %s, context %s: %w", file, context, err)}
	}
	return nil
}

// runContext is a live run's context. It ends on Ctrl-C or SIGTERM, and
// when a write to stdout or stderr finds its pipe closed (churnlab run |
// head), so that the run stops and cleans up as on Ctrl-C instead of dying
// of SIGPIPE and leaving its temporary directories. SIGPIPE itself is
// ignored, not watched: with signal.Notify it comes for a write to any
// closed socket as well, such as a pod's connection cut by its deletion in
// a rolling update, and stopped such runs half way.
func runContext(stdout, stderr io.Writer) (ctx context.Context, out, errOut io.Writer, stop func()) {
	signal.Ignore(syscall.SIGPIPE)
	ctx, stopSignals := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	ctx, cancel := context.WithCancelCause(ctx)
	return ctx, closedPipeStops{stdout, cancel}, closedPipeStops{stderr, cancel},
		func() { cancel(nil); stopSignals() }
}

// closedPipeStops cancels the run when a write finds its pipe closed.
type closedPipeStops struct {
	w      io.Writer
	cancel context.CancelCauseFunc
}

func (c closedPipeStops) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	if errors.Is(err, syscall.EPIPE) {
		c.cancel(fmt.Errorf("output closed: %w", err))
	}
	return n, err
}

// roundEstimate rounds an estimate as a person would say it: to the
// minute past 10 minutes, to 10 s below (85 s is "1m30s", not "1m0s").
func roundEstimate(d time.Duration) time.Duration {
	if d >= 10*time.Minute {
		return d.Round(time.Minute)
	}
	return d.Round(10 * time.Second)
}
