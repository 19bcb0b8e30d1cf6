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

// Link is a shaped uplink. Its methods are safe for concurrent use.
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

// Listen wraps a listener: every connection it accepts writes through the
// link. Reads are not shaped: requests into the store are small.
func (l *Link) Listen(inner net.Listener) net.Listener { return &listener{Listener: inner, link: l} }

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
