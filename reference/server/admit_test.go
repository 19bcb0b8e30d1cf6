package server

import (
	"context"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestAdmissionShedsPastItsQueue(t *testing.T) {
	a := newAdmission(1, 1)
	release, err := a.admit(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// The second caller waits for the slot; the third is shed.
	admitted := make(chan func(), 1)
	go func() {
		r, err := a.admit(context.Background())
		if err != nil {
			t.Error(err)
		}
		admitted <- r
	}()
	for a.waitingNow() == 0 {
		time.Sleep(time.Millisecond)
	}
	_, err = a.admit(context.Background())
	st := status.Convert(err)
	if st.Code() != codes.ResourceExhausted {
		t.Fatalf("third caller: %v, want ResourceExhausted", err)
	}
	var hint time.Duration
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.RetryInfo); ok {
			hint = info.GetRetryDelay().AsDuration()
		}
	}
	if hint < 50*time.Millisecond || hint > 10*time.Second {
		t.Errorf("retry hint %s, want 50 ms to 10 s", hint)
	}
	release()
	(<-admitted)()
	// A caller whose context ends while waiting leaves the queue.
	release, _ = a.admit(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if _, err := a.admit(ctx); status.Code(err) != codes.DeadlineExceeded {
		t.Errorf("waiting caller whose deadline passed: %v, want DeadlineExceeded", err)
	}
	if n := a.waitingNow(); n != 0 {
		t.Errorf("%d still waiting", n)
	}
	release()
}

func (a *admission) waitingNow() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.waiting
}
