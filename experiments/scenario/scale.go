package scenario

import "math"

// AtLiveScale returns a copy of s shrunk by its live.scale factors, as a
// live run on one machine plays it. See LiveScale for what each factor
// multiplies and why the outcome-deciding ratios survive. Counts round to
// the nearest whole number and never fall below 1.
func (s *Scenario) AtLiveScale() *Scenario {
	pods, traffic := s.Live.Scale.Pods, s.Live.Scale.Traffic
	out := *s
	out.Events = make([]Event, len(s.Events))
	for i, e := range s.Events {
		out.Events[i] = e.clone()
		if a := out.Events[i].Autoscale; a != nil {
			a.To = scaleCount(a.To, pods)
		}
	}
	out.Live.Scale = LiveScale{Pods: 1, Traffic: 1}

	c := &out.Cluster
	c.Nodes = scaleCount(c.Nodes, pods)
	c.Pods = scaleCount(c.Pods, pods)
	c.Uplink = Bandwidth(float64(c.Uplink) * pods)
	c.APIServer.MaxRequestsInflight = scaleCount(c.APIServer.MaxRequestsInflight, pods)
	c.APIServer.MaxMutatingRequestsInflight = scaleCount(c.APIServer.MaxMutatingRequestsInflight, pods)

	w := &out.Workload
	w.Players = Count(math.Max(1, math.Round(float64(w.Players)*traffic)))
	w.RequestRate = Rate(float64(w.RequestRate) * traffic)
	w.PodCapacity = Rate(float64(w.PodCapacity) * traffic / pods) // each pod stays as busy
	w.Redis.CapacityPerShard = Rate(float64(w.Redis.CapacityPerShard) * traffic)

	out.Baseline.ClientQPS = Rate(float64(out.Baseline.ClientQPS) * pods)
	out.Reference.Store.ReadsPerSecondPerNode = Rate(float64(out.Reference.Store.ReadsPerSecondPerNode) * pods)
	return &out
}

func scaleCount(n int, factor float64) int {
	return max(1, int(math.Round(float64(n)*factor)))
}

// clone copies e and the action it points to.
func (e Event) clone() Event {
	e.Autoscale = clonePtr(e.Autoscale)
	e.RestartStorm = clonePtr(e.RestartStorm)
	e.RollingUpdate = clonePtr(e.RollingUpdate)
	e.ConfigChange = clonePtr(e.ConfigChange)
	e.OperatorScale = clonePtr(e.OperatorScale)
	e.ControllerOff = clonePtr(e.ControllerOff)
	e.ReplicaKill = clonePtr(e.ReplicaKill)
	e.StoreOutage = clonePtr(e.StoreOutage)
	return e
}

func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}
