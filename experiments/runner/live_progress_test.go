package runner

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/churnlab/churnlab/experiments/scenario"
)

// TestLiveProgressMovesWithTheRunsClock: during the run step, the bar is
// the share of setup plus live time done, not a fixed step count (it sat
// at 85% for a whole live run before).
func TestLiveProgressMovesWithTheRunsClock(t *testing.T) {
	var out bytes.Buffer
	sc := &scenario.Scenario{Duration: scenario.Duration(255 * time.Second)} // 45 s setup + 255 s: 300 s in all
	sc.Metadata.Name = "storm"
	l := &liveRun{sc: sc, system: "reference", progress: newProgress(&out)}
	for _, c := range []struct {
		step    int
		elapsed time.Duration
		want    string
	}{
		{0, 0, "  0%  step 1/7 control plane"},
		{4, 0, " 10%  step 5/7 pods in rotation"}, // 30 s of 300
		{stepRun, 0, " 15%  step 6/7 run"},
		{stepRun, 75 * time.Second, " 40%  step 6/7 run"},
		{stepRun, 255 * time.Second, "100%  step 6/7 run"},
		{stepRun, 300 * time.Second, "100%  step 6/7 run"}, // a late tick never passes 100%
		{len(liveSteps) - 1, 0, "100%  step 7/7 write results"},
	} {
		out.Reset()
		l.stepAt(c.step, c.elapsed, "")
		if !strings.Contains(out.String(), c.want) {
			t.Errorf("step %d at %s: %q, want it to contain %q", c.step, c.elapsed, out.String(), c.want)
		}
	}
}
