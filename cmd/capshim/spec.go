package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// capabilityNames are Linux's capabilities by number
// (include/uapi/linux/capability.h), as OCI specs name them.
var capabilityNames = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER",
	"CAP_FSETID", "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP",
	"CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST",
	"CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
	"CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
	"CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
	"CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD",
	"CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP",
	"CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
	"CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
	"CAP_CHECKPOINT_RESTORE",
}

// ungrantable returns the capabilities, by name, that this process's
// bounding set lacks (from /proc/self/status): what no container started
// here can be given.
func ungrantable() (map[string]bool, error) {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return nil, err
	}
	return ungrantableIn(status)
}

func ungrantableIn(status []byte) (map[string]bool, error) {
	for _, line := range strings.Split(string(status), "\n") {
		hex, ok := strings.CutPrefix(line, "CapBnd:")
		if !ok {
			continue
		}
		bits, err := strconv.ParseUint(strings.TrimSpace(hex), 16, 64)
		if err != nil {
			return nil, fmt.Errorf("CapBnd %q in /proc/self/status: %w", strings.TrimSpace(hex), err)
		}
		missing := map[string]bool{}
		for i, name := range capabilityNames {
			if bits&(1<<i) == 0 {
				missing[name] = true
			}
		}
		return missing, nil
	}
	return nil, fmt.Errorf("no CapBnd line in /proc/self/status")
}

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
