package scenario

import "reflect"

// APIVersion is the only scenario schema version this package reads.
const APIVersion = "churnlab/v1"

// Kind is the value of a scenario file's kind field.
const Kind = "Scenario"

// Scenario is one churn experiment: the cluster, the player workload, the
// config both systems deliver, the settings of the baseline operator and
// the reference service, a timeline of events, and how to shrink it all
// for a live run on one machine. The zero value is not useful; get one
// from Load or Parse, which apply defaults and validate.
type Scenario struct {
	APIVersion string    `yaml:"apiVersion"`
	Kind       string    `yaml:"kind"`
	Metadata   Metadata  `yaml:"metadata"`
	Seed       uint64    `yaml:"seed"`     // seeds every random stream of a run
	Duration   Duration  `yaml:"duration"` // simulated or wall-clock length of a run
	Cluster    Cluster   `yaml:"cluster"`
	Workload   Workload  `yaml:"workload"`
	Config     Config    `yaml:"config"`
	Baseline   Baseline  `yaml:"baseline"`
	Reference  Reference `yaml:"reference"`
	Events     []Event   `yaml:"events"`
	// Controllers are the control-plane clients the scenario declares
	// besides the baseline operator (controllers.go).
	Controllers []Controller `yaml:"controllers"`
	Live        Live         `yaml:"live"`
	Profile     string       `yaml:"profile"` // names the calibrated Model defaults
	Model       Model        `yaml:"model"`   // overrides of single profile constants

	source source // where each field came from, for error messages
	sets   []Set  // the overrides it was loaded with
}

// Metadata names a scenario. Name is the directory results are written to.
type Metadata struct {
	Name        string `yaml:"name"`
	Description string `yaml:"description"`
}

// Cluster is the Kubernetes cluster the game runs on.
type Cluster struct {
	Nodes      int       `yaml:"nodes"`      // worker nodes; each has one L2 cache in the reference system
	Pods       int       `yaml:"pods"`       // game pods (Deployment replicas) at the start
	PodStartup Duration  `yaml:"podStartup"` // scheduling and container start, before the config fetch
	Uplink     Bandwidth `yaml:"uplink"`     // config egress link shared by every config transfer
	APIServer  APIServer `yaml:"apiServer"`
	Etcd       Etcd      `yaml:"etcd"`
}

// APIServer holds kube-apiserver's limits. With priority and fairness
// on, their sum is divided among the priority levels (the 1.34 defaults
// and those declared here); requests beyond a level's seats wait in its
// queues and are answered 429 when the queues are full. With it off
// (--enable-priority-and-fairness=false), only the two inflight limits
// apply, to reads and to writes.
type APIServer struct {
	MaxRequestsInflight         int             `yaml:"maxRequestsInflight"`
	MaxMutatingRequestsInflight int             `yaml:"maxMutatingRequestsInflight"`
	PriorityAndFairness         bool            `yaml:"priorityAndFairness"`
	ExtraPriorityLevels         []PriorityLevel `yaml:"priorityLevels"`
	FlowSchemas                 []FlowSchema    `yaml:"flowSchemas"`
}

// Etcd holds the control plane's etcd settings.
type Etcd struct {
	HeartbeatInterval Duration `yaml:"heartbeatInterval"`
	ElectionTimeout   Duration `yaml:"electionTimeout"`
	MaxRequestBytes   Bytes    `yaml:"maxRequestBytes"`
}

// Workload is the player traffic.
type Workload struct {
	Players     Count       `yaml:"players"`     // concurrent players
	RequestRate Rate        `yaml:"requestRate"` // game requests per second across all pods
	PodCapacity Rate        `yaml:"podCapacity"` // requests per second one ready pod serves
	BaseLatency Duration    `yaml:"baseLatency"` // request latency with no queueing
	Timeout     Duration    `yaml:"timeout"`     // client timeout; slower requests count as failures
	Redis       Redis       `yaml:"redis"`
	HealthCheck HealthCheck `yaml:"healthCheck"`
}

// Redis is the shared game-state store.
type Redis struct {
	Shards           int      `yaml:"shards"`
	OpsPerRequest    float64  `yaml:"opsPerRequest"`
	CapacityPerShard Rate     `yaml:"capacityPerShard"` // ops per second one shard serves
	Latency          Duration `yaml:"latency"`          // op latency at low utilization
}

// HealthCheck is the load balancer's active health check of each pod.
type HealthCheck struct {
	Interval      Duration `yaml:"interval"`
	FailThreshold int      `yaml:"failThreshold"` // failed checks before a pod is taken out
	PassThreshold int      `yaml:"passThreshold"` // passed checks before a pod is put back
}

