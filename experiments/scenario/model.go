package scenario

import (
	"slices"
	"strconv"
	"time"
)

// Model holds the simulator's mechanism constants: what the cluster's
// parts cost, as opposed to the situation a scenario describes. A profile
// names one calibrated set of them; a scenario picks a profile and may
// override any single constant under model:, and `churnlab sweep` varies
// them by path (for example model.etcd.writeCost).
type Model struct {
	Uplink      UplinkModel      `yaml:"uplink"`
	APIServer   APIServerModel   `yaml:"apiServer"`
	Etcd        EtcdModel        `yaml:"etcd"`
	Operator    OperatorModel    `yaml:"operator"`
	Pods        PodModel         `yaml:"pods"`
	Players     PlayerModel      `yaml:"players"`
	Leaderboard LeaderboardModel `yaml:"leaderboard"`
	Traffic     TrafficModel     `yaml:"traffic"`
	Reference   ReferenceModel   `yaml:"reference"`
}

// ReferenceModel is what the reference service's parts cost.
type ReferenceModel struct {
	// A change is committed to the store (StoreCommit); each replica
	// watching the store then reads the new fragment (StoreRead) and
	// fans it out.
	StoreCommit Duration `yaml:"storeCommit"`
	StoreRead   Duration `yaml:"storeRead"`
}

// UplinkModel is the config uplink's protocol overhead.
type UplinkModel struct {
	// WireEfficiency is the share of the link's bits that carry payload
	// (the rest is TCP/IP and Ethernet framing).
	WireEfficiency float64 `yaml:"wireEfficiency"`
	// Buffer is what the uplink's egress port queues. Backlogged TCP
	// flows keep it full, and every other packet waits behind it.
	Buffer Bytes `yaml:"buffer"`
}

// APIServerModel is what kube-apiserver's own work costs a request. Its
// limits (priority levels, queues, seats) are the scenario's
// cluster.apiServer, not fitted constants.
type APIServerModel struct {
	Overhead   Duration `yaml:"overhead"`   // apiserver time per request besides etcd
	ObjectCost Duration `yaml:"objectCost"` // per object a request reads or returns: decoding, filtering
	// CacheReadBandwidth is how fast the watch cache copies and encodes
	// what a read it serves returns. A read etcd serves is paced by
	// model.etcd.readBandwidth instead.
	CacheReadBandwidth Bandwidth `yaml:"cacheReadBandwidth"`
	RetryAfter         Duration  `yaml:"retryAfter"` // a client's wait after a 429
}

// EtcdModel is the control plane's etcd leader: a raft loop that commits
// batches of requests, each batch one WAL fsync.
type EtcdModel struct {
	Fsync     Duration `yaml:"fsync"`     // WAL fsync of one batch
	RTT       Duration `yaml:"rtt"`       // leader-follower round trip
	WriteCost Duration `yaml:"writeCost"` // the leader's apply time per write
	ReadCost  Duration `yaml:"readCost"`  // the leader's time per linearizable read, besides its bytes
	// ReadBandwidth is how fast the leader reads and serializes the
	// objects a read returns.
	ReadBandwidth Bandwidth `yaml:"readBandwidth"`
}

// OperatorModel is how the Veltrix-like operator spends API calls.
type OperatorModel struct {
	// WritesPerReconcile of baseline.apiCallsPerReconcile are writes
	// (status patches); the rest are reads.
	WritesPerReconcile int `yaml:"writesPerReconcile"`
	// GzipDecompress is the time a cold pod spends inflating a gzipped
	// bundle (T4).
	GzipDecompress Duration `yaml:"gzipDecompress"`
	// GzipRatio is the compressed bundle's size over the plain one (T4).
	GzipRatio float64 `yaml:"gzipRatio"`
	// HelmTemplating is the time Helm takes to render a starting pod's
	// config (T6).
	HelmTemplating Duration `yaml:"helmTemplating"`
	// ConfigMapEntry is the size of one pod's rendered config in the
	// shared ConfigMap (T6).
	ConfigMapEntry Bytes `yaml:"configMapEntry"`
}

// PodModel is the game pod's lifecycle.
type PodModel struct {
	// LivenessDeadline: a pod that has not loaded config this long after
	// its container started fails its liveness probe and is restarted
	// by the kubelet, which starts its config fetch again.
	LivenessDeadline Duration `yaml:"livenessDeadline"`
	// MaxQueue is the work a pod queues before it sheds requests with a
	// 503: its HTTP server's bounded backlog.
	MaxQueue Duration `yaml:"maxQueue"`
	// ClientQPS and ClientBurst rate-limit a pod's own API client, which
	// fills an emptyDir config cache (T5).
	ClientQPS   Rate `yaml:"clientQPS"`
	ClientBurst int  `yaml:"clientBurst"`
	// A pod keeps its hunt's state in process, built from its config.
	// Each config it loads (its first, or a new bundle or fragment)
	// rebuilds that state, and for Warmup afterwards each request it
	// serves makes ColdOps Redis operations more than a warm pod's.
	ColdOps float64  `yaml:"coldOps"`
	Warmup  Duration `yaml:"warmup"`
}

