package uplink

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// TC is an uplink made by the kernel instead of a token bucket: a network
// namespace of its own, joined to this one by a veth pair, whose egress
// is shaped by a tbf qdisc. Config servers listen inside the namespace;
// everything they send to pods crosses the veth, at most at its rate.
// It needs root, ip(8) and tc(8). Close removes the namespace, and with
// it the veth pair.
type TC struct {
	name           string // of the namespace
	hostIf, nsIf   string
	hostIP, nsIP   string
	rxBytesAtStart int64
}

var tcCount atomic.Int64

// NewTC creates the namespace and veth pair and shapes the namespace's
// egress to bytesPerSecond.
func NewTC(bytesPerSecond float64) (_ *TC, err error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("uplink: tc needs root (network namespaces and qdiscs)")
	}
	if bytesPerSecond <= 0 {
		return nil, fmt.Errorf("uplink: tc needs a positive rate, got %g bytes/s", bytesPerSecond)
	}
	for _, tool := range []string{"ip", "tc"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("uplink: tc needs %s(8) (Debian package iproute2): %w", tool, err)
		}
	}
	n := tcCount.Add(1)
	id := fmt.Sprintf("%d-%d", os.Getpid()%100000, n)
	subnet := fmt.Sprintf("10.%d.%d", 200+n%50, os.Getpid()%250)
	t := &TC{
		name:   "churnlab-" + id,
		hostIf: "clh" + id, nsIf: "cln" + id,
		hostIP: subnet + ".1", nsIP: subnet + ".2",
	}
	defer func() {
		if err != nil {
			t.Close()
		}
	}()
	rate := int64(bytesPerSecond * 8)
	burst := max(int64(chunk), int64(bytesPerSecond/100)) // at least one timer tick's worth
	steps := [][]string{
		{"ip", "netns", "add", t.name},
		{"ip", "link", "add", t.hostIf, "type", "veth", "peer", "name", t.nsIf},
		{"ip", "link", "set", t.nsIf, "netns", t.name},
		{"ip", "addr", "add", t.hostIP + "/30", "dev", t.hostIf},
		{"ip", "link", "set", t.hostIf, "up"},
		{"ip", "netns", "exec", t.name, "ip", "addr", "add", t.nsIP + "/30", "dev", t.nsIf},
		{"ip", "netns", "exec", t.name, "ip", "link", "set", t.nsIf, "up"},
		{"ip", "netns", "exec", t.name, "ip", "link", "set", "lo", "up"},
		{"ip", "netns", "exec", t.name, "tc", "qdisc", "add", "dev", t.nsIf, "root", "tbf",
			"rate", strconv.FormatInt(rate, 10) + "bit", "burst", strconv.FormatInt(burst, 10), "latency", "200ms"},
	}
	for _, s := range steps {
		if out, err := exec.Command(s[0], s[1:]...).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("uplink: %s: %v: %s", strings.Join(s, " "), err, bytes.TrimSpace(out))
		}
	}
	if t.rxBytesAtStart, err = t.rxBytes(); err != nil {
		return nil, err
	}
	return t, nil
}

// Listen listens on addr inside the namespace; "" picks a free port on
// the namespace's address. Connections to it from this namespace cross
// the shaped veth.
func (t *TC) Listen(addr string) (net.Listener, error) {
	if addr == "" {
		addr = net.JoinHostPort(t.nsIP, "0")
	}
	// A socket belongs to the namespace of the thread that creates it.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	here, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		return nil, fmt.Errorf("uplink: %w", err)
	}
	defer here.Close()
	there, err := os.Open("/run/netns/" + t.name)
	if err != nil {
		return nil, fmt.Errorf("uplink: %w", err)
	}
	defer there.Close()
	if err := unix.Setns(int(there.Fd()), unix.CLONE_NEWNET); err != nil {
		return nil, fmt.Errorf("uplink: entering namespace %s: %w", t.name, err)
	}
	l, listenErr := net.Listen("tcp", addr)
	if err := unix.Setns(int(here.Fd()), unix.CLONE_NEWNET); err != nil {
		// The thread is stuck in the namespace: keep it locked, so that
		// it exits with this goroutine instead of running others.
		runtime.LockOSThread()
		if l != nil {
			l.Close()
		}
		return nil, fmt.Errorf("uplink: leaving namespace %s: %w", t.name, err)
	}
	return l, listenErr
}

// Bytes returns how many bytes have left the namespace since NewTC: what
// the host end of the veth received.
func (t *TC) Bytes() int64 {
	n, err := t.rxBytes()
	if err != nil {
		return 0
	}
	return n - t.rxBytesAtStart
}

func (t *TC) rxBytes() (int64, error) {
	data, err := os.ReadFile("/sys/class/net/" + t.hostIf + "/statistics/rx_bytes")
	if err != nil {
		return 0, fmt.Errorf("uplink: %w", err)
	}
	return strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
}

// Close removes the namespace; the veth pair goes with it.
func (t *TC) Close() error {
	out, err := exec.Command("ip", "netns", "del", t.name).CombinedOutput()
	if err != nil && !bytes.Contains(out, []byte("No such file")) {
		return fmt.Errorf("uplink: ip netns del %s: %v: %s", t.name, err, bytes.TrimSpace(out))
	}
	// A veth whose peer never left this namespace is not removed with it.
	_ = exec.Command("ip", "link", "del", t.hostIf).Run()
	return nil
}