// Config is the game configuration both systems deliver to pods.
type Config struct {
	TotalSize Bytes `yaml:"totalSize"` // all config objects together (the baseline's bundle)
	Objects   int   `yaml:"objects"`   // config objects the baseline operator reloads
	Hunts     int   `yaml:"hunts"`     // hunt instances; a pod needs only its hunt's fragment
}

// PeakPods is the most game pods the scenario asks for at once: its
// starting count or its largest autoscale target.
func (s *Scenario) PeakPods() int {
	peak := s.Cluster.Pods
	for _, e := range s.Events {
		if e.Autoscale != nil {
			peak = max(peak, e.Autoscale.To)
		}
	}
	return peak
}

// FragmentSize is the config one hunt needs: what the reference service
// streams to a pod.
func (c Config) FragmentSize() Bytes { return c.TotalSize / Bytes(c.Hunts) }

// Baseline is the Veltrix-like operator.
type Baseline struct {
	Replicas             int      `yaml:"replicas"`
	Controller           bool     `yaml:"controller"`           // the per-pod reconcile loop runs
	ReconcileInterval    Duration `yaml:"reconcileInterval"`    // full reconcile of each pod this often
	APICallsPerReconcile int      `yaml:"apiCallsPerReconcile"` // GET pod, LIST configs, PATCH status, ...
	ReloadParallelism    int      `yaml:"reloadParallelism"`    // a reload's GETs in flight at once
	// Workers bounds a replica's reconciles at once (controller-runtime's
	// MaxConcurrentReconciles; the live operator's --workers); 0 runs a
	// loop per pod, as the 2023 operator did.
	Workers       int    `yaml:"workers"`
	ClientQPS     Rate   `yaml:"clientQPS"` // client-side rate limit per replica
	ClientBurst   int    `yaml:"clientBurst"`
	PriorityLevel string `yaml:"priorityLevel"` // the APF level its requests land in
	Gzip          bool   `yaml:"gzip"`          // compress the bundle; cold pods pay to decompress
	// Delivery is how pods get config: operator (the operator sends the
	// bundle, F4) or configMap (Helm renders each pod's config into one
	// shared ConfigMap, which the kubelet mounts, T6).
	Delivery string `yaml:"delivery"`
	// ConfigCache is none, or emptyDir: a pod keeps its config in a
	// volume that survives container restarts, and a new pod fills it by
	// reading every config object from the API server itself (T5).
	ConfigCache string `yaml:"configCache"`
}

// Deliveries lists the valid values of Baseline.Delivery.
var Deliveries = []string{"operator", "configMap"}

// ConfigCaches lists the valid values of Baseline.ConfigCache.
var ConfigCaches = []string{"none", "emptyDir"}

// Reference is the streaming config service.
type Reference struct {
	Replicas  int      `yaml:"replicas"`
	Debounce  Duration `yaml:"debounce"`  // pod restarts within this window keep the node's stream
	Keepalive Duration `yaml:"keepalive"` // gRPC keepalive
	L1        L1Cache  `yaml:"l1"`
	L2        L2Cache  `yaml:"l2"`
	Store     Store    `yaml:"store"`
}

// L1Cache is the service's in-process LRU.
type L1Cache struct {
	Entries    int   `yaml:"entries"`
	EntryBytes Bytes `yaml:"entryBytes"`
}

// L2Cache is the node-local cache shared by a node's pods.
type L2Cache struct {
	ReadsPerSecond Rate `yaml:"readsPerSecond"` // per node
}

// Store is the reference service's config store.
type Store struct {
	Kind                  string `yaml:"kind"` // bbolt, etcd or foundationdb
	ReadsPerSecondPerNode Rate   `yaml:"readsPerSecondPerNode"`
}

// StoreKinds lists the valid values of Store.Kind.
var StoreKinds = []string{"bbolt", "etcd", "foundationdb"}

// Event is one entry of the timeline. Exactly one of its actions is set.
type Event struct {
	At            Duration       `yaml:"at"`
	Autoscale     *Autoscale     `yaml:"autoscale"`
	RestartStorm  *RestartStorm  `yaml:"restartStorm"`
	RollingUpdate *RollingUpdate `yaml:"rollingUpdate"`
	ConfigChange  *ConfigChange  `yaml:"configChange"`
	OperatorScale *OperatorScale `yaml:"operatorScale"`
	ControllerOff *ControllerOff `yaml:"controllerOff"`
	ReplicaKill   *ReplicaKill   `yaml:"replicaKill"`
	StoreOutage   *StoreOutage   `yaml:"storeOutage"`
	NodeAdd       *NodeAdd       `yaml:"nodeAdd"`
	APIRestart    *APIRestart    `yaml:"apiServerRestart"`
}

