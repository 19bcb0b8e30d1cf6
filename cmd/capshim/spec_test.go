package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestSpecFileFollowsRuncsCommandLine(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--root", "/run/r", "--log", "/l.json", "--log-format", "json", "create", "--bundle", "/b", "id"}, "/b/config.json"},
		{[]string{"--systemd-cgroup", "create", "-b=/b2", "id"}, "/b2/config.json"},
		{[]string{"run", "id"}, "config.json"},
		{[]string{"--root", "/run/r", "exec", "--process", "/tmp/p.json", "--detach", "id"}, "/tmp/p.json"},
		{[]string{"--root", "/run/r", "start", "id"}, ""},
		{[]string{"--root", "/run/r", "delete", "--force", "id"}, ""},
		{[]string{"--version"}, ""},
		{nil, ""},
	} {
		if got := specFile(tc.args); got != tc.want {
			t.Errorf("specFile(%q) = %q, want %q", tc.args, got, tc.want)
		}
	}
}

// A privileged container's config.json loses the missing capability from
// every set, and keeps the rest of the spec, unknown keys included.
func TestDropUngrantableRewritesTheSpec(t *testing.T) {
	all := []string{"CAP_CHOWN", "CAP_SYS_ADMIN", "CAP_SYS_RESOURCE", "CAP_BPF"}
	spec := map[string]any{
		"ociVersion": "1.0.2",
		"process": map[string]any{
			"args": []string{"/sbin/init"},
			"capabilities": map[string]any{
				"bounding": all, "effective": all, "permitted": all, "inheritable": all,
			},
			"x-unknown": 7,
		},
		"linux": map[string]any{"namespaces": []any{map[string]any{"type": "pid"}}},
	}
	file := filepath.Join(t.TempDir(), "config.json")
	raw, _ := json.Marshal(spec)
	if err := os.WriteFile(file, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	missing := map[string]bool{"CAP_SYS_RESOURCE": true}
	if err := dropUngrantable(file, missing); err != nil {
		t.Fatal(err)
	}
	var got struct {
		OCIVersion string `json:"ociVersion"`
		Process    struct {
			Args         []string            `json:"args"`
			Capabilities map[string][]string `json:"capabilities"`
			Unknown      int                 `json:"x-unknown"`
		} `json:"process"`
		Linux map[string]any `json:"linux"`
	}
	out, _ := os.ReadFile(file)
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatal(err)
	}
	want := []string{"CAP_CHOWN", "CAP_SYS_ADMIN", "CAP_BPF"}
	for _, set := range []string{"bounding", "effective", "permitted", "inheritable"} {
		if !slices.Equal(got.Process.Capabilities[set], want) {
			t.Errorf("%s = %v, want %v", set, got.Process.Capabilities[set], want)
		}
	}
	if got.OCIVersion != "1.0.2" || got.Process.Unknown != 7 || len(got.Process.Args) != 1 || got.Linux["namespaces"] == nil {
		t.Errorf("the rest of the spec changed:\n%s", out)
	}

	// runc exec's process file holds the capabilities at its top level.
	process := filepath.Join(t.TempDir(), "process.json")
	os.WriteFile(process, []byte(`{"args":["sh"],"capabilities":{"bounding":["CAP_SYS_RESOURCE","CAP_KILL"]}}`), 0o600)
	if err := dropUngrantable(process, missing); err != nil {
		t.Fatal(err)
	}
	out, _ = os.ReadFile(process)
	var p struct {
		Capabilities map[string][]string `json:"capabilities"`
	}
	json.Unmarshal(out, &p)
	if !slices.Equal(p.Capabilities["bounding"], []string{"CAP_KILL"}) {
		t.Errorf("process file: %s", out)
	}
}

// A spec that asks for nothing missing is not rewritten, byte for byte.
func TestDropUngrantableLeavesOthersAlone(t *testing.T) {
	file := filepath.Join(t.TempDir(), "config.json")
	in := []byte(`{"process": {"capabilities": {"bounding": ["CAP_KILL"]}},   "z": 1}`)
	os.WriteFile(file, in, 0o600)
	if err := dropUngrantable(file, map[string]bool{"CAP_SYS_RESOURCE": true}); err != nil {
		t.Fatal(err)
	}
	if out, _ := os.ReadFile(file); string(out) != string(in) {
		t.Errorf("rewritten:\n%s", out)
	}
	os.WriteFile(file, []byte(`{"process": `), 0o600)
	if err := dropUngrantable(file, map[string]bool{"CAP_SYS_RESOURCE": true}); err == nil {
		t.Error("a broken config.json: no error")
	}
}
