// Package runner runs scenarios and writes their results.
//
//   - The simulator runner (sim.go) builds a sim.World per system, drives
//     it with a progress line, checks determinism on request, and writes
//     <out>/<scenario>/sim/<system>/{summary.json,timeseries.csv,priority-levels.csv}, or
//     sim-live/ for the scenario at its live scale.
//
//   - The live runner (live*.go) plays the scenario at its live scale
//     against the real systems on a cluster from a Target (target.go:
//     local, a control plane on this machine; target_kube.go: kube, any
//     cluster a kubeconfig names; target_kind.go: kind, a kind cluster of
//     churnlab's node image that the run creates in an engine from package
//     engine): it installs the system (the baseline operator as its own
//     process, cmd/veltrix, built into the target's bin directory; the
//     reference replicas in this process), creates the game Deployment,
//     realizes pods as workers (package pod) behind a health-checked
//     balancer under vegeta load (package load),
//     plays the timeline against the Kubernetes API (live_churn.go),
//     scrapes the API server and etcd every second (the controllers'
//     priority levels' seats and queue waits too), and writes the same
//     files under <out>/<scenario>/<target>/<system>/, plus vegeta.bin
//     (vegeta's raw results), scrapes.csv (every endpoint's counters,
//     second by second) and notes.txt (what the run skipped, and why).
//
//   - On kind, where the cluster runs churnlab's own images
//     (Cluster.Images), every part is a pod instead (live_incluster.go):
//     the game pods run cmd/podagent, the operator is a Deployment
//     (operator_pod.go), configd a StatefulSet over an etcd store pod, and
//     the node agents a DaemonSet; the runner keeps the churn, the load,
//     the scrapes and the uplink, which all config crosses, and writes
//     cluster-pods.txt, every pod of the cluster once the load starts.
//
//   - The sweep (sweep.go) runs the simulator across one parameter and
//     finds the knee.
//
//     outs, err := runner.RunSim(sc, runner.SimOptions{OutDir: "results", Progress: os.Stderr})
//     target, err := runner.NewTarget("local", runner.TargetOptions{BinDir: binDir})
//     live, err := runner.RunLive(ctx, sc, runner.LiveOptions{Target: target, OutDir: "results", Progress: os.Stderr})
package runner