// Autoscale changes the game Deployment's replicas to To, in equal steps
// spread over Over (at once when Over is zero).
type Autoscale struct {
	To   int      `yaml:"to"`
	Over Duration `yaml:"over"`
}

// RestartStorm deletes Fraction of the running pods, spread over Over; the
// Deployment recreates each one.
type RestartStorm struct {
	Fraction float64  `yaml:"fraction"`
	Over     Duration `yaml:"over"`
}

// RollingUpdate replaces every pod, MaxSurge new pods at a time, never
// leaving more than MaxUnavailable pods short of the desired count.
type RollingUpdate struct {
	MaxSurge       IntOrPercent `yaml:"maxSurge"`
	MaxUnavailable IntOrPercent `yaml:"maxUnavailable"`
}

// ConfigChange rewrites Hunts hunts' config; every pod of those hunts must
// receive it. Propagation is measured from here.
type ConfigChange struct {
	Hunts int `yaml:"hunts"`
}

// OperatorScale sets the baseline operator's replicas.
type OperatorScale struct {
	Replicas int `yaml:"replicas"`
}

// ControllerOff switches the baseline's reconcile loop off for For.
type ControllerOff struct {
	For Duration `yaml:"for"`
}

// ReplicaKill kills Replicas reference service replicas; they come back
// after For.
type ReplicaKill struct {
	Replicas int      `yaml:"replicas"`
	For      Duration `yaml:"for"`
}

// StoreOutage takes the reference service's store away for For.
type StoreOutage struct {
	For Duration `yaml:"for"`
}

// NodeAdd adds Nodes nodes to the cluster, spread over Over. Per-node
// controllers start a replica on each, and nodeAdd triggers fire.
type NodeAdd struct {
	Nodes int      `yaml:"nodes"`
	Over  Duration `yaml:"over"`
}

// APIRestart restarts kube-apiserver: for For it answers nothing, and
// then every controller replica relists (its start triggers fire again),
// as informers do when their watches break.
type APIRestart struct {
	For Duration `yaml:"for"`
}

// Name returns the key of the event's action as written in the file, for
// messages and reports; "" if none is set.
func (e Event) Name() string {
	if i := e.action(); i >= 0 {
		return eventType.Field(i).Tag.Get("yaml")
	}
	return ""
}

// The fields of Event after At are its actions, one per kind of event: a
// new kind is a field there, a type with a check method, and its
// handling by the sim and the live runner. Name, clone and Validate find
// the kinds here.
var eventType = reflect.TypeFor[Event]()

// eventKinds lists the keys of every kind of event, in field order.
func eventKinds() []string {
	var names []string
	for i := 1; i < eventType.NumField(); i++ {
		names = append(names, eventType.Field(i).Tag.Get("yaml"))
	}
	return names
}

// action returns the index of the first action field set, or -1.
func (e Event) action() int {
	v := reflect.ValueOf(e)
	for i := 1; i < v.NumField(); i++ {
		if !v.Field(i).IsNil() {
			return i
		}
	}
	return -1
}

// actions counts the action fields set; a valid event has one.
func (e Event) actions() int {
	n, v := 0, reflect.ValueOf(e)
	for i := 1; i < v.NumField(); i++ {
		if !v.Field(i).IsNil() {
			n++
		}
	}
	return n
}

// Live describes the live run on one machine.
type Live struct {
	// Duration is how much of the timeline a live run plays, from its
	// start; default the whole scenario. A live run takes this long in
	// wall time per system, so a scenario whose story ends early stops
	// there.
	Duration Duration  `yaml:"duration"`
	Scale    LiveScale `yaml:"scale"`
}

// LiveScale shrinks a scenario for one machine while keeping the ratios
// that decide its outcome. Pods multiplies every count and capacity that
// grows with the cluster (nodes, pods, autoscale targets, the uplink, API
// server inflight limits, the operator's and the declared controllers' client QPS and burst, store capacity), so
// egress demand per uplink byte and reconciles per API seat stay the same.
// Traffic multiplies the player load and what serves it (players, request
// rate, pod capacity), so utilization stays the same. Bytes multiplies
// the config's size and, with Pods, the uplink, so every pod's config
// keeps the uplink busy as long as at full scale. Latencies, intervals
// and fractions are not scaled. What the live harness lacks, the
// live-scale scenario drops: Redis, and the uplink's queue in front of
// etcd.
type LiveScale struct {
	Pods    float64 `yaml:"pods"`
	Traffic float64 `yaml:"traffic"`
	Bytes   float64 `yaml:"bytes"`
}
