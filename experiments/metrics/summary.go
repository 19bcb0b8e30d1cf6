package metrics

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Run identifies the run a summary describes.
type Run struct {
	Scenario string
	Mode     string // sim, local, kube or kind
	System   string // baseline or reference
	Seed     uint64
	Duration time.Duration
}

// Summary is summary.json: the interface that tests, plots, the gate and
// REPORT.md read. Every key is always present; a nil pointer is written as
// null and means the run did not measure it.
type Summary struct {
	Scenario    string           `json:"scenario"`
	Mode        string           `json:"mode"`
	System      string           `json:"system"`
	Seed        uint64           `json:"seed"`
	DurationS   float64          `json:"duration_s"`
	Requests    RequestStats     `json:"requests"`
	Egress      EgressStats      `json:"egress"`
	APIServer   APIServerStats   `json:"apiserver"`
	Etcd        EtcdStats        `json:"etcd"`
	Config      ConfigStats      `json:"config"`
	Pods        PodStats         `json:"pods"`
	Leaderboard LeaderboardStats `json:"leaderboard"`
	// Controllers and PriorityLevels are keyed by name: every API client
	// the run played (its declared controllers, the baseline operator,
	// the pods' own clients) and every APF priority level a request
	// landed in. Null where not measured. Live, they count the declared
	// controllers' requests as the driver saw them, and a level's queue
	// waits and seats are kube-apiserver's own (its
	// apiserver_flowcontrol_request_wait_duration_seconds, and the peak
	// of apiserver_flowcontrol_current_executing_seats scraped each
	// second), of every client in the level.
	Controllers    map[string]APIStats `json:"controllers"`
	PriorityLevels map[string]APIStats `json:"priority_levels"`
}

// RequestStats covers the game requests.
type RequestStats struct {
	Total            *int64   `json:"total"`
	SuccessRatio     *float64 `json:"success_ratio"`
	P50Ms            *float64 `json:"p50_ms"`
	P95Ms            *float64 `json:"p95_ms"`
	P99Ms            *float64 `json:"p99_ms"`
	WorstWindowP99Ms *float64 `json:"worst_window_p99_ms"`
}

// EgressStats covers the config uplink.
type EgressStats struct {
	TotalBytes       *float64 `json:"total_bytes"`
	PeakBytesPerS    *float64 `json:"peak_bytes_per_s"`
	BytesPerPodStart *float64 `json:"bytes_per_pod_start"`
}

// APIServerStats covers kube-apiserver.
type APIServerStats struct {
	Requests     *int64   `json:"requests"`
	Throttled429 *int64   `json:"throttled_429"`
	PeakRPS      *float64 `json:"peak_rps"`
}

// EtcdStats covers the control plane's etcd.
type EtcdStats struct {
	LeaderElections *int64   `json:"leader_elections"`
	ElectionP99Ms   *float64 `json:"election_p99_ms"`
	RequestP99Ms    *float64 `json:"request_p99_ms"`
}

// ConfigStats covers config delivery.
type ConfigStats struct {
	PropagationP99Ms  *float64 `json:"propagation_p99_ms"`
	TimeToConfigP99Ms *float64 `json:"time_to_config_p99_ms"`
}

// PodStats covers the game pods.
type PodStats struct {
	Restarts      *int64 `json:"restarts"`
	UnhealthyPeak *int64 `json:"unhealthy_peak"`
}

// LeaderboardStats covers the leaderboard job.
type LeaderboardStats struct {
	MaxStalenessS *float64 `json:"max_staleness_s"`
	FrozenS       *float64 `json:"frozen_s"`
}

