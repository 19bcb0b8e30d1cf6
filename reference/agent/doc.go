// Package agent is the pod side of the reference config service: one agent
// per node holds one Watch stream (to any of the service's replicas,
// failing over between them) for the hunts of that node's pods, and keeps
// their fragments in the node's L2 cache.
//
// A pod Acquires its hunt's config when it starts and Releases it when it
// stops. A hunt stays on the stream for the debounce window (10 s, R3)
// after its last pod leaves, so a pod that restarts within it is served
// from L2 with no call to the service and no change to the stream. When
// the stream does change, or reconnects after a failure, the agent sends
// the versions it holds, and the service sends only what changed.
//
// Where the agent runs as a process of its own (cmd/nodeagent, a
// DaemonSet on kind), a NodeServer serves it to the node's pods over
// HTTP: a pod holds its hunt for as long as it holds its /fragment
// connection, and /updates streams each version that lands in L2.
//
//	a, err := agent.New(agent.Options{Endpoints: []string{"configd-0:7070", "configd-1:7070"}, Node: "node-3", L2: l2})
//	go a.Run(ctx)
//	fragment, version, err := a.Acquire(ctx, "game-7", "h-17")
//	defer a.Release("game-7")
package agent