// PlayerModel is how game clients behave when a request fails.
type PlayerModel struct {
	Retries    int      `yaml:"retries"`    // times a client retries a failed request
	RetryDelay Duration `yaml:"retryDelay"` // wait before each retry
}

// LeaderboardModel is the leaderboard job: every Period it reads the
// scores from Redis, OpsPerUpdate operations, and publishes; an update
// whose reads take longer than Period is abandoned.
type LeaderboardModel struct {
	Period       Duration `yaml:"period"`
	OpsPerUpdate int      `yaml:"opsPerUpdate"`
}

// TrafficModel chooses how game requests are simulated.
type TrafficModel struct {
	// Mode is perRequest (every request is an event) or aggregate (each
	// pod's queue advances in Step increments, and latency is sampled
	// from its state).
	Mode string   `yaml:"mode"`
	Step Duration `yaml:"step"`
}

// TrafficModes lists the valid values of TrafficModel.Mode.
var TrafficModes = []string{"perRequest", "aggregate"}

// Profiles lists the calibrated profiles a scenario may name.
var Profiles = []string{"veltrix-2023"}

// DefaultProfile is the profile of a scenario that names none.
const DefaultProfile = "veltrix-2023"

// veltrix2023 is the profile calibrated on the 2023 incident. Each
// constant says where it comes from: a documented default, a physical
// fact, or the SEED-FACTS claim it was fitted to (REPORT.md lists them).
func (s *Scenario) veltrix2023() {
	m := &s.Model
	// 1448 B of TCP payload per 1514 B Ethernet frame.
	set(s, "model.uplink.wireEfficiency", &m.Uplink.WireEfficiency, 1448.0/1514)
	// Fitted to F10's 800 ms in the storm: etcd's heartbeats wait behind
	// 94 MB, 788 ms of the saturated 1 Gbps uplink (a deep-buffered port).
	set(s, "model.uplink.buffer", &m.Uplink.Buffer, 94e6)

	// APF's levels, seats and queues are kube-apiserver 1.34's defaults
	// (controllers.go, DefaultPriorityLevels). What a request costs the
	// server besides etcd is assumed: 2 ms, 2 us an object, and 500 MB/s
	// out of the watch cache.
	set(s, "model.apiServer.overhead", &m.APIServer.Overhead, Duration(2*time.Millisecond))
	set(s, "model.apiServer.objectCost", &m.APIServer.ObjectCost, Duration(2*time.Microsecond))
	set(s, "model.apiServer.cacheReadBandwidth", &m.APIServer.CacheReadBandwidth, 500e6)
	set(s, "model.apiServer.retryAfter", &m.APIServer.RetryAfter, Duration(time.Second)) // apiserver's Retry-After: 1

	// fsync + RTT fitted to F10's 12 ms with no load. A reconcile lists
	// every config object (config.totalSize); readBandwidth is fitted to
	// L1, the leader saturating near 40 reconciles/s per replica:
	// 3 replicas x 40/s x 2 MB = 240 MB/s.
	set(s, "model.etcd.fsync", &m.Etcd.Fsync, Duration(10*time.Millisecond))
	set(s, "model.etcd.rtt", &m.Etcd.RTT, Duration(2*time.Millisecond))
	set(s, "model.etcd.writeCost", &m.Etcd.WriteCost, Duration(100*time.Microsecond))
	set(s, "model.etcd.readCost", &m.Etcd.ReadCost, Duration(100*time.Microsecond))
	set(s, "model.etcd.readBandwidth", &m.Etcd.ReadBandwidth, 240e6)

	set(s, "model.operator.writesPerReconcile", &m.Operator.WritesPerReconcile, 0)                      // F9: the reconcile only lists
	set(s, "model.operator.gzipDecompress", &m.Operator.GzipDecompress, Duration(300*time.Millisecond)) // T4
	set(s, "model.operator.gzipRatio", &m.Operator.GzipRatio, 450.0/2000)                               // T4: 2 MB -> 450 KB

	set(s, "model.operator.helmTemplating", &m.Operator.HelmTemplating, Duration(400*time.Millisecond)) // T6
	// Fitted to T6: the 1 MiB ConfigMap limit held 32 pods' entries.
	set(s, "model.operator.configMapEntry", &m.Operator.ConfigMapEntry, 1<<20/32)

	// client-go's defaults.
	set(s, "model.pods.clientQPS", &m.Pods.ClientQPS, 5)
	set(s, "model.pods.clientBurst", &m.Pods.ClientBurst, 10)
	// A startup probe of 30 failures 10 s apart.
	set(s, "model.pods.livenessDeadline", &m.Pods.LivenessDeadline, Duration(300*time.Second))
	// The storm's p99 is the ready pods' full queues plus Redis: maxQueue is
	// fitted to T1's 850 ms (three shards take Redis out), coldOps to the
	// rest of F2's 1.2 s, in which one shard saturates; warmup is assumed.
	set(s, "model.pods.maxQueue", &m.Pods.MaxQueue, Duration(850*time.Millisecond))
	set(s, "model.pods.coldOps", &m.Pods.ColdOps, 2.0)
	set(s, "model.pods.warmup", &m.Pods.Warmup, Duration(2*time.Second))

	set(s, "model.players.retries", &m.Players.Retries, 1)
	set(s, "model.players.retryDelay", &m.Players.RetryDelay, Duration(500*time.Millisecond))

	set(s, "model.leaderboard.period", &m.Leaderboard.Period, Duration(2*time.Second)) // A4
	set(s, "model.leaderboard.opsPerUpdate", &m.Leaderboard.OpsPerUpdate, 20)

	// A2: FoundationDB reads took 14 ms. A commit (read version,
	// resolution, log fsync) is fitted to R8's 45 ms propagation: 28 ms,
	// two reads' worth.
	set(s, "model.reference.storeRead", &m.Reference.StoreRead, Duration(14*time.Millisecond))
	set(s, "model.reference.storeCommit", &m.Reference.StoreCommit, Duration(28*time.Millisecond))

	set(s, "model.traffic.mode", &m.Traffic.Mode, "aggregate")
	set(s, "model.traffic.step", &m.Traffic.Step, Duration(50*time.Millisecond))
}

