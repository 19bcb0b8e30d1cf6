package proctest

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// Process is what a test can match a process on.
type Process struct {
	Pid     int
	Parent  int
	State   string // R, S, Z, ...
	Cmdline []string
}

// Find returns the pids of the processes for which match is true.
// Processes that end while it reads are skipped.
func Find(t testing.TB, match func(Process) bool) []int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...; comm may hold spaces, so split after ')'.
		fields := bytes.Fields(stat[bytes.LastIndexByte(stat, ')')+1:])
		if len(fields) < 2 {
			continue
		}
		parent, _ := strconv.Atoi(string(fields[1]))
		p := Process{Pid: pid, Parent: parent, State: string(fields[0])}
		for _, arg := range bytes.Split(bytes.TrimSuffix(cmdline, []byte{0}), []byte{0}) {
			p.Cmdline = append(p.Cmdline, string(arg))
		}
		if match(p) {
			pids = append(pids, pid)
		}
	}
	return pids
}
