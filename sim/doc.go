// Package sim is churnlab's deterministic discrete-event simulator: the
// engine (a virtual clock in integer nanoseconds, events ordered by time
// then sequence, one seeded PCG stream per model) and one file per model.
//
// Like etcd/raft's RawNode, it is a pure state machine: no goroutines, no
// wall clock, no global randomness, no network or OS packages, directly
// or through any package of this module it imports (forbidden_test.go
// enforces both). It reports what it measures to an Observer
// (observer.go), which metrics.Recorder satisfies. The same scenario and seed give
// byte-identical results; runners do all I/O.
//
// The models, each a mechanism rather than a curve fit; their constants
// are the scenario's model section, filled from the profile veltrix-2023
// (experiments/scenario/model.go says where each comes from):
//   - uplink.go: the config uplink, processor-sharing among active
//     transfers, at the payload share of its bits, whose port's full
//     queue other packets wait behind when it is saturated (F5, F6, F10).
//   - pods.go: the game Deployment; pods start, fetch config, become
//     ready; a pod still without config at its liveness deadline is
//     restarted; autoscale, restart storms and rolling updates.
//   - balancer.go: the load balancer's active health checks; a deleted pod
//     keeps getting (failing) requests until its checks fail (F7).
//   - traffic.go: game requests into per-pod FIFO queues behind the
//     round-robin balancer, with load shedding, a client timeout, player
//     retries, stalls that delay queued requests (T4), and Redis, which
//     pods that have just loaded a config load harder (F2, T1); per
//     request, or in aggregate steps with an E_k/M/1 sojourn (within 5%
//     of per request on p99), in which only the busy pods are looked at
//     one by one (busy.go) and the idle ones are counted together.
//   - operator.go: the bundle delivery of the Veltrix-like operator,
//     which is itself a declared controller (scenario.Operator) the
//     controllers play: a pod's loop starts when its container asks for
//     config and its reload runs on one replica, each reload is a config
//     generation, the bundle is re-sent (a PATCH and 2 MB) to a pod on an
//     older one, and a LIST that finds config changed reloads first, all
//     through each replica's client-side rate limiter (F4, F9, F11, T2,
//     T3).
//   - apf.go: kube-apiserver 1.34's API Priority and Fairness: the
//     inflight limits split into priority levels by their shares, lent
//     and borrowed every 10 s by seat demand; requests as wide as what
//     they load, shuffle-sharded into queues by flow, answered 429 past
//     the queues or after 15 s in them; or only the two inflight limits
//     with it off (F11, T2, T5). Its numbers cite the bootstrap
//     configuration and the work estimator they come from.
//   - controllers.go: the scenario's declared controllers and the
//     operator: replicas placed per controller, node or pod; a rate
//     limiter, a deduplicating work queue and bounded (or unbounded)
//     workers each; triggers (timers, each pod's at its own phase, cluster
//     events, watches with resyncs) whose requests, repeated and in
//     parallel as declared, cost the API server and etcd per object and
//     byte, behind an optional client cache.
//   - etcd.go: the etcd leader: writes through a group-commit raft loop
//     whose backlog delays heartbeats, as does the uplink's queue on the
//     way to its followers; reads beside it (F10, L1).
//   - delivery.go: how each system delivers config: the baseline's bundle
//     (or its emptyDir cache, T5, or ConfigMaps and Helm, T6), or the
//     reference's per-node agent with an L2 cache keyed by hunt and
//     version and a restart debounce, fed after the store's commit and
//     the replicas' read (R3, R8).
//   - leaderboard.go: the leaderboard job, which publishes only when every
//     one of its reads succeeds (F8).
//
// Unmodelled names the timeline events a scenario asks for that this set
// ignores (reference replica kills and store outages).
//
//	rec := metrics.NewRecorder()
//	w, err := sim.NewWorld(sc, sim.Baseline, sc.Seed, rec)
//	w.RunUntil(w.End())
//	summary := rec.Summary(metrics.Run{...})
package sim