// OperatorName is the baseline operator's name as a controller: its
// client's, and its key in summary.json's controllers.
const OperatorName = "veltrix-operator"

// VeltrixConfigs is the resource of the operator's config objects, its
// CRD (baseline/crd.go).
const VeltrixConfigs = "veltrixconfigs.veltrix.churnlab.io"

// Operator is the baseline operator as a declared controller: the
// veltrix-2023 profile's description of the 2023 operator, from the
// baseline section. Each replica reconciles every pod every
// reconcileInterval: a LIST of every config object from etcd (F9), then
// GETs and PATCHes of the pod up to apiCallsPerReconcile calls. It
// reloads every config object, one GET each, reloadParallelism at a time,
// when a pod starts (F4). The simulator plays it as it plays any
// controller; only the bundle delivery is its own (sim/operator.go): a
// pod's loop starts when its container asks for config, and its reload
// runs on one replica; reloads make config generations; the operator
// sends a pod the bundle after its reload and after any reconcile that
// finds the pod on an older generation (F5, F6); and a reconcile whose
// LIST finds config changed reloads first, once for the replica. Live,
// the real operator (cmd/veltrix) runs with these replicas, workers,
// rate limits and calls.
func (s *Scenario) Operator() Controller {
	b, c := s.Baseline, s.Config
	size := Bytes(float64(c.TotalSize) / float64(max(1, c.Objects)))
	one := countExpr(1)
	reconcile := []Request{{Verb: "list", Resource: VeltrixConfigs, Scope: "namespace", Objects: countExpr(c.Objects),
		Scanned: countExpr(c.Objects), Size: size, From: "etcd", Repeat: 1, Parallel: 1}}
	writes := s.Model.Operator.WritesPerReconcile
	if gets := b.APICallsPerReconcile - 1 - writes; gets > 0 {
		reconcile = append(reconcile, Request{Verb: "get", Resource: "pods", Scope: "namespace", Objects: one, Scanned: one,
			Size: podObjectSize, From: "etcd", Repeat: gets, Parallel: 1})
	}
	if writes > 0 {
		reconcile = append(reconcile, Request{Verb: "patch", Resource: "pods", Scope: "namespace", Objects: one, Scanned: one,
			Size: podObjectSize, From: "etcd", Repeat: writes, Parallel: 1})
	}
	reload := []Request{{Verb: "get", Resource: VeltrixConfigs, Scope: "namespace", Objects: one, Scanned: one,
		Size: size, From: "etcd", Repeat: max(1, c.Objects), Parallel: min(b.ReloadParallelism, max(1, c.Objects))}}
	return Controller{Name: OperatorName, Replicas: b.Replicas, Workers: b.Workers, QPS: b.ClientQPS, Burst: b.ClientBurst,
		PriorityLevel: b.PriorityLevel, Triggers: []Trigger{
			OperatorReconcile: {Every: b.ReconcileInterval, Each: "pod", Requests: reconcile},
			OperatorReload:    {On: "podStart", Requests: reload},
		}}
}

