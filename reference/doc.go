// Package reference is the fix the 2023 team built, for real: a streaming
// config service (SEED-FACTS R1-R8). Its parts live in sub-packages:
//
//   - proto: the gRPC protocol (ConfigStream.Watch, ConfigAdmin);
//   - server: one replica of the service;
//   - store: where hunts live (bbolt, etcd; FoundationDB behind a tag);
//   - cache: the L1 LRU and the node-local L2;
//   - agent: the per-node client with the restart debounce.
//
// This package holds no code; its tests run the parts together: real
// etcd, several replicas, many agents, faults.
package reference
