package controlplane

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// launchEtcd starts etcd with its data under dir on two free loopback
// ports and waits until it is healthy. It returns the process (even when
// the wait fails, so that the caller stops it) and the client URL.
func launchEtcd(ctx context.Context, dir, binDir string) (*process, string, error) {
	client, err := freePort()
	if err != nil {
		return nil, "", err
	}
	peer, err := freePort()
	if err != nil {
		return nil, "", err
	}
	return launchEtcdOn(ctx, dir, binDir, client, peer)
}

func launchEtcdOn(ctx context.Context, dir, binDir string, client, peer int) (*process, string, error) {
	url := "http://127.0.0.1:" + itoa(client)
	peerURL := "http://127.0.0.1:" + itoa(peer)
	p, err := startProcess(dir, "etcd", filepath.Join(binDir, "etcd"),
		"--name=default", "--data-dir="+filepath.Join(dir, "etcd-data"),
		"--listen-client-urls="+url, "--advertise-client-urls="+url,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=default="+peerURL,
		"--unsafe-no-fsync", // a throwaway cluster on a shared disk; fsync only adds noise
		"--log-level=warn")
	if err != nil {
		return nil, "", err
	}
	return p, url, p.waitReady(ctx, url+"/health", "", 30*time.Second)
}

// Etcd is a standalone etcd server in a temporary directory: the
// reference service's store in tests and live runs, apart from the
// control plane's own.
type Etcd struct {
	Endpoint string // client URL

	binDir, dir          string
	clientPort, peerPort int
	mu                   sync.Mutex
	proc                 *process
}

// StartEtcd starts etcd from binDir (see EnsureBuilt) and waits until it
// is healthy.
func StartEtcd(ctx context.Context, binDir string) (*Etcd, error) {
	dir, err := os.MkdirTemp("", "churnlab-etcd-")
	if err != nil {
		return nil, fmt.Errorf("controlplane: %w", err)
	}
	e := &Etcd{binDir: binDir, dir: dir}
	if e.clientPort, err = freePort(); err == nil {
		e.peerPort, err = freePort()
	}
	if err == nil {
		e.proc, e.Endpoint, err = launchEtcdOn(ctx, dir, binDir, e.clientPort, e.peerPort)
	}
	if err != nil {
		e.Stop()
		return nil, err
	}
	return e, nil
}

// Kill stops the server at once, as a crash would, keeping its data.
func (e *Etcd) Kill() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.proc != nil {
		e.proc.stop(0)
		e.proc = nil
	}
}

// Restart starts a killed server again on the same data and the same
// ports, and waits until it is healthy.
func (e *Etcd) Restart(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.proc != nil {
		return fmt.Errorf("controlplane: etcd is still running")
	}
	p, _, err := launchEtcdOn(ctx, e.dir, e.binDir, e.clientPort, e.peerPort)
	e.proc = p
	return err
}

// Pid returns the server's process id, or 0 when it is not running.
func (e *Etcd) Pid() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.proc == nil {
		return 0
	}
	return e.proc.cmd.Process.Pid
}

// Stop stops the server and removes its directory.
func (e *Etcd) Stop() {
	e.Kill()
	os.RemoveAll(e.dir)
}
