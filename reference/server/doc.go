// Package server is the reference config service (SEED-FACTS R1-R8) over
// gRPC: ConfigStream.Watch streams the fragments of the hunts a label
// selector matches, sending on (re)connect only what the caller's known
// versions lack; ConfigAdmin writes a hunt's whole config atomically. It
// also registers the gRPC health service and server reflection, so that
// grpcurl and grpc-health-probe work.
//
// The server keeps an index of every hunt's labels and version, synced
// from the store (which several replicas may share), and fragments in the
// L1 cache; state knows nothing of gRPC, and status codes appear only at
// the edge. Auth is by bearer token: an admin token may write; a pod token
// may watch only the selectors it is bound to.
//
// Streams share one backlog of recent changes and each keeps only its
// position in it. A stream that stops reading blocks only itself; one that
// falls further behind than the backlog resyncs when it reads again,
// getting what its versions lack, as a reconnect would, and loses nothing.
//
//	srv, err := server.New(server.Options{Store: st})
//	err = srv.Serve(ctx, listener) // until ctx ends
//
// (or, to own the grpc.Server: GRPCOptions, Register, and Run beside it)
package server
