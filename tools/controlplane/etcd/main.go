// Command etcd is etcd's own server, built from its Go module so that the
// local control plane needs no download from outside the module proxy.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
