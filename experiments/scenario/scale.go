package scenario

import (
	"math"
	"reflect"
	"slices"
)

// AtLiveScale returns a copy of s shrunk by its live.scale factors and cut
// to live.duration, as a live run on one machine plays it. See LiveScale
// for what each factor multiplies and why the outcome-deciding ratios
// survive. Counts round to the nearest whole number and never fall below
// 1. Events at or after live.duration are dropped.
func (s *Scenario) AtLiveScale() *Scenario {
	pods, traffic, bytes := s.Live.Scale.Pods, s.Live.Scale.Traffic, s.Live.Scale.Bytes
	out := *s
	out.Duration = s.Live.Duration
	out.Events = nil
	for _, e := range s.Events {
		if e.At >= s.Live.Duration {
			continue
		}
		e = e.clone()
		if a := e.Autoscale; a != nil {
			a.To = scaleCount(a.To, pods)
		}
		out.Events = append(out.Events, e)
	}
	out.Live.Scale = LiveScale{Pods: 1, Traffic: 1, Bytes: 1}

	c := &out.Cluster
	c.Nodes = scaleCount(c.Nodes, pods)
	c.Pods = scaleCount(c.Pods, pods)
	c.Uplink = Bandwidth(float64(c.Uplink) * pods * bytes)
	c.APIServer.MaxRequestsInflight = scaleCount(c.APIServer.MaxRequestsInflight, pods)
	c.APIServer.MaxMutatingRequestsInflight = scaleCount(c.APIServer.MaxMutatingRequestsInflight, pods)

	w := &out.Workload
	w.Players = Count(math.Max(1, math.Round(float64(w.Players)*traffic)))
	w.RequestRate = Rate(float64(w.RequestRate) * traffic)
	w.PodCapacity = Rate(float64(w.PodCapacity) * traffic / pods) // each pod stays as busy
	// What the live harness does not have: a Redis (its pods answer after
	// the path latency and their queue), and an etcd behind the config
	// uplink (the control plane talks over loopback).
	w.Redis.OpsPerRequest = 0
	out.Model.Pods.ColdOps = 0
	out.Model.Uplink.Buffer = 0

	out.Config.TotalSize = Bytes(math.Round(float64(s.Config.TotalSize) * bytes))

	// The operator's priority level shrinks with the inflight limits it is
	// a share of, but APF's queues do not: a burst that overflowed the
	// full-size cluster's queues would just wait in the small one's. So
	// the level gets one queue holding the scaled places of a flow's hand
	// (a hand of 6 queues of 50: 300 at full scale), as the live control
	// plane configures it.
	for _, pl := range s.Cluster.APIServer.PriorityLevels() {
		if pl.Name == s.Baseline.PriorityLevel && pl.Queues > 0 {
			pl.QueueLengthLimit = scaleCount(pl.HandSize*pl.QueueLengthLimit, pods)
			pl.Queues, pl.HandSize = 1, 1
			c.APIServer.ExtraPriorityLevels = append(slices.Clone(c.APIServer.ExtraPriorityLevels), pl)
		}
	}

	// The operator's client shrinks with the API server it calls, its
	// burst too, so that its token bucket refills in as long.
	out.Baseline.ClientQPS = Rate(float64(out.Baseline.ClientQPS) * pods)
	out.Baseline.ClientBurst = scaleCount(out.Baseline.ClientBurst, pods)
	// So do the declared controllers' clients.
	out.Controllers = slices.Clone(s.Controllers)
	for i := range out.Controllers {
		c := &out.Controllers[i]
		c.QPS = Rate(float64(c.QPS) * pods)
		c.Burst = scaleCount(c.Burst, pods)
	}
	out.Reference.Store.ReadsPerSecondPerNode = Rate(float64(out.Reference.Store.ReadsPerSecondPerNode) * pods)
	return &out
}

func scaleCount(n int, factor float64) int {
	return max(1, int(math.Round(float64(n)*factor)))
}

// clone copies e and the action it points to.
func (e Event) clone() Event {
	v := reflect.ValueOf(&e).Elem()
	for i := 1; i < v.NumField(); i++ {
		if f := v.Field(i); !f.IsNil() {
			copied := reflect.New(f.Type().Elem())
			copied.Elem().Set(f.Elem())
			f.Set(copied)
		}
	}
	return e
}
