// Command capshim is an OCI runtime that dockerd calls in place of runc on
// hosts whose capability bounding set lacks a capability that
// `docker run --privileged` asks for (CAP_SYS_RESOURCE on the machines
// churnlab was built on). runc cannot grant a capability the bounding set
// does not hold, so a privileged container such as a kind node fails with
// "unable to apply caps: operation not permitted". capshim removes those
// capabilities from the container's spec, then runs runc with the same
// arguments:
//
//   - create and run: the bundle's config.json (--bundle, or the working
//     directory);
//   - exec: the process file (--process).
//
// Every other call goes to runc untouched. The engine package registers
// capshim with the private dockerd it starts, as
//
//	"runtimes": {"churnlab-capshim": {"path": ".../capshim", "runtimeArgs": ["--capshim-runc=/usr/sbin/runc"]}}
//
// and only where the bounding set is short.
package main

import (
	"github.com/churnlab/churnlab/internal/caps"

	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
)

// runcFlag names the runc capshim runs; dockerd passes it first, from the
// runtime's runtimeArgs.
const runcFlag = "--capshim-runc="

func main() {
	runc, args := "runc", os.Args[1:]
	if len(args) > 0 && strings.HasPrefix(args[0], runcFlag) {
		runc, args = strings.TrimPrefix(args[0], runcFlag), args[1:]
	}
	if err := run(runc, args); err != nil {
		fmt.Fprintf(os.Stderr, "capshim: %v\n", err)
		os.Exit(1)
	}
}

func run(runc string, args []string) error {
	missing, err := caps.Ungrantable()
	if err != nil {
		return err
	}
	if file := specFile(args); file != "" && len(missing) > 0 {
		if err := dropUngrantable(file, missing); err != nil {
			return err
		}
	}
	path, err := exec.LookPath(runc)
	if err != nil {
		return err
	}
	return syscall.Exec(path, append([]string{runc}, args...), os.Environ())
}
