package sim

import (
	"testing"

	"github.com/churnlab/churnlab/experiments/scenario"
)

// BenchmarkEngineHold is the classic hold model: a fixed number of events
// stay pending, and each one reschedules itself a random time ahead when it
// runs. It measures the engine's cost per event, heap included.
func BenchmarkEngineHold(b *testing.B) {
	for _, pending := range []struct {
		name string
		n    int
	}{{"pending=1k", 1_000}, {"pending=100k", 100_000}} {
		b.Run(pending.name, func(b *testing.B) {
			e := NewEngine()
			r := Seed(1).Stream("bench")
			var hold Action
			hold = func(now Time, _ int64) {
				e.At(now+Time(r.Uint64()&0xfffff), hold, 0) // up to ~1 ms ahead
			}
			for range pending.n {
				e.At(Time(r.Uint64()&0xfffff), hold, 0)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				e.Step()
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// BenchmarkRestartStorm simulates the shipped restart storm end to end,
// both systems, one after the other (10 minutes of virtual time each):
// at the 2023 scale (180 pods at peak, 85k requests/s) and at ten times
// it (1,800 pods, 850k requests/s). One op is both systems; sim-s/s is
// virtual seconds per wall second.
func BenchmarkRestartStorm(b *testing.B) {
	for _, c := range []struct{ name, file string }{
		{"scale=1x", "../experiments/scenarios/restart-storm.yaml"},
		{"scale=10x", "../experiments/scenarios/restart-storm-10x.yaml"},
	} {
		sc, err := scenario.Load(c.file)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(c.name, func(b *testing.B) {
			var events uint64
			for range b.N {
				for _, system := range Systems {
					w, err := NewWorld(sc, system, sc.Seed)
					if err != nil {
						b.Fatal(err)
					}
					w.RunUntil(w.End())
					events += w.Steps()
				}
			}
			b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
			b.ReportMetric(float64(b.N*len(Systems))*sc.Duration.D().Seconds()/b.Elapsed().Seconds(), "sim-s/s")
		})
	}
}