// The operator's triggers, by index in Operator's Triggers.
const (
	OperatorReconcile = iota
	OperatorReload
)

// podObjectSize is a game pod object's size, as stored.
const podObjectSize Bytes = 4000

func countExpr(n int) Expr { return Expr{text: strconv.Itoa(n), root: exprNum(float64(n))} }

// applyProfile fills the model constants the file left out from the
// scenario's profile.
func (s *Scenario) applyProfile() {
	set(s, "profile", &s.Profile, DefaultProfile)
	switch s.Profile {
	case "veltrix-2023":
		s.veltrix2023()
	}
}

func (v *validator) model(m Model) {
	if !slices.Contains(Profiles, v.s.Profile) {
		v.failf("profile", "unknown profile %q; want one of %v", v.s.Profile, Profiles)
		return
	}
	v.floatRange("model.uplink.wireEfficiency", m.Uplink.WireEfficiency, 0.01, 1)
	v.floatRange("model.uplink.buffer", float64(m.Uplink.Buffer), 0, 1e12)
	v.duration("model.apiServer.objectCost", m.APIServer.ObjectCost, 0, Duration(time.Second))
	v.positive("model.apiServer.cacheReadBandwidth", float64(m.APIServer.CacheReadBandwidth))
	v.duration("model.apiServer.overhead", m.APIServer.Overhead, 0, Duration(time.Minute))
	v.duration("model.apiServer.retryAfter", m.APIServer.RetryAfter, 1, Duration(time.Hour))
	v.duration("model.etcd.fsync", m.Etcd.Fsync, 0, Duration(time.Minute))
	v.duration("model.etcd.rtt", m.Etcd.RTT, 0, Duration(time.Minute))
	v.duration("model.etcd.writeCost", m.Etcd.WriteCost, 0, Duration(time.Minute))
	v.duration("model.etcd.readCost", m.Etcd.ReadCost, 0, Duration(time.Minute))
	v.positive("model.etcd.readBandwidth", float64(m.Etcd.ReadBandwidth))
	v.intRange("model.operator.writesPerReconcile", m.Operator.WritesPerReconcile, 0, v.s.Baseline.APICallsPerReconcile)
	v.duration("model.operator.gzipDecompress", m.Operator.GzipDecompress, 0, Duration(time.Hour))
	v.floatRange("model.operator.gzipRatio", m.Operator.GzipRatio, 0.001, 1)
	v.duration("model.pods.livenessDeadline", m.Pods.LivenessDeadline, 1, Duration(24*time.Hour))
	v.duration("model.operator.helmTemplating", m.Operator.HelmTemplating, 0, Duration(time.Hour))
	v.positive("model.operator.configMapEntry", float64(m.Operator.ConfigMapEntry))
	v.positive("model.pods.clientQPS", float64(m.Pods.ClientQPS))
	v.intRange("model.pods.clientBurst", m.Pods.ClientBurst, 1, 1_000_000)
	v.duration("model.pods.maxQueue", m.Pods.MaxQueue, 0, Duration(time.Hour))
	v.floatRange("model.pods.coldOps", m.Pods.ColdOps, 0, 1000)
	v.duration("model.pods.warmup", m.Pods.Warmup, 0, Duration(time.Hour))
	v.intRange("model.players.retries", m.Players.Retries, 0, 100)
	v.duration("model.players.retryDelay", m.Players.RetryDelay, 0, Duration(time.Hour))
	v.duration("model.leaderboard.period", m.Leaderboard.Period, 1, Duration(time.Hour))
	v.intRange("model.leaderboard.opsPerUpdate", m.Leaderboard.OpsPerUpdate, 0, 1_000_000)
	v.duration("model.reference.storeCommit", m.Reference.StoreCommit, 0, Duration(time.Minute))
	v.duration("model.reference.storeRead", m.Reference.StoreRead, 0, Duration(time.Minute))
	if !slices.Contains(TrafficModes, m.Traffic.Mode) {
		v.failf("model.traffic.mode", "want one of %v, got %q", TrafficModes, m.Traffic.Mode)
	}
	v.duration("model.traffic.step", m.Traffic.Step, Duration(time.Microsecond), Duration(time.Second))
}
