package scenario

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// A unit value is a scenario field written as a human string ("2MB",
// "1Gbps", "85k/s", "5s", "250k", "25%"). Each type parses itself; the
// decoder calls parseUnit on the scalar text and reports any error with the
// field's path and line.
type unitValue interface {
	parseUnit(s string) error
}

var (
	_ unitValue = (*Bytes)(nil)
	_ unitValue = (*Bandwidth)(nil)
	_ unitValue = (*Rate)(nil)
	_ unitValue = (*Count)(nil)
	_ unitValue = (*Duration)(nil)
	_ unitValue = (*IntOrPercent)(nil)
)

// Bytes is a size in bytes, written with a unit: "512B", "450KB", "2MB",
// "1MiB". KB, MB and GB are decimal (1000); KiB, MiB and GiB are binary
// (1024), as in Kubernetes quantities.
type Bytes int64

var byteUnits = []struct {
	suffix string
	factor float64
}{
	// Longest suffixes first so that "MiB" is not read as "B".
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
	{"kB", 1e3}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9},
	{"B", 1},
}

func (b *Bytes) parseUnit(s string) error {
	for _, u := range byteUnits {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			v, err := parseNonNegative(num)
			if err != nil {
				return fmt.Errorf("bad size %q: %v (want e.g. 512B, 450KB, 2MB, 1MiB)", s, err)
			}
			bytes := math.Round(v * u.factor)
			if bytes > math.MaxInt64/2 {
				return fmt.Errorf("bad size %q: too large", s)
			}
			*b = Bytes(bytes)
			return nil
		}
	}
	return fmt.Errorf("bad size %q: missing unit (want e.g. 512B, 450KB, 2MB, 1MiB)", s)
}

// String formats b with the largest decimal unit that keeps it readable.
func (b Bytes) String() string { return formatSI(float64(b), "B") }

// Bandwidth is a transfer rate in bytes per second, written in bits
// ("1Gbps", "100Mbps") or bytes ("120MB/s", "10KiB/s").
type Bandwidth float64

var bandwidthUnits = []struct {
	suffix string
	factor float64 // bytes per second per unit
}{
	{"Kbps", 1e3 / 8}, {"kbps", 1e3 / 8}, {"Mbps", 1e6 / 8}, {"Gbps", 1e9 / 8}, {"bps", 1.0 / 8},
	{"KiB/s", 1 << 10}, {"MiB/s", 1 << 20}, {"GiB/s", 1 << 30},
	{"kB/s", 1e3}, {"KB/s", 1e3}, {"MB/s", 1e6}, {"GB/s", 1e9}, {"B/s", 1},
}

func (bw *Bandwidth) parseUnit(s string) error {
	for _, u := range bandwidthUnits {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			v, err := parseNonNegative(num)
			if err != nil {
				return fmt.Errorf("bad bandwidth %q: %v (want e.g. 1Gbps, 100Mbps, 120MB/s)", s, err)
			}
			*bw = Bandwidth(v * u.factor)
			return nil
		}
	}
	return fmt.Errorf("bad bandwidth %q: missing unit (want e.g. 1Gbps, 100Mbps, 120MB/s)", s)
}

// BytesPerSecond returns the bandwidth in bytes per second.
func (bw Bandwidth) BytesPerSecond() float64 { return float64(bw) }

// String formats bw in bits per second, the way links are sold.
func (bw Bandwidth) String() string { return formatSI(float64(bw)*8, "bps") }

// Rate is a number of events per second, written "85k/s", "50/s", "1.2M/s"
// or per minute, "600/min".
type Rate float64

func (r *Rate) parseUnit(s string) error {
	num, per := "", 0.0
	switch {
	case strings.HasSuffix(s, "/s"):
		num, per = strings.TrimSuffix(s, "/s"), 1
	case strings.HasSuffix(s, "/min"):
		num, per = strings.TrimSuffix(s, "/min"), 60
	default:
		return fmt.Errorf("bad rate %q: missing /s or /min (want e.g. 85k/s, 50/s)", s)
	}
	v, err := parseCount(num)
	if err != nil {
		return fmt.Errorf("bad rate %q: %v (want e.g. 85k/s, 50/s)", s, err)
	}
	*r = Rate(v / per)
	return nil
}

// PerSecond returns the rate in events per second.
func (r Rate) PerSecond() float64 { return float64(r) }

// String formats r as events per second.
func (r Rate) String() string { return formatSI(float64(r), "") + "/s" }

// Count is a whole number that may carry a k, M or G suffix: "250k", "180".
type Count int64

