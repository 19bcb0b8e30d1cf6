package uplink

import (
	"bytes"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestTCShapesInItsOwnNamespace builds the kernel uplink at 8 Mbit/s,
// sends through it, and checks the qdisc, the byte count and that Close
// removes the namespace and the veth pair.
func TestTCShapesInItsOwnNamespace(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	if _, err := exec.LookPath("tc"); err != nil {
		t.Skip("needs tc(8)")
	}
	link, err := NewTC(1e6)
	if err != nil {
		t.Fatal(err)
	}
	defer link.Close()
	qdisc, err := exec.Command("ip", "netns", "exec", link.name, "tc", "qdisc", "show", "dev", link.nsIf).CombinedOutput()
	if err != nil || !bytes.Contains(qdisc, []byte("tbf")) || !bytes.Contains(qdisc, []byte("rate 8Mbit")) {
		t.Errorf("qdisc in the namespace: %s (%v); want tbf at 8Mbit", qdisc, err)
	}
	payload := bytes.Repeat([]byte("z"), 300_000)
	s := serveOnce(t, link, payload)
	if !strings.HasPrefix(s.addr, link.nsIP+":") {
		t.Errorf("listening on %s, want the namespace's address %s", s.addr, link.nsIP)
	}
	c, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(io.LimitReader(c, int64(len(payload))))
	c.Close()
	if err != nil || !bytes.Equal(got, payload) {
		t.Fatalf("read %d of %d bytes: %v", len(got), len(payload), err)
	}
	if err := <-s.result; err != nil {
		t.Fatal(err)
	}
	if sent := link.Bytes(); sent < int64(len(payload)) {
		t.Errorf("the veth counted %d bytes out of the namespace, fewer than the %d sent", sent, len(payload))
	}
	if err := link.Close(); err != nil {
		t.Fatal(err)
	}
	list, _ := exec.Command("ip", "netns", "list").CombinedOutput()
	links, _ := exec.Command("ip", "link", "show").CombinedOutput()
	if bytes.Contains(list, []byte(link.name)) || bytes.Contains(links, []byte(link.hostIf)) {
		t.Errorf("left behind after Close: netns %s or veth %s", link.name, link.hostIf)
	}
}
