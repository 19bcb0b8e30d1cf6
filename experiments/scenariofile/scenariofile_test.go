package scenariofile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLoadShowsPathsAsGiven: a file loads by a relative or an absolute
// path, extends a base by a relative or an absolute path, and a problem
// in the base names the base the way the user's path reached it.
func TestLoadShowsPathsAsGiven(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte("apiVersion: churnlab/v1\nkind: Scenario\n"+text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("base.yaml", "metadata: {name: base}\ncluster: {nodes: 0}\n")
	write("child.yaml", "extends: base.yaml\nmetadata: {name: child}\n")
	write("abs.yaml", "extends: "+filepath.Join(dir, "base.yaml")+"\nmetadata: {name: abs}\n")

	_, err := Load(filepath.Join(dir, "child.yaml"))
	if want := filepath.Join(dir, "base.yaml") + ":4:"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("absolute load: %v; want the base's problem at %s", err, want)
	}
	_, err = Load(filepath.Join(dir, "abs.yaml"))
	if want := filepath.Join(dir, "base.yaml") + ":4:"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("absolute extends: %v; want the base's problem at %s", err, want)
	}
	t.Chdir(dir)
	_, err = Load("child.yaml")
	if err == nil || !strings.HasPrefix(err.Error(), "base.yaml:4:") {
		t.Errorf("relative load: %v; want the base's problem at base.yaml:4", err)
	}
	write("good.yaml", "metadata: {name: good}\n")
	sc, err := Load("good.yaml")
	if err != nil || sc.File() != "good.yaml" {
		t.Errorf("Load(good.yaml) = %v, %v; want it loaded and named good.yaml", sc, err)
	}
	if _, err := Load("missing.yaml"); err == nil || !strings.Contains(err.Error(), "open missing.yaml: no such file") {
		t.Errorf("a missing file: %v; want it named as given", err)
	}
}
