package scenario

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Controller is one control-plane client a scenario declares: where its
// replicas run, how much it does at once, which API Priority and Fairness
// priority level its requests land in, and the requests each of its
// triggers makes. A platform team describes its own operators, agents and
// kubelets with these, and churnlab plays them against the API server in
// the sim and live.
type Controller struct {
	Name string `yaml:"name"`
	// Placement: exactly one of Replicas (a Deployment), PerNode (a
	// DaemonSet that follows the node count) or PerPod (a sidecar in
	// every game pod).
	Replicas int  `yaml:"replicas"`
	PerNode  bool `yaml:"perNode"`
	PerPod   bool `yaml:"perPod"`
	// Workers is the reconciles one replica runs at once
	// (controller-runtime's MaxConcurrentReconciles). A trigger that fires
	// while every worker is busy waits in the replica's work queue, where
	// a key already waiting is not added twice. 0 works every key at
	// once, as a loop per object does (the 2023 Veltrix operator).
	Workers int `yaml:"workers"`
	// QPS and Burst are the replica's client-side rate limit (client-go's
	// defaults are 5 and 10).
	QPS   Rate `yaml:"qps"`
	Burst int  `yaml:"burst"`
	// PriorityLevel or FlowSchema is the controller's APF identity: a
	// priority level by name (a 1.34 default or one the scenario
	// declares under cluster.apiServer.priorityLevels), or a flow schema
	// declared under cluster.apiServer.flowSchemas. Exactly one is set;
	// default workload-low, where a service account's requests land.
	PriorityLevel string `yaml:"priorityLevel"`
	FlowSchema    string `yaml:"flowSchema"`
	// Cache, when set, is a client-side cache in front of the
	// controller's GETs and LISTs: a read it has an entry for is answered
	// from the entry, stale or not, until the entry is TTL old.
	Cache    *ClientCache `yaml:"cache"`
	Triggers []Trigger    `yaml:"triggers"`
}

// ClientCache is a client-side read cache with a time to live.
type ClientCache struct {
	TTL Duration `yaml:"ttl"`
}

// Trigger is when a controller works and what it asks the API server for
// each time. Exactly one of Every, On and Watch is set.
type Trigger struct {
	// Every fires the trigger at this interval, each firing shifted by up
	// to Jitter. With Each set, it fires once per pod or per node the
	// replica is responsible for, each on its own key (a requeueAfter on
	// every object).
	Every  Duration `yaml:"every"`
	Jitter Duration `yaml:"jitter"`
	Each   string   `yaml:"each"`
	// On fires the trigger on a cluster event; see TriggerEvents.
	On string `yaml:"on"`
	// Watch fires the trigger whenever an object of this resource is
	// written, by any controller of the run, and every Resync for
	// everything it watches.
	Watch  string   `yaml:"watch"`
	Resync Duration `yaml:"resync"`
	// Requests are made in order, each after the one before answers.
	Requests []Request `yaml:"requests"`
}

// TriggerEvents lists the values of Trigger.On. start also fires when a
// replica must relist: after the API server restarts.
var TriggerEvents = []string{"start", "podStart", "podDelete", "nodeAdd", "configChange"}

// TriggerEach lists the values of Trigger.Each.
var TriggerEach = []string{"", "pod", "node"}

// Request is one kind of call a trigger makes, Repeat times.
type Request struct {
	Verb     string `yaml:"verb"`
	Resource string `yaml:"resource"`
	// Scope is cluster (every object of the resource), namespace, or
	// node: the replica's node's own objects, by field selector.
	Scope string `yaml:"scope"`
	// Objects is how many objects the request touches or returns, and
	// Scanned how many a LIST served by etcd must read to find them (a
	// field selector filters in the API server, after etcd has read every
	// object of the resource): a whole number or an expression of the
	// cluster's size, such as pods, nodes, pods/nodes or 2*nodes+10.
	Objects Expr  `yaml:"objects"`
	Scanned Expr  `yaml:"scanned"`
	Size    Bytes `yaml:"objectSize"` // each object's size
	// From says who serves a LIST or GET: cache (the API server's watch
	// cache: resourceVersion 0, or a consistent read from the cache as in
	// 1.34) or etcd.
	From   string `yaml:"from"`
	Repeat int    `yaml:"repeat"`
	// Parallel is how many of the Repeat requests are in flight at once
	// (default 1: one after another). Repeats touch different objects.
	Parallel int `yaml:"parallel"`
}

