// Package pod is the game workload of a live run: what each game pod of
// the scenario does once Kubernetes says it is Running, wherever its
// program runs.
//
//   - Where the pods' programs run in the runner's process (the local and
//     kube targets), a Realizer watches the game pods through an
//     informer. For each Running pod it starts a worker with real sockets,
//     and stops it when the pod is deleted.
//   - Where they run in the cluster (the kind target), each pod runs
//     cmd/podagent, which is RunInPod: the same game server and config
//     client in the pod's own container. The runner follows those pods
//     with an Observer.
//   - A pod first gets its config the way its system delivers it (a
//     Source): the baseline's full bundle from the operator's bundle
//     endpoint once the operator has marked the pod (BundleSource), or
//     the reference's fragment through its node's agent: in process
//     (AgentSource, an L2 cache and one gRPC stream per node), or over
//     HTTP from the node's agent pod (NodeAgentSource).
//   - Meanwhile and after, it serves a Game: /play answers only once the
//     config is loaded, /healthz says whether it is, for the load
//     balancer's active checks.
//   - Once the config is in, the pod's ConfigReady condition, the
//     readiness gate the game pods carry, is set, so the pod is Ready, and
//     available to its Deployment's rollout, only with config. Its message
//     says when the config came in and what it cost the uplink, which is
//     how the Observer learns it.
//
// The Game is a single FIFO server, as the simulator's pod is: each
// request takes an exponential service time of mean 1/capacity in turn,
// then the fixed path latency; a pod with more than MaxQueue of work
// queued sheds with a 503.
//
//	r := pod.NewRealizer(pod.RealizerOptions{Client: kube, Namespace: "default", Selector: "app=game", Source: src, Game: g, Events: ev})
//	go r.Run(ctx)
//
//	o := pod.NewObserver(pod.ObserverOptions{Client: kube, Namespace: ns, Selector: "app=game", Port: 8080, Events: ev})
//	go o.Run(ctx)
package pod
