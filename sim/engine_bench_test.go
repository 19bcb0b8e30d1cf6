package sim

import "testing"

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
