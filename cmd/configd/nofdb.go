//go:build !fdb

package main

import (
	"errors"

	"github.com/churnlab/churnlab/reference/store"
)

func openFDB(string) (store.Store, error) {
	return nil, errors.New("--store foundationdb: this configd was built without the fdb build tag; build it with -tags fdb where the FoundationDB C client is installed")
}
