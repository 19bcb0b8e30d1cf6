package uplink

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
)

// server accepts one connection through link and writes payload to it in
// one call. Write's error arrives on result; closing conn ends the write.
type server struct {
	addr   string
	conn   chan net.Conn
	result chan error
}

func serveOnce(t *testing.T, link Uplink, payload []byte) *server {
	t.Helper()
	shaped, err := link.Listen("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { shaped.Close() })
	s := &server{addr: shaped.Addr().String(), conn: make(chan net.Conn, 1), result: make(chan error, 1)}
	go func() {
		c, err := shaped.Accept()
		if err != nil {
			s.result <- err
			return
		}
		s.conn <- c
		_, err = c.Write(payload)
		s.result <- err
	}()
	return s
}

func TestUnlimitedLinkCountsEveryByte(t *testing.T) {
	link := New(0)
	payload := bytes.Repeat([]byte("x"), 5*chunk+17)
	s := serveOnce(t, link, payload)
	c, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got, err := io.ReadAll(io.LimitReader(c, int64(len(payload))))
	if err != nil {
		t.Fatal(err)
	}
	if err := <-s.result; err != nil {
		t.Fatalf("write: %v", err)
	}
	if !bytes.Equal(got, payload) || link.Bytes() != int64(len(payload)) {
		t.Errorf("received %d bytes, link counted %d; sent %d", len(got), link.Bytes(), len(payload))
	}
}

// At 1 byte a second, the burst (one chunk) goes at once and the next
// chunk waits on the bucket; closing the connection frees the write.
func TestLinkHoldsWritesBeyondItsBurst(t *testing.T) {
	link := New(1)
	s := serveOnce(t, link, bytes.Repeat([]byte("x"), 2*chunk))
	c, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.ReadFull(c, make([]byte, chunk)); err != nil {
		t.Fatalf("the first chunk did not arrive: %v", err)
	}
	select {
	case err := <-s.result:
		t.Fatalf("the write got past the bucket (err %v)", err)
	default:
	}
	(<-s.conn).Close()
	if err := <-s.result; !errors.Is(err, net.ErrClosed) {
		t.Errorf("write after close: %v, want net.ErrClosed", err)
	}
	if got := link.Bytes(); got != chunk {
		t.Errorf("link counted %d bytes, want the %d of the burst", got, chunk)
	}
}