// Summary condenses what r recorded. API server and etcd stats stay null
// if neither was observed, and leaderboard stats if it never updated.
func (r *Recorder) Summary(run Run) *Summary {
	s := &Summary{
		Scenario:  run.Scenario,
		Mode:      run.Mode,
		System:    run.System,
		Seed:      run.Seed,
		DurationS: run.Duration.Seconds(),
	}
	total := r.requests.TotalCount()
	s.Requests.Total = &total
	if total > 0 {
		s.Requests.SuccessRatio = ptr(round(float64(r.requestsOK)/float64(total), 6))
		s.Requests.P50Ms = quantileMs(r.requests, 50)
		s.Requests.P95Ms = quantileMs(r.requests, 95)
		s.Requests.P99Ms = quantileMs(r.requests, 99)
		worst := 0.0
		for _, w := range r.windows {
			if w.latency != nil {
				worst = max(worst, *quantileMs(w.latency, 99))
			}
		}
		s.Requests.WorstWindowP99Ms = &worst
	}

	egress, peak := 0.0, 0.0
	for _, w := range r.windows {
		egress += w.egressBytes
		peak = max(peak, w.egressBytes/Window.Seconds())
	}
	s.Egress.TotalBytes = ptr(math.Round(egress))
	s.Egress.PeakBytesPerS = ptr(math.Round(peak))
	if r.podStarts > 0 {
		s.Egress.BytesPerPodStart = ptr(math.Round(r.podStartBytes / float64(r.podStarts)))
	}

	s.Config.TimeToConfigP99Ms = quantileMs(r.timeToConfig, 99)
	s.Config.PropagationP99Ms = quantileMs(r.propagation, 99)

	if r.controlPlane {
		s.APIServer.Requests = ptr(r.apiRequests)
		s.APIServer.Throttled429 = ptr(r.api429)
		peak := 0.0
		for _, w := range r.windows {
			peak = max(peak, float64(w.apiRequests)/Window.Seconds())
		}
		s.APIServer.PeakRPS = &peak
	}
	if r.etcd {
		s.Etcd.LeaderElections = ptr(r.elections)
		s.Etcd.ElectionP99Ms = quantileMs(r.etcdRounds, 99)
		s.Etcd.RequestP99Ms = quantileMs(r.etcdRequests, 99)
	}
	if r.leaderboard {
		// The gap still open at the end of the run counts too.
		maxGap, frozen := r.boardMaxGap, r.boardFrozen
		if open := run.Duration - r.boardUpdated; open > 0 {
			maxGap = max(maxGap, open)
			if open > r.boardFrozenAt {
				frozen += open
			}
		}
		s.Leaderboard.MaxStalenessS = ptr(round(maxGap.Seconds(), 3))
		s.Leaderboard.FrozenS = ptr(round(frozen.Seconds(), 3))
	}

	s.Controllers = apiStats(r.clients, false)
	s.PriorityLevels = apiStats(r.levels, true)

	s.Pods.Restarts = ptr(r.restarts)
	if r.podsEverTracked {
		s.Pods.UnhealthyPeak = ptr(int64(r.unhealthyPeak))
	}
	return s
}

// quantileMs returns the q-th percentile in milliseconds, or nil for an
// empty histogram.
func quantileMs(h *hdrhistogram.Histogram, q float64) *float64 {
	if h.TotalCount() == 0 {
		return nil
	}
	return ptr(round(float64(h.ValueAtQuantile(q))/1000, 3))
}

func ptr[T any](v T) *T { return &v }

func round(v float64, decimals int) float64 {
	p := math.Pow(10, float64(decimals))
	return math.Round(v*p) / p
}

// Write writes s as indented JSON with a trailing newline.
func (s *Summary) Write(w io.Writer) error {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	_, err = w.Write(append(data, '\n'))
	return err
}

// ReadFile reads the file at path with read (ReadSummary, ReadTimeseries,
// ReadSweep); a read error names the file, and one from opening it is
// os.Open's own (errors.Is(err, fs.ErrNotExist) holds for a missing file).
func ReadFile[T any](path string, read func(io.Reader) (*T, error)) (*T, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	v, err := read(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return v, nil
}

// ReadSummary reads a summary.json, rejecting unknown keys so that a file
// from another version is not misread.
func ReadSummary(rd io.Reader) (*Summary, error) {
	dec := json.NewDecoder(rd)
	dec.DisallowUnknownFields()
	var s Summary
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("metrics: reading summary: %w", err)
	}
	return &s, nil
}
