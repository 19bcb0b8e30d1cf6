package runner

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/churnlab/churnlab/experiments/scenario"
)

// TestKindTargetSurfacesTheEngine: with a container engine that cannot
// run containers (here a fake docker on PATH whose daemon is down), the
// kind target's error carries what the engine said, not only kind's
// "exit status 1", and the run deletes no cluster, since it created none.
func TestKindTargetSurfacesTheEngine(t *testing.T) {
	bin := t.TempDir()
	calls := filepath.Join(bin, "calls.txt")
	fake := `#!/bin/sh
echo "$@" >> ` + calls + `
case "$1" in
-v) echo "Docker version 27.0.3, build 7d4bcd8"; exit 0 ;;
esac
echo "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?" >&2
exit 1
`
	if err := os.WriteFile(filepath.Join(bin, "docker"), []byte(fake), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	target, err := NewTarget("kind", TargetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sc := &scenario.Scenario{}
	sc.Cluster.Nodes = 1
	var progress bytes.Buffer
	_, err = target.Up(context.Background(), sc, &progress)
	if err == nil {
		t.Fatal("Up succeeded with a docker whose daemon is down")
	}
	for _, want := range []string{"kind target: creating cluster churnlab-", "exit status 1", "docker said: Cannot connect to the Docker daemon"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if strings.Contains(progress.String(), "deleting cluster") {
		t.Errorf("the run tried to delete a cluster it never created:\n%s", progress.String())
	}
	log, _ := os.ReadFile(calls)
	for _, line := range strings.Split(strings.TrimSpace(string(log)), "\n") {
		if f := strings.Fields(line); len(f) > 0 && (f[0] == "ps" || f[0] == "rm") {
			t.Errorf("docker %s was run: looking for or removing a cluster the run never created (calls: %q)", line, log)
		}
	}
}