// Verbs lists the valid values of Request.Verb.
var Verbs = []string{"get", "list", "watch", "create", "update", "patch", "delete"}

// Resources lists the built-in resources a request may name; a CRD is
// named by its plural and group, such as falcos.falcosecurity.org.
var Resources = []string{"pods", "nodes", "configmaps", "secrets", "events", "leases", "endpoints", "services"}

// Scopes lists the valid values of Request.Scope.
var Scopes = []string{"cluster", "namespace", "node"}

// ReadSources lists the valid values of Request.From.
var ReadSources = []string{"cache", "etcd"}

// Mutating reports whether the verb writes.
func (r Request) Mutating() bool {
	switch r.Verb {
	case "create", "update", "patch", "delete":
		return true
	}
	return false
}

// PriorityLevel is an API Priority and Fairness priority level, as a
// PriorityLevelConfiguration's spec.limited describes it.
type PriorityLevel struct {
	Name string `yaml:"name"`
	// Exempt levels are never limited (exempt holds system:masters).
	Exempt bool `yaml:"exempt"`
	// Shares is nominalConcurrencyShares: the level's nominal part of
	// the server's concurrency limit, in proportion to every level's.
	Shares          int `yaml:"shares"`
	LendablePercent int `yaml:"lendablePercent"`
	// BorrowingLimitPercent caps what the level may borrow, as a percent
	// of its nominal limit; unset means no cap.
	BorrowingLimitPercent *int `yaml:"borrowingLimitPercent"`
	// Queues, HandSize and QueueLengthLimit shape its queuing. With no
	// queues, a request that finds no free seat is rejected at once.
	Queues           int `yaml:"queues"`
	HandSize         int `yaml:"handSize"`
	QueueLengthLimit int `yaml:"queueLengthLimit"`
}

// FlowSchema routes a controller's requests to a priority level, and says
// what distinguishes its flows (which share queues fairly).
type FlowSchema struct {
	Name          string `yaml:"name"`
	PriorityLevel string `yaml:"priorityLevel"`
	// Distinguisher is byUser (each replica's identity is one flow, the
	// default), byNamespace, or none (the whole schema is one flow).
	Distinguisher string `yaml:"distinguisher"`
}

// Distinguishers lists the valid values of FlowSchema.Distinguisher.
var Distinguishers = []string{"byUser", "byNamespace", "none"}

// DefaultPriorityLevels are kube-apiserver 1.34's priority levels, from
// the bootstrap configuration in
// k8s.io/apiserver@v0.34.4/pkg/apis/flowcontrol/bootstrap/default.go:
// MandatoryPriorityLevelConfigurationExempt and ...CatchAll (catch-all
// rejects rather than queues), and SuggestedPriorityLevelConfiguration
// System, NodeHigh, LeaderElection, WorkloadHigh, WorkloadLow and
// GlobalDefault. None sets borrowingLimitPercent, so each may borrow
// without a cap.
func DefaultPriorityLevels() []PriorityLevel {
	return []PriorityLevel{
		{Name: "exempt", Exempt: true},
		{Name: "system", Shares: 30, LendablePercent: 33, Queues: 64, HandSize: 6, QueueLengthLimit: 50},
		{Name: "node-high", Shares: 40, LendablePercent: 25, Queues: 64, HandSize: 6, QueueLengthLimit: 50},
		{Name: "leader-election", Shares: 10, LendablePercent: 0, Queues: 16, HandSize: 4, QueueLengthLimit: 50},
		{Name: "workload-high", Shares: 40, LendablePercent: 50, Queues: 128, HandSize: 6, QueueLengthLimit: 50},
		{Name: "workload-low", Shares: 100, LendablePercent: 90, Queues: 128, HandSize: 6, QueueLengthLimit: 50},
		{Name: "global-default", Shares: 20, LendablePercent: 50, Queues: 128, HandSize: 6, QueueLengthLimit: 50},
		{Name: "catch-all", Shares: 5, LendablePercent: 0},
	}
}

