// Package cache holds the reference service's two cache tiers (R5):
//
//   - L1, an in-process LRU of fragments keyed by hunt and version,
//     bounded in entries and in bytes (default 1000 entries of 512 B);
//
//   - L2, a node-local directory (a tmpfs hostPath in production) shared by
//     a node's pods through the agent, keyed by hunt and version, written
//     atomically (temporary file, then rename) with a checksum, so that a
//     torn or corrupt file is detected and refetched rather than served.
//
//     l1 := cache.NewL1(1000, 512*1000)
//     l1.Put(cache.Key{Hunt: "h-17", Version: 42}, fragment)
//     l2, err := cache.OpenL2("/var/run/churnlab/l2")
//     err = l2.Put(key, fragment)
//     fragment, err := l2.Get(key) // ErrMiss, or ErrCorrupt after removing the bad file
package cache
