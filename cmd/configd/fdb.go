//go:build fdb

package main

import "github.com/churnlab/churnlab/reference/store"

// fdbKeyPrefix is where configd keeps its hunts in the FoundationDB
// keyspace.
const fdbKeyPrefix = "churnlab"

func openFDB(clusterFile string) (store.Store, error) {
	return store.OpenFDB(clusterFile, fdbKeyPrefix)
}
