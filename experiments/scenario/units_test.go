package scenario

import (
	"math"
	"strings"
	"testing"
)

func TestUnits(t *testing.T) {
	happy := []struct {
		in   string
		into unitValue
		want float64
	}{
		{"2MB", new(Bytes), 2e6},                // decimal
		{"1MiB", new(Bytes), 1 << 20},           // binary
		{"1.5MiB", new(Bytes), 1.5 * (1 << 20)}, // fractional
		{"450KB", new(Bytes), 450e3},
		{"512B", new(Bytes), 512},
		{"1Gbps", new(Bandwidth), 125e6},   // bits
		{"120MB/s", new(Bandwidth), 120e6}, // bytes
		{"85k/s", new(Rate), 85e3},
		{"600/min", new(Rate), 10},
		{"1.2M/s", new(Rate), 1.2e6},
		{"250k", new(Count), 250e3},
		{"180", new(Count), 180},
		{"5s", new(Duration), 5e9},
		{"1m30s", new(Duration), 90e9},
	}
	for _, c := range happy {
		if err := c.into.parseUnit(c.in); err != nil {
			t.Errorf("%q: %v", c.in, err)
			continue
		}
		if got := numeric(c.into); math.Abs(got-c.want) > 1e-9*c.want {
			t.Errorf("%q = %v, want %v", c.in, got, c.want)
		}
	}
	sad := []struct {
		in   string
		into unitValue
	}{
		{"2", new(Bytes)},           // no unit
		{"2XB", new(Bytes)},         // unknown unit
		{"-2MB", new(Bytes)},        // negative
		{"1e3MB", new(Bytes)},       // exponent
		{"0x10MB", new(Bytes)},      // hex
		{".MB", new(Bytes)},         // no digits
		{"1Gbs", new(Bandwidth)},    // typo
		{"NaNMB/s", new(Bandwidth)}, // not a number
		{"85k", new(Rate)},          // no per-second
		{"2.5", new(Count)},         // fraction of a thing
		{"5", new(Duration)},        // no unit
		{"-1s", new(Duration)},      // negative
		{"150%", new(IntOrPercent)}, // above 100%
		{"-1", new(IntOrPercent)},   // negative
	}
	for _, c := range sad {
		if err := c.into.parseUnit(c.in); err == nil {
			t.Errorf("%q parsed as %v; want an error", c.in, numeric(c.into))
		} else if !strings.Contains(err.Error(), c.in) {
			t.Errorf("%q: error %q does not quote the input", c.in, err)
		}
	}
}

func numeric(u unitValue) float64 {
	switch v := u.(type) {
	case *Bytes:
		return float64(*v)
	case *Bandwidth:
		return float64(*v)
	case *Rate:
		return float64(*v)
	case *Count:
		return float64(*v)
	case *Duration:
		return float64(*v)
	case *IntOrPercent:
		return float64(v.Value)
	}
	panic("unknown unit type")
}
