package plot

import (
	"math"
	"strconv"

	gplot "gonum.org/v1/plot"
)

// MinutesAfter is the longest time axis marked in seconds: one spanning
// more is marked in whole minutes, and its label says so.
const MinutesAfter = 600.0

// TimeTicks marks an axis of seconds at whole seconds, or, when Minutes
// is set, at whole minutes labelled in minutes: 0 30 60 90, never 0.00
// 250.00 500.00. Major ticks fall on a step from 1-2-5-10-15-20-30-60
// (then 120, 300, 600, ... and powers of ten), the smallest that gives at
// most 8 of them; minor ticks divide the step into whole units.
type TimeTicks struct {
	Minutes bool
}

var _ gplot.Ticker = TimeTicks{}

// timeSteps are the major steps, in seconds or minutes, with the minor
// step of each (0: none).
var timeSteps = []struct{ major, minor float64 }{
	{1, 0}, {2, 1}, {5, 1}, {10, 2}, {15, 5}, {20, 5}, {30, 10}, {60, 15},
	{120, 30}, {300, 60}, {600, 120}, {1200, 300}, {1800, 600}, {3600, 900},
}

// maxTimeTicks is the most major ticks an axis gets.
const maxTimeTicks = 8

// Ticks returns the ticks between min and max, in seconds.
func (t TimeTicks) Ticks(min, max float64) []gplot.Tick {
	if math.IsNaN(min) || math.IsNaN(max) || math.IsInf(min, 0) || math.IsInf(max, 0) || max < min {
		return nil
	}
	unit := 1.0
	if t.Minutes {
		unit = 60
	}
	lo, hi := min/unit, max/unit
	major, minor := timeStep(hi - lo)
	var ticks []gplot.Tick
	// A whole-unit tolerance, so that 600 s shows its 600 tick.
	const eps = 1e-9
	// Counted in whole steps, so that no sum drifts off a whole unit.
	for k := math.Ceil(lo/major - eps); k*major <= hi+eps; k++ {
		v := k*major + 0 // + 0: never a -0 label
		ticks = append(ticks, gplot.Tick{Value: v * unit, Label: strconv.FormatFloat(v, 'f', -1, 64)})
	}
	if minor > 0 {
		per := math.Round(major / minor)
		for k := math.Ceil(lo/minor - eps); k*minor <= hi+eps; k++ {
			if math.Mod(k, per) != 0 {
				ticks = append(ticks, gplot.Tick{Value: k * minor * unit})
			}
		}
	}
	return ticks
}

// timeStep returns the major and minor steps for an axis span units long.
func timeStep(span float64) (major, minor float64) {
	for _, s := range timeSteps {
		if span/s.major <= maxTimeTicks {
			return s.major, s.minor
		}
	}
	// Past the table: 1-2-5 times a power of ten, minor a fifth or half.
	for mag := 1e4; ; mag *= 10 {
		for _, m := range []float64{1, 2, 5} {
			if span/(m*mag) <= maxTimeTicks {
				if m == 2 {
					return m * mag, mag
				}
				return m * mag, m * mag / 5
			}
		}
	}
}
