// Package driver plays a scenario's declared controllers (its
// controllers: list) against a real API server with client-go, as the
// simulator's sim/controllers.go plays them against its model.
//
// Setup gives each controller its own identity (a service account, with
// a ClusterRole for the resources it uses and a token from the
// TokenRequest API, which works the same on the local control plane, a
// kubeconfig cluster and kind), and a FlowSchema that routes that
// identity to the priority level the scenario names. It creates the
// priority levels the scenario declares (or replaces a default's spec,
// auto-update off), the custom resources' CRDs, and the objects the
// requests read, in the declared numbers and sizes.
//
// Run starts every replica: its own client (the controller's QPS and
// burst), a client-go work queue and Workers goroutines (with Workers 0,
// one per key as it comes). Timers (an each-pod trigger as a loop that
// requeues its pod's key an interval after each reconcile began), the
// start, pod and node events (from informers) and the replica's own
// watches add keys; working a key makes the trigger's requests in order,
// each Repeat times, Parallel at once, each repeat on its own object.
// Each request's outcome (latency, and whether the API server answered
// 429) is reported through Options.Record, per controller and level.
//
// The Veltrix operator is not played here: the real one runs as it is.
package driver
