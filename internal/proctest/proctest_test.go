package proctest

import (
	"os"
	"os/exec"
	"slices"
	"testing"
)

func TestFindSeesThisProcessAndItsChild(t *testing.T) {
	self := Find(t, func(p Process) bool { return p.Pid == os.Getpid() && p.Parent == os.Getppid() })
	if len(self) != 1 {
		t.Errorf("found %v for this process (pid %d, parent %d)", self, os.Getpid(), os.Getppid())
	}
	sleeper := exec.Command("sleep", "60")
	if err := sleeper.Start(); err != nil {
		t.Skip("no sleep(1):", err)
	}
	defer func() { sleeper.Process.Kill(); sleeper.Wait() }()
	children := Find(t, func(p Process) bool {
		return p.Parent == os.Getpid() && len(p.Cmdline) == 2 && p.Cmdline[1] == "60"
	})
	if !slices.Equal(children, []int{sleeper.Process.Pid}) {
		t.Errorf("children running sleep 60: %v, want [%d]", children, sleeper.Process.Pid)
	}
}
