// Package uplink is the shared link config leaves the config store by in a
// live run: one token bucket, in bytes per second, that every connection
// accepted through its listeners writes through, as every transfer in
// 2023 shared the store's 1 Gbps uplink (SEED-FACTS F5, F6). It counts the
// bytes that crossed it, which the live runner records as egress.
//
//	link := uplink.New(12.5e6)               // 100 Mbps
//	srv.Serve(link.Listen(l))                // every response pays the link
//	sent := link.Bytes()
package uplink