func (c *Count) parseUnit(s string) error {
	v, err := parseCount(s)
	if err != nil {
		return fmt.Errorf("bad count %q: %v (want e.g. 180, 250k, 1.2M)", s, err)
	}
	if v != math.Trunc(v) {
		return fmt.Errorf("bad count %q: not a whole number", s)
	}
	if v > math.MaxInt64/2 {
		return fmt.Errorf("bad count %q: too large", s)
	}
	*c = Count(v)
	return nil
}

// String formats c with a k/M/G suffix where it is exact.
func (c Count) String() string { return formatSI(float64(c), "") }

// Duration is a time span written the way Go does: "100ms", "5s", "6m",
// "1h30m".
type Duration time.Duration

func (d *Duration) parseUnit(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("bad duration %q (want e.g. 100ms, 5s, 6m)", s)
	}
	if v < 0 {
		return fmt.Errorf("bad duration %q: negative", s)
	}
	*d = Duration(v)
	return nil
}

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String formats d the way time.Duration does.
func (d Duration) String() string { return time.Duration(d).String() }

// IntOrPercent is a whole number ("10") or a percentage of some total
// ("25%"), as in a Deployment's maxSurge.
type IntOrPercent struct {
	Value   int
	Percent bool
}

func (ip *IntOrPercent) parseUnit(s string) error {
	if num, ok := strings.CutSuffix(s, "%"); ok {
		v, err := strconv.Atoi(num)
		if err != nil || v < 0 || v > 100 {
			return fmt.Errorf("bad percentage %q (want 0%% to 100%%)", s)
		}
		*ip = IntOrPercent{Value: v, Percent: true}
		return nil
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < 0 {
		return fmt.Errorf("bad value %q (want a whole number like 10 or a percentage like 25%%)", s)
	}
	*ip = IntOrPercent{Value: v}
	return nil
}

// Of resolves ip against total. Kubernetes rounds a percentage up for
// maxSurge and down for maxUnavailable; roundUp chooses.
func (ip IntOrPercent) Of(total int, roundUp bool) int {
	if !ip.Percent {
		return ip.Value
	}
	if roundUp {
		return (total*ip.Value + 99) / 100
	}
	return total * ip.Value / 100
}

// String formats ip as it is written.
func (ip IntOrPercent) String() string {
	if ip.Percent {
		return strconv.Itoa(ip.Value) + "%"
	}
	return strconv.Itoa(ip.Value)
}

// parseCount reads a non-negative number with an optional k, M or G suffix.
func parseCount(s string) (float64, error) {
	factor := 1.0
	switch {
	case strings.HasSuffix(s, "k"):
		s, factor = strings.TrimSuffix(s, "k"), 1e3
	case strings.HasSuffix(s, "M"):
		s, factor = strings.TrimSuffix(s, "M"), 1e6
	case strings.HasSuffix(s, "G"):
		s, factor = strings.TrimSuffix(s, "G"), 1e9
	}
	v, err := parseNonNegative(s)
	return v * factor, err
}

// parseNonNegative reads a plain decimal number: no sign, no exponent, no
// hex, no NaN or Inf, so that "1e9MB" or "0x10B" are rejected rather than
// read as something the author did not mean.
func parseNonNegative(s string) (float64, error) {
	if s == "" {
		return 0, fmt.Errorf("missing number")
	}
	dot := false
	for i, c := range s {
		switch {
		case c >= '0' && c <= '9':
		case c == '.' && !dot && i > 0 && i < len(s)-1:
			dot = true
		default:
			return 0, fmt.Errorf("%q is not a plain number", s)
		}
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(v, 0) {
		return 0, fmt.Errorf("%q is out of range", s)
	}
	return v, nil
}

// formatSI writes v with a k/M/G suffix and up to three decimals.
func formatSI(v float64, unit string) string {
	prefixes := []struct {
		factor float64
		name   string
	}{{1e9, "G"}, {1e6, "M"}, {1e3, "k"}}
	for _, p := range prefixes {
		if v >= p.factor {
			return strconv.FormatFloat(v/p.factor, 'f', -1, 64) + p.name + unit
		}
	}
	return strconv.FormatFloat(v, 'f', -1, 64) + unit
}

// ParseBandwidth reads a bandwidth the way scenario files write it, for
// command-line flags: "1Gbps", "100Mbps", "120MB/s".
func ParseBandwidth(s string) (Bandwidth, error) {
	var bw Bandwidth
	err := bw.parseUnit(s)
	return bw, err
}
