package kindnode

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/churnlab/churnlab/internal/debian"
	"github.com/churnlab/churnlab/internal/lines"
)

// Suite is the Debian release the node's rootfs comes from: this
// machine's own, so that the glibc of binaries built here matches it.
const Suite = "bookworm"

// mirror is Debian's archive, which these machines reach.
const mirror = "http://deb.debian.org/debian"

// packages are what a 1.34 node needs of kind's base Dockerfile
// (images/base/Dockerfile in the kind module), plus containerd, runc and
// the CNI plugins, which kind builds from source and Debian packages. NFS,
// iSCSI and fuse-overlayfs (for storage kind's tests use, and rootless
// engines) are left out.
var packages = []string{
	"systemd", "systemd-sysv", "dbus",
	"containerd", "runc", "containernetworking-plugins",
	"conntrack", "iptables", "nftables", "iproute2", "ethtool", "util-linux", "mount", "kmod",
	"libseccomp2", "pigz", "e2fsprogs", "socat",
	"bash", "ca-certificates", "curl", "jq", "procps",
}

// trimmed are the units and wants kind's base Dockerfile removes, so that
// systemd in a container starts only what a node runs.
var trimmed = []string{
	"lib/systemd/system/sysinit.target.wants/systemd-tmpfiles-setup.service",
	"lib/systemd/system/multi-user.target.wants/*",
	"etc/systemd/system/*.wants/*",
	"lib/systemd/system/local-fs.target.wants/*",
	"lib/systemd/system/sockets.target.wants/*udev*",
	"lib/systemd/system/sockets.target.wants/*initctl*",
	"lib/systemd/system/basic.target.wants/*",
}

// rootfsKey names a rootfs by what it is made of.
func rootfsKey() string {
	h := sha256.New()
	fmt.Fprintln(h, Suite, mirror, strings.Join(packages, ","), strings.Join(trimmed, ","))
	return hex.EncodeToString(h.Sum(nil))[:12]
}

// ensureRootfs returns the node's base rootfs under cache, made by
// debootstrap the first time (about 2 minutes) and kept.
func ensureRootfs(ctx context.Context, cache string, progress io.Writer) (string, error) {
	dir := filepath.Join(cache, "rootfs-"+rootfsKey())
	if _, err := os.Stat(filepath.Join(dir, "etc/os-release")); err == nil {
		return dir, nil
	}
	if err := debian.Ensure(ctx, "debootstrap", "debootstrap", "about 10 s", progress); err != nil {
		return "", fmt.Errorf("node image: %w", err)
	}
	tmp := dir + ".partial"
	os.RemoveAll(tmp)
	lines.Say(progress, "node image: debootstrap of Debian %s with %d packages into %s (about 2 min, once per machine)", Suite, len(packages), dir)
	start := time.Now()
	cmd := exec.CommandContext(ctx, "debootstrap", "--variant=minbase", "--include="+strings.Join(packages, ","), Suite, tmp, mirror)
	if out, err := cmd.CombinedOutput(); err != nil {
		os.RemoveAll(tmp)
		return "", fmt.Errorf("debootstrap %s: %w\n%s", Suite, err, lines.Last(string(out), 15))
	}
	for _, pattern := range trimmed {
		matches, _ := filepath.Glob(filepath.Join(tmp, pattern))
		for _, m := range matches {
			os.Remove(m)
		}
	}
	if err := appendLine(filepath.Join(tmp, "etc/systemd/journald.conf"), "ReadKMsg=no"); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, dir); err != nil {
		return "", err
	}
	lines.Say(progress, "node image: rootfs ready in %s", time.Since(start).Round(time.Second))
	return dir, nil
}

func appendLine(file, line string) error {
	f, err := os.OpenFile(file, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintln(f, line); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
