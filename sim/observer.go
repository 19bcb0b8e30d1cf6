package sim

import "time"

// Observer is what a run reports as it goes: every measurement the models
// make, at offsets from the run's start. metrics.Recorder is one; the sim
// knows no more of it than this, so that it depends on nothing that does
// I/O (forbidden_test.go checks that, through every import).
type Observer interface {
	Request(start, latency time.Duration, ok bool)
	Requests(start, latency time.Duration, ok bool, n int64)
	Egress(from, to time.Duration, bytes float64)
	PodConfigLoaded(at, timeToConfig time.Duration, uplinkBytes float64)
	PodRestarted()
	ConfigPropagated(delay time.Duration)
	Pods(at time.Duration, total, ready int)
	APIRequest(at time.Duration, throttled bool)
	APIClientRequest(at time.Duration, client, level string, throttled bool)
	APIClientWait(client, level string, wait time.Duration)
	APIClientLatency(client, level string, latency time.Duration)
	LevelSeats(at time.Duration, level string, seats int)
	EtcdRequest(latency time.Duration)
	EtcdRound(at, latency time.Duration, election bool)
	LeaderboardUpdated(at, frozenAfter time.Duration)
}
