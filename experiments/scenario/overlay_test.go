package scenario_test

import (
	"errors"
	"github.com/churnlab/churnlab/experiments/scenario"
	"github.com/churnlab/churnlab/experiments/scenariofile"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeFile(t *testing.T, dir, name, body string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

const header = "apiVersion: churnlab/v1\nkind: Scenario\n"

func TestExtendsMergesMappingsAndReplacesLists(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "base.yaml", header+"metadata: {name: base}\ncluster: {pods: 50, nodes: 5}\nevents:\n- {at: 10s, autoscale: {to: 60}}\n- {at: 20s, configChange: {}}\n")
	child := writeFile(t, dir, "child.yaml", header+"extends: base.yaml\nmetadata: {name: child}\ncluster: {pods: 70}\nevents:\n- {at: 5s, restartStorm: {fraction: 0.5}}\n")
	sc, err := scenariofile.Load(child)
	if err != nil {
		t.Fatal(err)
	}
	if sc.Metadata.Name != "child" || sc.Cluster.Pods != 70 || sc.Cluster.Nodes != 5 {
		t.Errorf("name %q, pods %d, nodes %d; want child, 70 (overridden), 5 (inherited)", sc.Metadata.Name, sc.Cluster.Pods, sc.Cluster.Nodes)
	}
	if len(sc.Events) != 1 || sc.Events[0].RestartStorm == nil {
		t.Errorf("events %+v, want the child's one restart storm: a list replaces the base's", sc.Events)
	}
}

func TestExtendsErrors(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "a.yaml", header+"extends: b.yaml\nmetadata: {name: a}\n")
	writeFile(t, dir, "b.yaml", header+"extends: a.yaml\nmetadata: {name: b}\n")
	missing := writeFile(t, dir, "missing.yaml", header+"extends: nowhere.yaml\nmetadata: {name: m}\n")
	for _, c := range []struct{ file, want string }{
		{filepath.Join(dir, "a.yaml"), "cycle"},
		{missing, "nowhere.yaml"},
	} {
		_, err := scenariofile.Load(c.file)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "extends") {
			t.Errorf("Load(%s) = %v, want an error at extends saying %q", filepath.Base(c.file), err, c.want)
		}
	}
}

func TestSetsOverrideFields(t *testing.T) {
	file := writeFile(t, t.TempDir(), "s.yaml", header+"metadata: {name: s}\nevents:\n- {at: 10s, autoscale: {to: 60}}\n")
	sc, err := scenariofile.Load(file, scenario.Set{"baseline.replicas", "12"}, scenario.Set{"events[0].at", "30s"}, scenario.Set{"model.etcd.fsync", "5ms"})
	if err != nil {
		t.Fatal(err)
	}
	if sc.Baseline.Replicas != 12 || sc.Events[0].At.D().Seconds() != 30 || sc.Model.Etcd.Fsync.D().Milliseconds() != 5 {
		t.Errorf("replicas %d, event at %s, fsync %s; want 12, 30s, 5ms", sc.Baseline.Replicas, sc.Events[0].At, sc.Model.Etcd.Fsync)
	}
	for _, c := range []struct {
		set  scenario.Set
		want string
	}{
		{scenario.Set{"baseline.replicaz", "3"}, `unknown field "replicaz"`},
		{scenario.Set{"baseline.replicas", "many"}, "want a whole number"},
		{scenario.Set{"events[3].at", "1s"}, "no item 3"},
		{scenario.Set{"cluster", "3"}, "want a mapping"},
		{scenario.Set{"baseline.replicas", "0"}, "baseline.replicas"},
	} {
		_, err := scenariofile.Load(file, c.set)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("set %s=%s: err = %v, want it to say %q", c.set.Path, c.set.Value, err, c.want)
		}
	}
	if _, err := scenario.ParseSet("novalue"); err == nil {
		t.Error(`ParseSet("novalue") accepted a set without "="`)
	}
}

