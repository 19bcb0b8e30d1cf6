// Package sim is churnlab's deterministic discrete-event simulator: the
// engine (a virtual clock in integer nanoseconds, events ordered by time
// then sequence, one seeded PCG stream per model) and one file per model.
//
// Like etcd/raft's RawNode, it is a pure state machine: no goroutines, no
// wall clock, no global randomness, no network or OS packages
// (forbidden_test.go enforces this). The same scenario and seed give
// byte-identical results; runners do all I/O.
//
// The model set so far, each a mechanism rather than a curve fit:
//   - uplink.go: the config uplink, processor-sharing among active
//     transfers (F5, F6).
//   - pods.go: the game Deployment; pods start, fetch config, become ready;
//     autoscale, restart storms and rolling updates.
//   - balancer.go: the load balancer's active health checks; a deleted pod
//     keeps getting (failing) requests until its checks fail (F7).
//   - traffic.go: Poisson game requests into per-pod FIFO queues, with an
//     M/M/1 Redis term and a client timeout.
//   - delivery.go: how each system delivers config: the baseline's full
//     bundle per pod start and per reconcile, or the reference's
//     per-node agent with an L2 cache keyed by hunt and version.
//
// The kube-apiserver (APF), etcd, the operator's reconcile load, the
// leaderboard and the reference service's replicas and store are not
// modelled yet; their summary.json keys stay null, and Unmodelled names
// the timeline events a scenario asks for that this set ignores.
//
//	w, err := sim.NewWorld(sc, sim.Baseline, sc.Seed)
//	w.RunUntil(w.End())
//	summary := w.Recorder().Summary(metrics.Run{...})
package sim
