package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// specFile returns the file that holds the capabilities of the process
// runc is about to start, "" when the call starts none: config.json in the
// bundle for create and run, the --process file for exec. runc's global
// flags come before the command; those that take a value are skipped with
// it.
func specFile(args []string) string {
	valued := map[string]bool{"--root": true, "--log": true, "--log-format": true, "--criu": true, "--rootless": true}
	i := 0
	for i < len(args) && strings.HasPrefix(args[i], "-") {
		if valued[args[i]] {
			i++
		}
		i++
	}
	if i >= len(args) {
		return ""
	}
	command, rest := args[i], args[i+1:]
	switch command {
	case "create", "run":
		bundle := flagValue(rest, "--bundle", "-b")
		if bundle == "" {
			bundle = "."
		}
		return filepath.Join(bundle, "config.json")
	case "exec":
		return flagValue(rest, "--process", "-p")
	}
	return ""
}

// flagValue returns the value of the flag called long or short in args,
// written as "--flag value" or "--flag=value".
func flagValue(args []string, long, short string) string {
	for i, a := range args {
		for _, name := range []string{long, short} {
			if a == name && i+1 < len(args) {
				return args[i+1]
			}
			if v, ok := strings.CutPrefix(a, name+"="); ok {
				return v
			}
		}
	}
	return ""
}

// dropUngrantable rewrites file, an OCI runtime spec (config.json) or
// process (runc exec --process), without the capabilities in missing.
// The file is left untouched when it asks for none of them.
func dropUngrantable(file string, missing map[string]bool) error {
	raw, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	out, changed, err := withoutUngrantable(raw, missing)
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	if !changed {
		return nil
	}
	st, err := os.Stat(file)
	if err != nil {
		return err
	}
	return os.WriteFile(file, out, st.Mode().Perm())
}

// withoutUngrantable returns spec without the capabilities in missing,
// in each of the process's capability sets. spec is a whole runtime spec
// (capabilities under "process") or a process on its own (runc exec). Keys
// capshim does not know are kept as they are.
func withoutUngrantable(spec []byte, missing map[string]bool) ([]byte, bool, error) {
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(spec, &doc); err != nil {
		return nil, false, err
	}
	if process, ok := doc["process"]; ok {
		inner, changed, err := withoutUngrantable(process, missing)
		if err != nil || !changed {
			return spec, false, err
		}
		doc["process"] = inner
		out, err := json.Marshal(doc)
		return out, true, err
	}
	rawCaps, ok := doc["capabilities"]
	if !ok || bytes.Equal(bytes.TrimSpace(rawCaps), []byte("null")) {
		return spec, false, nil
	}
	var sets map[string][]string
	if err := json.Unmarshal(rawCaps, &sets); err != nil {
		return nil, false, fmt.Errorf("capabilities: %w", err)
	}
	changed := false
	for set, names := range sets {
		kept := names[:0:0]
		for _, name := range names {
			if missing[name] {
				changed = true
			} else {
				kept = append(kept, name)
			}
		}
		sets[set] = kept
	}
	if !changed {
		return spec, false, nil
	}
	caps, err := json.Marshal(sets)
	if err != nil {
		return nil, false, err
	}
	doc["capabilities"] = caps
	out, err := json.Marshal(doc)
	return out, true, err
}
