package main

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

// TestRunContextOutlivesClosedSockets: a write to a socket whose peer has
// gone (a game pod deleted mid-transfer) does not end the run. When the
// run watched SIGPIPE, such a write stopped every rolling update half way
// with "context canceled".
func TestRunContextOutlivesClosedSockets(t *testing.T) {
	ctx, _, _, stop := runContext(io.Discard, io.Discard)
	defer stop()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	client, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	server.(*net.TCPConn).SetLinger(0) // close with a reset
	server.Close()
	var werr error
	for i := 0; i < 100 && werr == nil; i++ {
		_, werr = client.Write(make([]byte, 64<<10))
	}
	if !errors.Is(werr, syscall.EPIPE) && !errors.Is(werr, syscall.ECONNRESET) {
		t.Fatalf("writing to a closed socket: %v, want EPIPE or ECONNRESET", werr)
	}
	// One more write after the reset is the one that raises SIGPIPE.
	client.Write([]byte("x")) //nolint:errcheck // it fails; the signal is the point
	// A signal arrives on its own time: give one a second to end it.
	select {
	case <-ctx.Done():
		t.Errorf("the run's context ended on a closed socket: %v", context.Cause(ctx))
	case <-time.After(time.Second):
	}
}

// TestRunContextEndsOnClosedOutput: a write to an output pipe nobody
// reads any more (churnlab run | head) ends the run, as Ctrl-C does.
func TestRunContextEndsOnClosedOutput(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	defer w.Close()
	ctx, stdout, _, stop := runContext(w, io.Discard)
	defer stop()
	if _, err := stdout.Write([]byte("wrote results\n")); !errors.Is(err, syscall.EPIPE) {
		t.Fatalf("write to a closed pipe: %v, want EPIPE", err)
	}
	if ctx.Err() == nil {
		t.Error("the run's context goes on after its output pipe closed")
	}
}
