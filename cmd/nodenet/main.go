// Command nodenet is the pod network of churnlab's kind clusters, run on
// every node by a DaemonSet (the node image's /kind/manifests/default-cni.yaml,
// which kind applies). It does what kind's kindnet does, with Debian's CNI
// plugins, for a cluster that can pull no image:
//
//   - it writes the node's CNI config: ptp and host-local IPAM over the
//     node's pod CIDR, and portmap;
//   - it routes every other node's pod CIDR through that node's address;
//   - it routes its own pod CIDR, under the pods' own /32 routes, to the
//     node itself, so that a connection to an address with no pod behind
//     it (a pod that is gone) is refused at once, by the node's TCP
//     stack, as a deleted pod's closed port is. Without it such a packet
//     leaves by the node's default route and loops back from the engine's
//     bridge, and a client (a load balancer still sending to a deleted
//     pod) waits out its timeout. An "unreachable" route would answer
//     with ICMP, which the kernel rate-limits to about one a second per
//     sender: most connections would still wait.
//
// Pods reach each other and the nodes; nothing is masqueraded, since the
// cluster's traffic never leaves the engine's bridge.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

func main() {
	cniDir := flag.String("cni-conf-dir", "/etc/cni/net.d", "where the node's container runtime reads CNI configs")
	every := flag.Duration("every", 5*time.Second, "how often the config and routes are checked against the nodes")
	flag.Parse()
	node := os.Getenv("NODE_NAME")
	if node == "" {
		log.Fatal("nodenet: NODE_NAME is not set (the DaemonSet passes spec.nodeName)")
	}
	config, err := clusterConfig()
	if err != nil {
		log.Fatalf("nodenet: %v", err)
	}
	kube, err := kubernetes.NewForConfig(config)
	if err != nil {
		log.Fatalf("nodenet: %v", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	for {
		if err := sync(ctx, kube, node, *cniDir); err != nil {
			log.Printf("nodenet: %v", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(*every):
		}
	}
}

// clusterConfig is the in-cluster config, pointed at CONTROL_PLANE_ENDPOINT
// when kind set it: the kubernetes Service needs kube-proxy, which may
// itself be waiting for the pod network.
func clusterConfig() (*rest.Config, error) {
	config, err := rest.InClusterConfig()
	if err != nil {
		return nil, err
	}
	if endpoint := os.Getenv("CONTROL_PLANE_ENDPOINT"); endpoint != "" {
		config.Host = "https://" + endpoint
	}
	return config, nil
}

// sync writes this node's CNI config and routes the other nodes' pod CIDRs.
func sync(ctx context.Context, kube kubernetes.Interface, self, cniDir string) error {
	nodes, err := kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("listing nodes: %w", err)
	}
	for _, n := range nodes.Items {
		if n.Spec.PodCIDR == "" {
			continue
		}
		if n.Name == self {
			if err := writeConfig(cniDir, n.Spec.PodCIDR); err != nil {
				return err
			}
			if err := refuseGone(n.Spec.PodCIDR); err != nil {
				log.Printf("nodenet: %v", err)
			}
			continue
		}
		if err := route(n); err != nil {
			log.Printf("nodenet: %v", err)
		}
	}
	return nil
}

// refuseGone routes this node's pod CIDR to the node itself (a route of
// type local in the main table): each pod's own /32 route (the ptp
// plugin's) is more specific, so only addresses with no pod behind them
// take it, and the node's TCP stack refuses their connections.
func refuseGone(podCIDR string) error {
	_, dst, err := net.ParseCIDR(podCIDR)
	if err != nil {
		return fmt.Errorf("this node's pod CIDR %q: %w", podCIDR, err)
	}
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return err
	}
	r := &netlink.Route{Dst: dst, Type: unix.RTN_LOCAL, LinkIndex: lo.Attrs().Index, Scope: netlink.SCOPE_HOST, Table: unix.RT_TABLE_MAIN}
	if err := netlink.RouteReplace(r); err != nil {
		return fmt.Errorf("the route that refuses gone pods' connections, %s: %w", dst, err)
	}
	return nil
}

func route(n corev1.Node) error {
	_, dst, err := net.ParseCIDR(n.Spec.PodCIDR)
	if err != nil {
		return fmt.Errorf("node %s: pod CIDR %q: %w", n.Name, n.Spec.PodCIDR, err)
	}
	for _, a := range n.Status.Addresses {
		if a.Type != corev1.NodeInternalIP {
			continue
		}
		gw := net.ParseIP(a.Address)
		if gw == nil || (gw.To4() == nil) != (dst.IP.To4() == nil) {
			continue
		}
		if err := netlink.RouteReplace(&netlink.Route{Dst: dst, Gw: gw}); err != nil {
			return fmt.Errorf("route to node %s's pods %s via %s: %w", n.Name, dst, gw, err)
		}
		return nil
	}
	return fmt.Errorf("node %s has no internal address of its pod CIDR's family", n.Name)
}

// writeConfig writes the CNI config for pods in podCIDR, atomically, and
// only when it changed.
func writeConfig(dir, podCIDR string) error {
	conf := map[string]any{
		"cniVersion": "0.4.0",
		"name":       "churnlab",
		"plugins": []any{
			map[string]any{
				"type": "ptp",
				"ipam": map[string]any{
					"type":   "host-local",
					"ranges": [][]map[string]string{{{"subnet": podCIDR}}},
					"routes": []map[string]string{{"dst": "0.0.0.0/0"}},
				},
				"mtu": 1500,
			},
			map[string]any{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}},
		},
	}
	raw, err := json.MarshalIndent(conf, "", "  ")
	if err != nil {
		return err
	}
	file := filepath.Join(dir, "10-churnlab.conflist")
	if old, err := os.ReadFile(file); err == nil && string(old) == string(raw) {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp := file + ".tmp"
	if err := os.WriteFile(tmp, raw, 0o644); err != nil {
		return err
	}
	log.Printf("nodenet: pods on this node get addresses in %s (%s)", podCIDR, file)
	return os.Rename(tmp, file)
}
