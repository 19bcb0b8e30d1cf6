// Package store keeps the reference service's hunts, each a whole config
// fragment with labels and a 64-bit version that changes only when the
// hunt is written (R6), behind one interface with three implementations:
//
//   - bbolt: embedded, the default for a single replica (OpenBolt);
//   - etcd: shared by several replicas, which each Sync from it and fan
//     the changes out to their own streams (OpenEtcd); a hunt's version is
//     its key's mod revision;
//   - FoundationDB (R4, OpenFDB), behind the build tag fdb, which needs
//     the FoundationDB C client and so is not built here or in CI; a
//     hunt's version is its last write's commit version, and Sync follows
//     a versionstamped change log. TestFDBStoreCompiles type-checks it
//     against the bindings with cgo faked; it has never run.
//
// Sync returns every hunt and then every later change, with no gap
// between the two, so a replica's view converges on the store's.
//
//	s, err := store.OpenBolt("configd.db")
//	v, err := s.Put(ctx, "h-17", map[string]string{"region": "eu"}, fragment)
//	hunts, events, err := s.Sync(ctx)
package store
