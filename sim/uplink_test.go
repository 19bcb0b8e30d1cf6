package sim

import (
	"fmt"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"
)

func TestUplink(t *testing.T) {
	var (
		eng   *Engine
		link  *Uplink
		bytes float64
		busy  Time
	)
	datadriven.RunTest(t, "testdata/uplink.txt", func(t *testing.T, d *datadriven.TestData) string {
		if d.Cmd != "uplink" {
			t.Fatalf("unknown directive %q", d.Cmd)
		}
		var capacity, buffer float64
		d.ScanArgs(t, "capacity", &capacity)
		if d.HasArg("buffer") {
			d.ScanArgs(t, "buffer", &buffer)
		}
		eng, bytes, busy = NewEngine(), 0, 0
		link = NewUplink(eng, capacity, buffer, func(from, to Time, b float64) {
			bytes += b
			busy += to - from
		})
		var out strings.Builder
		for _, line := range strings.Split(d.Input, "\n") {
			if line == "" {
				continue
			}
			fields := strings.Fields(line)
			args := map[string]string{}
			for _, kv := range fields[1:] {
				k, v, _ := strings.Cut(kv, "=")
				args[k] = v
			}
			num := func(k string) float64 {
				var f float64
				if _, err := fmt.Sscan(args[k], &f); err != nil {
					t.Fatalf("%s: bad %s=%q", line, k, args[k])
				}
				return f
			}
			switch fields[0] {
			case "send":
				name := args["name"]
				size := num("bytes")
				eng.At(Time(num("at_ms")*float64(Millisecond)), func(now Time, _ int64) {
					link.Send(now, size, func(at Time) {
						fmt.Fprintf(&out, "%.3fms %s done\n", float64(at)/float64(Millisecond), name)
					})
				}, 0)
			case "storm":
				pods, size := int(num("pods")), num("bytes")
				var first, last Time = -1, 0
				doneCount := 0
				eng.At(Time(num("at_ms")*float64(Millisecond)), func(now Time, _ int64) {
					for range pods {
						link.Send(now, size, func(at Time) {
							if first < 0 {
								first = at
							}
							last = at
							doneCount++
							if doneCount == pods {
								fmt.Fprintf(&out, "%.3fms %d transfers done (first %.3fms)\n",
									float64(last)/float64(Millisecond), pods, float64(first)/float64(Millisecond))
							}
						})
					}
				}, 0)
			case "queue":
				eng.At(Time(num("at_ms")*float64(Millisecond)), func(now Time, _ int64) {
					fmt.Fprintf(&out, "%.3fms queue delay %.3fms\n", float64(now)/float64(Millisecond), float64(link.QueueDelay(now))/float64(Millisecond))
				}, 0)
			default:
				t.Fatalf("unknown command %q", fields[0])
			}
		}
		for eng.Step() {
		}
		fmt.Fprintf(&out, "egress %.0f bytes, busy %.3fms\n", bytes, float64(busy)/float64(Millisecond))
		return out.String()
	})
}
