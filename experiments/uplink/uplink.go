package uplink

import (
	"context"
	"net"
	"sync/atomic"

	"golang.org/x/time/rate"
)

// chunk is the most a write takes from the bucket at once, and its burst:
// a transfer starts at once but cannot run ahead of the rate by more.
const chunk = 32 << 10

// Uplink is the shared link config leaves the store by. Its methods are
// safe for concurrent use.
type Uplink interface {
	// Listen listens on addr ("" for a free port) so that everything
	// sent on accepted connections crosses the uplink.
	Listen(addr string) (net.Listener, error)
	Bytes() int64 // sent across the uplink so far
	Close() error
}

// Link is an uplink made of one token bucket in this process.
type Link struct {
	limiter *rate.Limiter // nil: unlimited
	bytes   atomic.Int64
}

// New returns a link of bytesPerSecond; 0 or less means unlimited (bytes
// are still counted).
func New(bytesPerSecond float64) *Link {
	l := &Link{}
	if bytesPerSecond > 0 {
		l.limiter = rate.NewLimiter(rate.Limit(bytesPerSecond), chunk)
	}
	return l
}

// Bytes returns how many bytes have crossed the link.
func (l *Link) Bytes() int64 { return l.bytes.Load() }

// Listen listens on addr, default a free loopback port; every connection
// it accepts writes through the link. Reads are not shaped: requests into
// the store are small.
func (l *Link) Listen(addr string) (net.Listener, error) {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	inner, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return &listener{Listener: inner, link: l}, nil
}

// Close implements Uplink; a token bucket holds nothing.
func (l *Link) Close() error { return nil }

type listener struct {
	net.Listener
	link *Link
}

func (s *listener) Accept() (net.Conn, error) {
	c, err := s.Listener.Accept()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &conn{Conn: c, link: s.link, ctx: ctx, cancel: cancel}, nil
}

type conn struct {
	net.Conn
	link   *Link
	ctx    context.Context // ends when the connection closes, to free a write waiting on the bucket
	cancel context.CancelFunc
}

func (c *conn) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		n := min(len(p), chunk)
		if c.link.limiter != nil {
			if err := c.link.limiter.WaitN(c.ctx, n); err != nil {
				return written, net.ErrClosed
			}
		}
		m, err := c.Conn.Write(p[:n])
		written += m
		c.link.bytes.Add(int64(m))
		if err != nil {
			return written, err
		}
		p = p[n:]
	}
	return written, nil
}

func (c *conn) Close() error {
	c.cancel()
	return c.Conn.Close()
}
