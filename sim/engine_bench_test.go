package sim

import (
	"fmt"
	"testing"

	"github.com/churnlab/churnlab/experiments/metrics"
	"github.com/churnlab/churnlab/experiments/scenario"
	"github.com/churnlab/churnlab/experiments/scenariofile"
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
		sc, err := scenariofile.Load(c.file)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(c.name, func(b *testing.B) {
			var events uint64
			for range b.N {
				for _, system := range Systems {
					w, err := NewWorld(sc, system, sc.Seed, metrics.NewRecorder())
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

// BenchmarkNodeAgents is a cluster of nodes=N, each running a kubelet
// that patches its node every 10 s and an agent that lists its node's
// pods from etcd when it starts and gets each pod it hears of, for 10
// simulated minutes of the reference system (the baseline adds its
// operator's per-pod loops), with 10 game pods a node. One op is one run.
func BenchmarkNodeAgents(b *testing.B) {
	for _, nodes := range []int{500, 5000} {
		sc, err := scenario.Parse("bench.yaml", []byte(fmt.Sprintf(`apiVersion: churnlab/v1
kind: Scenario
metadata: {name: node-agents}
duration: 10m
cluster: {nodes: %d, pods: %d}
controllers:
  - name: kubelet
    perNode: true
    priorityLevel: node-high
    triggers:
      - every: 10s
        jitter: 1s
        requests: [{verb: patch, resource: nodes, scope: node, objectSize: 10KB}]
  - name: agent
    perNode: true
    triggers:
      - on: start
        requests: [{verb: list, resource: pods, scope: node, objects: pods/nodes, scanned: pods, from: etcd}]
      - watch: pods
        requests: [{verb: get, resource: pods, scope: node}]
events:
  - {at: 60s, restartStorm: {fraction: 0.3, over: 60s}}
`, nodes, 10*nodes)))
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("nodes=%d", nodes), func(b *testing.B) {
			var events uint64
			for range b.N {
				w, err := NewWorld(sc, Reference, sc.Seed, metrics.NewRecorder())
				if err != nil {
					b.Fatal(err)
				}
				w.RunUntil(w.End())
				events += w.Steps()
			}
			b.ReportMetric(float64(events)/float64(b.N), "events/op")
			b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
