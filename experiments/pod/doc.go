// Package pod is the game workload of a live run: what each game pod of
// the scenario does once Kubernetes says it is Running.
//
//   - A Realizer watches the game pods through an informer. For each
//     Running pod it starts a worker with real sockets, and stops it when
//     the pod is deleted.
//   - A worker first gets its config the way its system delivers it (a
//     Source): the baseline's full bundle from the operator's bundle
//     endpoint once the operator has marked the pod, or the reference's
//     fragment through its node's agent (L2 cache, one gRPC stream).
//   - Meanwhile and after, it serves a Game: /play answers only once the
//     config is loaded, /healthz says whether it is, for the load
//     balancer's active checks.
//   - Once the config is in, the Realizer sets the pod's ConfigReady
//     condition, the readiness gate the game pods carry, so the pod is
//     Ready, and available to its Deployment's rollout, only with config.
//
// The Game is a single FIFO server, as the simulator's pod is: each
// request takes an exponential service time of mean 1/capacity in turn,
// then the fixed path latency; a pod with more than MaxQueue of work
// queued sheds with a 503.
//
//	r := pod.NewRealizer(pod.RealizerOptions{Client: kube, Namespace: "default", Selector: "app=game", Source: src, Game: g, Events: ev})
//	go r.Run(ctx)
package pod
