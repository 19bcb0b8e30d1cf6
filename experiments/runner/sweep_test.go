package runner

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/churnlab/churnlab/experiments/metrics"
)

func TestSweepValues(t *testing.T) {
	for _, c := range []struct {
		from, to string
		steps    int
		want     []string
	}{
		{"9s", "3s", 4, []string{"9s", "7s", "5s", "3s"}},
		{"9s", "8s", 3, []string{"9s", "8.5s", "8s"}},
		{"120", "180", 4, []string{"120", "140", "160", "180"}},
		{"100", "105", 3, []string{"100", "103", "105"}}, // counts stay whole
		{"0.5", "1", 3, []string{"0.5", "0.75", "1"}},
	} {
		got, err := sweepValues(c.from, c.to, c.steps)
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("sweepValues(%s, %s, %d) = %q, %v; want %q", c.from, c.to, c.steps, got, err, c.want)
		}
	}
	for _, c := range []struct {
		from, to string
		steps    int
		want     string
	}{
		{"3s", "9ms", 3, "different units"},
		{"fast", "9s", 3, "want numbers"},
		{"3s", "9s", 1, "at least 2"},
	} {
		if _, err := sweepValues(c.from, c.to, c.steps); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("sweepValues(%s, %s, %d) = %v, want an error saying %q", c.from, c.to, c.steps, err, c.want)
		}
	}
}

func TestFindKnee(t *testing.T) {
	points := func(p99 ...float64) []metrics.SweepPoint {
		var out []metrics.SweepPoint
		for _, v := range p99 {
			out = append(out, metrics.SweepPoint{WorstP99Ms: v})
		}
		return out
	}
	// Flat, then a jump: the knee is the jump.
	if k, why := findKnee(points(40, 41, 40, 41, 42, 90, 300), Objectives{}); k != 5 || !strings.Contains(why, "p99 90.0") {
		t.Errorf("knee %d (%s), want 5", k, why)
	}
	// Falling at first, as p99 does while capacity grows: no knee.
	if k, why := findKnee(points(60, 50, 46, 44, 42, 41, 40), Objectives{}); k != -1 {
		t.Errorf("knee %d (%s) on a falling curve, want none", k, why)
	}
	// 429s appearing where there were none.
	pts := points(40, 40, 40, 40, 40, 40)
	pts[4].Throttled429PS = 25
	if k, why := findKnee(pts, Objectives{}); k != 4 || !strings.Contains(why, "429") {
		t.Errorf("knee %d (%s), want 4 on the 429 rate", k, why)
	}
	// A steady linear rise has no knee by trend; an objective puts one
	// where the line crosses it, even among the low-load points.
	rising := points(100, 200, 300, 400, 500, 600, 700, 800)
	if k, why := findKnee(rising, Objectives{}); k != -1 {
		t.Errorf("knee %d (%s) on a straight line, want none", k, why)
	}
	if k, why := findKnee(rising, Objectives{WorstP99Ms: 450}); k != 4 || !strings.Contains(why, "past the objective of 450 ms") {
		t.Errorf("knee %d (%s), want 4, the first point past 450 ms", k, why)
	}
	api := points(10, 10, 10, 10)
	api[1].APIP99Ms = 6000
	if k, why := findKnee(api, Objectives{APIP99Ms: 5000}); k != 1 || !strings.Contains(why, "API p99 6000.0 ms") {
		t.Errorf("knee %d (%s), want 1 on the API objective", k, why)
	}
}

// TestSweepFindsTheL1Knee: sweeping the reconcile rate of the peak
// cluster through the reconcile interval, the knee falls where L1 says
// etcd saturated, near 40 reconciles a second (36-44).
func TestSweepFindsTheL1Knee(t *testing.T) {
	out := t.TempDir()
	s, err := RunSweep(SweepOptions{
		File:  "../scenarios/steady.yaml",
		Param: "baseline.reconcileInterval", From: "9s", To: "3s", Steps: 13,
		OutDir: out,
	})
	if err != nil {
		t.Fatal(err)
	}
	if s.Knee < 0 {
		t.Fatalf("no knee: %s", s.Why)
	}
	if r := s.Points[s.Knee].ReconcilesPerS; r < 36 || r > 44 {
		t.Errorf("knee at %.1f reconciles/s (%s), want 36-44 (L1)", r, s.Why)
	}
	csv, err := os.ReadFile(filepath.Join(out, "steady", "sim", "sweep.csv"))
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Count(string(csv), "\n"); lines != 14 {
		t.Errorf("sweep.csv has %d lines, want a header and 13 points", lines)
	}
}

func TestSweepRejectsABadParameter(t *testing.T) {
	_, err := RunSweep(SweepOptions{File: "../scenarios/steady.yaml", Param: "baseline.replicaz", From: "1", To: "3", Steps: 3, OutDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "replicaz") {
		t.Errorf("err = %v, want one naming baseline.replicaz", err)
	}
}