// TestExtendsErrorsNameTheirFile: a problem in a field that came from the
// file a scenario extends names that file and its own line there, and one
// the extending file wrote names the extending file, whichever line
// numbers the two happen to share.
func TestExtendsErrorsNameTheirFile(t *testing.T) {
	dir := t.TempDir()
	// Line 5 of base.yaml is workload.baseLatency, line 7 cluster.nodes.
	base := writeFile(t, dir, "base.yaml", header+"metadata: {name: base}\nworkload:\n  baseLatency: 3 parsecs\ncluster:\n  nodes: 0\n")
	grand := writeFile(t, dir, "grand.yaml", header+"metadata: {name: grand}\nconfig:\n  hunts: many\n")
	writeFile(t, dir, "middle.yaml", header+"extends: grand.yaml\nmetadata: {name: middle}\n")
	cases := []struct {
		name, child string
		want        []string // each in the error
		not         []string // none in it
	}{
		{"bad unit and range in the base", header + "extends: base.yaml\nmetadata: {name: child}\n",
			[]string{base + `:5:16: workload.baseLatency: bad duration "3 parsecs"`, base + ":7:3: cluster.nodes: must be between 1 and 100000, got 0"},
			[]string{"child.yaml:5", "child.yaml:7"}},
		{"the child fixes one, writes another wrong", header + "extends: base.yaml\nmetadata: {name: child}\nworkload:\n  baseLatency: 1 fortnight\ncluster: {nodes: 3}\n",
			[]string{"child.yaml:6:16: workload.baseLatency: bad duration \"1 fortnight\""},
			[]string{"base.yaml"}},
		{"two files up", header + "extends: middle.yaml\nmetadata: {name: child}\n",
			[]string{grand + `:5:10: config.hunts: want a whole number, got "many"`},
			[]string{"middle.yaml:", "child.yaml:"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			child := writeFile(t, dir, "child.yaml", c.child)
			_, err := scenariofile.Load(child)
			if err == nil {
				t.Fatal("Load succeeded; want errors")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
			for _, n := range c.not {
				if strings.Contains(err.Error(), n) {
					t.Errorf("error names %q, the wrong file or line:\n%v", n, err)
				}
			}
		})
	}
}

// TestExtendsAbsolutePath: an absolute extends is used as it is, not
// joined to the extending file's directory; a relative one is from there.
func TestExtendsAbsolutePath(t *testing.T) {
	baseDir, childDir := t.TempDir(), t.TempDir()
	base := writeFile(t, baseDir, "base.yaml", header+"metadata: {name: base}\ncluster: {pods: 50, nodes: 5}\n")
	cases := []struct {
		name, extends string
		want          string // "" when it loads
	}{
		// happy
		{"absolute", base, ""},
		{"relative", "../" + filepath.Base(baseDir) + "/base.yaml", ""},
		// sad: an absolute path that is not there is named as written
		{"absolute, missing", filepath.Join(baseDir, "nowhere.yaml"), "open " + filepath.Join(baseDir, "nowhere.yaml") + ": no such file"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			child := writeFile(t, childDir, "child.yaml", header+"extends: "+c.extends+"\nmetadata: {name: child}\n")
			sc, err := scenariofile.Load(child)
			if c.want != "" {
				if err == nil || !strings.Contains(err.Error(), c.want) {
					t.Errorf("Load = %v; want an error saying %q", err, c.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if sc.Cluster.Pods != 50 {
				t.Errorf("pods %d, want 50 from %s", sc.Cluster.Pods, base)
			}
		})
	}
}

// TestSetErrorsNameTheSet: a problem with a --set's value or path says it
// comes from --set path=value, with no line, even where the field it
// replaces was written in the file (or in a file it extends, whose line
// numbers the extending file does not have).
func TestSetErrorsNameTheSet(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "base.yaml", header+"metadata: {name: base}\n\n\n\nworkload:\n  baseLatency: 25ms\nbaseline:\n  replicas: 3\n")
	child := writeFile(t, dir, "child.yaml", header+"extends: base.yaml\nmetadata: {name: child}\n")
	cases := []struct {
		set  scenario.Set
		want string // the whole line of the one problem
	}{
		{scenario.Set{"workload.baseLatency", "abc"}, `--set workload.baseLatency=abc: workload.baseLatency: bad duration "abc" (want e.g. 100ms, 5s, 6m)`},
		{scenario.Set{"baseline.replicas", "0"}, "--set baseline.replicas=0: baseline.replicas: must be between 1 and 1000, got 0"},
		{scenario.Set{"no.such.path", "1"}, `--set no.such.path=1: no: unknown field "no"`},
		{scenario.Set{"baseline.replicaz", "3"}, `--set baseline.replicaz=3: baseline.replicaz: unknown field "replicaz" (did you mean "replicas"?)`},
		{scenario.Set{"events[3].at", "1s"}, "--set events[3].at=1s: events[3].at: events has no item 3"},
		{scenario.Set{"workload", "3"}, "--set workload=3: workload: workload is not a single value"},
	}
	for _, c := range cases {
		t.Run(c.set.String(), func(t *testing.T) {
			_, err := scenariofile.Load(child, c.set)
			var list *scenario.Errors
			if !errors.As(err, &list) || len(list.List) != 1 {
				t.Fatalf("Load = %v; want one problem", err)
			}
			if got := list.List[0]; got.Error() != c.want || got.File != c.set.String() || got.Pos != (scenario.Pos{}) {
				t.Errorf("got %q (%#v)\nwant %q, from the set and at no line", got.Error(), got, c.want)
			}
		})
	}
}