// PriorityLevels returns the 1.34 defaults and the levels the scenario
// declares. A declared level with a default's name replaces it, as an
// edited PriorityLevelConfiguration whose auto-update is off does; a
// later declaration replaces an earlier one.
func (a APIServer) PriorityLevels() []PriorityLevel {
	levels := DefaultPriorityLevels()
	for _, pl := range a.ExtraPriorityLevels {
		if i := slices.IndexFunc(levels, func(l PriorityLevel) bool { return l.Name == pl.Name }); i >= 0 {
			levels[i] = pl
		} else {
			levels = append(levels, pl)
		}
	}
	return levels
}

// Level returns the priority level called name, as PriorityLevels has it.
func (a APIServer) Level(name string) (PriorityLevel, bool) {
	levels := a.PriorityLevels()
	i := slices.IndexFunc(levels, func(l PriorityLevel) bool { return l.Name == name })
	if i < 0 {
		return PriorityLevel{}, false
	}
	return levels[i], true
}

// LevelOf returns the priority level a controller's requests land in,
// and the distinguisher that divides them into flows.
func (s *Scenario) LevelOf(c Controller) (level, distinguisher string) {
	if c.FlowSchema == "" {
		return c.PriorityLevel, "byUser"
	}
	for _, fs := range s.Cluster.APIServer.FlowSchemas {
		if fs.Name == c.FlowSchema {
			return fs.PriorityLevel, fs.Distinguisher
		}
	}
	return "", ""
}

func (s *Scenario) controllerDefaults() {
	a := &s.Cluster.APIServer
	set(s, "cluster.apiServer.priorityAndFairness", &a.PriorityAndFairness, true)
	for i := range a.FlowSchemas {
		set(s, fmt.Sprintf("cluster.apiServer.flowSchemas[%d].distinguisher", i), &a.FlowSchemas[i].Distinguisher, "byUser")
	}
	for i := range s.Controllers {
		c := &s.Controllers[i]
		p := fmt.Sprintf("controllers[%d].", i)
		set(s, p+"workers", &c.Workers, 1) // controller-runtime's MaxConcurrentReconciles
		set(s, p+"qps", &c.QPS, 5)         // client-go's rest.Config defaults
		set(s, p+"burst", &c.Burst, 10)
		if !s.source.has(p + "flowSchema") {
			set(s, p+"priorityLevel", &c.PriorityLevel, "workload-low") // flow schema service-accounts
		}
		for j := range c.Triggers {
			for k := range c.Triggers[j].Requests {
				r := &c.Triggers[j].Requests[k]
				rp := fmt.Sprintf("%striggers[%d].requests[%d].", p, j, k)
				set(s, rp+"scope", &r.Scope, "cluster")
				set(s, rp+"objects", &r.Objects, countExpr(1))
				set(s, rp+"objectSize", &r.Size, 2000)
				set(s, rp+"from", &r.From, "cache")
				set(s, rp+"repeat", &r.Repeat, 1)
				set(s, rp+"parallel", &r.Parallel, 1)
				if !s.source.has(rp + "scanned") {
					r.Scanned = r.Objects
				}
			}
		}
	}
}

var crdRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)+$`)

// apiServer checks cluster.apiServer's priority levels and flow schemas.
func (v *validator) apiServer(a APIServer) {
	levels, declared := map[string]bool{}, map[string]bool{}
	for _, pl := range DefaultPriorityLevels() {
		levels[pl.Name] = true
	}
	for i, pl := range a.ExtraPriorityLevels {
		p := fmt.Sprintf("cluster.apiServer.priorityLevels[%d]", i)
		switch {
		case !nameRE.MatchString(pl.Name):
			v.failf(p+".name", "want a lowercase name of letters, digits and '-', got %q", pl.Name)
		case declared[pl.Name]:
			v.failf(p+".name", "priority level %q is declared twice", pl.Name)
		}
		levels[pl.Name], declared[pl.Name] = true, true
		if pl.Exempt {
			continue
		}
		v.intRange(p+".shares", pl.Shares, 1, 1_000_000)
		v.intRange(p+".lendablePercent", pl.LendablePercent, 0, 100)
		if pl.BorrowingLimitPercent != nil {
			v.intRange(p+".borrowingLimitPercent", *pl.BorrowingLimitPercent, 0, 1_000_000)
		}
		v.intRange(p+".queues", pl.Queues, 0, 1_000_000)
		if pl.Queues > 0 {
			v.intRange(p+".handSize", pl.HandSize, 1, pl.Queues)
			v.intRange(p+".queueLengthLimit", pl.QueueLengthLimit, 1, 1_000_000)
		}
	}
	schemas := map[string]bool{}
	for i, fs := range a.FlowSchemas {
		p := fmt.Sprintf("cluster.apiServer.flowSchemas[%d]", i)
		if !nameRE.MatchString(fs.Name) {
			v.failf(p+".name", "want a lowercase name of letters, digits and '-', got %q", fs.Name)
		} else if schemas[fs.Name] {
			v.failf(p+".name", "flow schema %q is declared twice", fs.Name)
		}
		schemas[fs.Name] = true
		if !levels[fs.PriorityLevel] {
			v.failf(p+".priorityLevel", "unknown priority level %q; want one of %s", fs.PriorityLevel, levelNames(a.PriorityLevels()))
		}
		if !slices.Contains(Distinguishers, fs.Distinguisher) {
			v.failf(p+".distinguisher", "want one of %v, got %q", Distinguishers, fs.Distinguisher)
		}
	}
}

func levelNames(levels []PriorityLevel) string {
	var names []string
	for _, pl := range levels {
		if !slices.Contains(names, pl.Name) {
			names = append(names, pl.Name)
		}
	}
	return strings.Join(names, ", ")
}

// controller checks one controllers[i] entry; names holds the names seen
// so far.
func (v *validator) controller(p string, c Controller, names map[string]bool) {
	switch {
	case !nameRE.MatchString(c.Name) || len(c.Name) > 63:
		v.failf(p+".name", "want a lowercase name of letters, digits and '-', got %q", c.Name)
	case names[c.Name]:
		v.failf(p+".name", "controller %q is declared twice", c.Name)
	}
	names[c.Name] = true

	placements := 0
	for _, set := range []bool{c.Replicas != 0 || v.s.source.has(p+".replicas"), c.PerNode, c.PerPod} {
		if set {
			placements++
		}
	}
	switch {
	case placements != 1:
		// Placed at replicas: a problem at the controller itself would be
		// hidden by any other problem inside it.
		v.failf(p+".replicas", "a controller needs exactly one placement (replicas: N, perNode: true or perPod: true), got %d", placements)
	case !c.PerNode && !c.PerPod:
		v.intRange(p+".replicas", c.Replicas, 1, 100_000)
	}
	v.intRange(p+".workers", c.Workers, 0, 10_000)
	v.positive(p+".qps", float64(c.QPS))
	v.intRange(p+".burst", c.Burst, 1, 1_000_000)

	a := v.s.Cluster.APIServer
	switch {
	case c.FlowSchema != "" && v.s.source.has(p+".priorityLevel"):
		v.failf(p+".flowSchema", "set priorityLevel or flowSchema, not both")
	case c.FlowSchema != "":
		if !slices.ContainsFunc(a.FlowSchemas, func(fs FlowSchema) bool { return fs.Name == c.FlowSchema }) {
			v.failf(p+".flowSchema", "unknown flow schema %q; declare it under cluster.apiServer.flowSchemas", c.FlowSchema)
		}
	case !slices.ContainsFunc(a.PriorityLevels(), func(pl PriorityLevel) bool { return pl.Name == c.PriorityLevel }):
		v.failf(p+".priorityLevel", "unknown priority level %q; want one of %s", c.PriorityLevel, levelNames(a.PriorityLevels()))
	}
	if c.Cache != nil {
		v.duration(p+".cache.ttl", c.Cache.TTL, 1, Duration(24*time.Hour))
	}
	if len(c.Triggers) == 0 {
		v.failf(p+".triggers", "a controller needs at least one trigger (every, on or watch)")
	}
	for j, t := range c.Triggers {
		v.trigger(fmt.Sprintf("%s.triggers[%d]", p, j), t, c)
	}
}

func (v *validator) trigger(p string, t Trigger, c Controller) {
	every := t.Every != 0 || v.s.source.has(p+".every") // every: 0s is written, and wrong
	kinds := 0
	for _, set := range []bool{every, t.On != "", t.Watch != ""} {
		if set {
			kinds++
		}
	}
	if kinds != 1 {
		v.failf(p, "a trigger needs exactly one of every, on and watch, got %d", kinds)
		return
	}
	switch {
	case every:
		v.duration(p+".every", t.Every, Duration(time.Millisecond), Duration(24*time.Hour))
		v.duration(p+".jitter", t.Jitter, 0, t.Every)
		if !slices.Contains(TriggerEach, t.Each) {
			v.failf(p+".each", "want pod or node, got %q", t.Each)
		}
	case t.On != "":
		if !slices.Contains(TriggerEvents, t.On) {
			v.failf(p+".on", "unknown event %q; want one of %v", t.On, TriggerEvents)
		}
	default:
		v.resource(p+".watch", t.Watch)
		if v.s.source.has(p + ".resync") {
			v.duration(p+".resync", t.Resync, Duration(time.Second), Duration(24*time.Hour))
		}
	}
	if len(t.Requests) == 0 {
		v.failf(p+".requests", "a trigger needs at least one request")
	}
	for k, r := range t.Requests {
		rp := fmt.Sprintf("%s.requests[%d]", p, k)
		if !slices.Contains(Verbs, r.Verb) {
			v.failf(rp+".verb", "unknown verb %q; want one of %v", r.Verb, Verbs)
		}
		v.resource(rp+".resource", r.Resource)
		if !slices.Contains(Scopes, r.Scope) {
			v.failf(rp+".scope", "want one of %v, got %q", Scopes, r.Scope)
		} else if r.Scope == "node" && !c.PerNode && !c.PerPod {
			v.failf(rp+".scope", "scope node needs a replica on a node: a perNode or perPod controller")
		}
		if !slices.Contains(ReadSources, r.From) {
			v.failf(rp+".from", "want one of %v, got %q", ReadSources, r.From)
		}
		v.positive(rp+".objectSize", float64(r.Size))
		v.intRange(rp+".repeat", r.Repeat, 1, 100_000)
		v.intRange(rp+".parallel", r.Parallel, 1, max(1, r.Repeat))
	}
}

func (v *validator) resource(path, r string) {
	if !slices.Contains(Resources, r) && !crdRE.MatchString(r) {
		v.failf(path, "unknown resource %q; want one of %v, or a custom resource as plural.group (e.g. falcos.falcosecurity.org)", r, Resources)
	}
}
