package scenario

import (
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
	sc, err := Load(child)
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
		_, err := Load(c.file)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "extends") {
			t.Errorf("Load(%s) = %v, want an error at extends saying %q", filepath.Base(c.file), err, c.want)
		}
	}
}

func TestSetsOverrideFields(t *testing.T) {
	file := writeFile(t, t.TempDir(), "s.yaml", header+"metadata: {name: s}\nevents:\n- {at: 10s, autoscale: {to: 60}}\n")
	sc, err := Load(file, Set{"baseline.replicas", "12"}, Set{"events[0].at", "30s"}, Set{"model.etcd.fsync", "5ms"})
	if err != nil {
		t.Fatal(err)
	}
	if sc.Baseline.Replicas != 12 || sc.Events[0].At.D().Seconds() != 30 || sc.Model.Etcd.Fsync.D().Milliseconds() != 5 {
		t.Errorf("replicas %d, event at %s, fsync %s; want 12, 30s, 5ms", sc.Baseline.Replicas, sc.Events[0].At, sc.Model.Etcd.Fsync)
	}
	for _, c := range []struct {
		set  Set
		want string
	}{
		{Set{"baseline.replicaz", "3"}, `unknown field "replicaz"`},
		{Set{"baseline.replicas", "many"}, "want a whole number"},
		{Set{"events[3].at", "1s"}, "no item 3"},
		{Set{"cluster", "3"}, "want a mapping"},
		{Set{"baseline.replicas", "0"}, "baseline.replicas"},
	} {
		_, err := Load(file, c.set)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("set %s=%s: err = %v, want it to say %q", c.set.Path, c.set.Value, err, c.want)
		}
	}
	if _, err := ParseSet("novalue"); err == nil {
		t.Error(`ParseSet("novalue") accepted a set without "="`)
	}
}
