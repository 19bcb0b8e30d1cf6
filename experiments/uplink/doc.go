// Package uplink is the shared link config leaves the config store by in a
// live run, as every transfer in 2023 shared the store's 1 Gbps uplink
// (SEED-FACTS F5, F6). Config servers listen through it, and it counts
// the bytes that crossed it, which the live runner records as egress.
//
// There are two kinds. Link (the default) is one token bucket in this
// process, in bytes per second, that every accepted connection writes
// through. TC is the kernel's: a network namespace joined by a veth pair
// whose egress a tbf qdisc shapes, with the servers listening inside it
// (root only).
//
//	link := uplink.New(12.5e6)               // 100 Mbps
//	l, err := link.Listen("")                // every response pays the link
//	sent := link.Bytes()
package uplink
