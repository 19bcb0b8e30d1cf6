package main

import (
	"testing"
	"time"
)

func TestRoundEstimate(t *testing.T) {
	for _, c := range []struct{ in, want time.Duration }{
		{85 * time.Second, 90 * time.Second},                // the live gate's run: not "1m0s"
		{12*time.Minute + 40*time.Second, 13 * time.Minute}, // make experiment's live step
		{4 * time.Second, 0},                                // nothing worth saying
	} {
		if got := roundEstimate(c.in); got != c.want {
			t.Errorf("roundEstimate(%s) = %s, want %s", c.in, got, c.want)
		}
	}
}
