package scenario

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// ParseFS reads, decodes, defaults and validates the scenario file name
// in fsys, with sets overriding its fields; a file it extends is read
// from fsys too. Every problem found is returned at once, as *Errors.
// Messages name files as fsys shows them (see Shower). Package
// scenariofile loads from the operating system's files.
func ParseFS(fsys fs.FS, name string, sets ...Set) (*Scenario, error) {
	files := &fileSet{fsys: fsys, names: map[string]string{}}
	file := files.show(name)
	data, err := fs.ReadFile(fsys, name)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err // named below as the user knows the file
		}
		return nil, fmt.Errorf("scenario: open %s: %w", file, err)
	}
	return parse(files, file, data, sets)
}

// Parse is ParseFS for a file already in memory, which extends none;
// file names it in errors.
func Parse(file string, data []byte, sets ...Set) (*Scenario, error) {
	return parse(nil, file, data, sets)
}

// Shower is an fs.FS that names its files differently in messages: as
// the paths a user gave for them.
type Shower interface {
	fs.FS
	Show(name string) string
}

// fileSet is the files a scenario is parsed from, and the fs name of each
// file it has shown in a message.
type fileSet struct {
	fsys  fs.FS
	names map[string]string // shown name -> fs name
}

func (f *fileSet) show(name string) string {
	shown := name
	if s, ok := f.fsys.(Shower); ok {
		shown = s.Show(name)
	}
	f.names[shown] = name
	return shown
}

// parse is the chain, the same for every schema version: the file it
// extends merged under it, then sets applied, then strict decode chosen
// by apiVersion, then defaults, then Validate.
func parse(files *fileSet, file string, data []byte, sets []Set) (*Scenario, error) {
	root, err := parseDocument(file, data)
	if err != nil {
		return nil, err
	}
	origin := origins{}
	if root, err = resolveExtends(files, file, root, 0, origin); err != nil {
		return nil, err
	}
	for _, s := range sets {
		if err := applySet(root, s, origin); err != nil {
			return nil, err
		}
	}
	if err := checkAPIVersion(file, root, origin); err != nil {
		return nil, err
	}
	s := &Scenario{source: source{file: file, pos: map[string]place{}}, sets: sets}
	errs := &Errors{}
	d := &decoder{src: s.source, origin: origin, errs: errs}
	d.decodeStruct(root, reflect.ValueOf(s).Elem(), "")
	s.applyDefaults()
	s.validate(errs)
	if err := errs.orNil(); err != nil {
		return nil, err
	}
	return s, nil
}

// checkAPIVersion stops early on a file of another schema: its fields
// would otherwise come back as a wall of unknown-field errors.
func checkAPIVersion(file string, root *yaml.Node, origin origins) error {
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value != "apiVersion" {
			continue
		}
		v := root.Content[i+1]
		if v.Value != APIVersion {
			return &Errors{List: []FieldError{{File: origin.of(v, file), Pos: Pos{v.Line, v.Column}, Path: "apiVersion",
				Msg: fmt.Sprintf("unsupported apiVersion %q (this churnlab reads %s)", v.Value, APIVersion)}}}
		}
		return nil
	}
	return &Errors{List: []FieldError{{File: file, Path: "apiVersion",
		Msg: fmt.Sprintf("missing; the first line of a scenario is apiVersion: %s", APIVersion)}}}
}

// File returns the path the scenario was loaded from, as its messages
// show it.
func (s *Scenario) File() string { return s.source.file }

// Overrides returns the path=value sets it was loaded with.
func (s *Scenario) Overrides() []Set { return s.sets }

// applyDefaults fills every field the file left out. This is the one place
// defaults live. They describe the 2023 incident (ids from SEED-FACTS.md),
// so a scenario file only writes what it changes. A field the file wrote,
// even as 0, keeps its value.
func (s *Scenario) applyDefaults() {
	set(s, "seed", &s.Seed, 1)
	set(s, "duration", &s.Duration, Duration(5*time.Minute))

	c := &s.Cluster
	set(s, "cluster.nodes", &c.Nodes, 12)
	set(s, "cluster.pods", &c.Pods, 120)
	set(s, "cluster.podStartup", &c.PodStartup, Duration(2*time.Second))
	set(s, "cluster.uplink", &c.Uplink, 1e9/8) // F6: 1 Gbps
	// kube-apiserver's own defaults.
	set(s, "cluster.apiServer.maxRequestsInflight", &c.APIServer.MaxRequestsInflight, 400)
	set(s, "cluster.apiServer.maxMutatingRequestsInflight", &c.APIServer.MaxMutatingRequestsInflight, 200)
	// etcd's own defaults.
	set(s, "cluster.etcd.heartbeatInterval", &c.Etcd.HeartbeatInterval, Duration(100*time.Millisecond))
	set(s, "cluster.etcd.electionTimeout", &c.Etcd.ElectionTimeout, Duration(time.Second))
	set(s, "cluster.etcd.maxRequestBytes", &c.Etcd.MaxRequestBytes, Bytes(1.5*(1<<20)))

	w := &s.Workload
	set(s, "workload.players", &w.Players, 250_000)        // F1
	set(s, "workload.requestRate", &w.RequestRate, 85_000) // F2
	set(s, "workload.podCapacity", &w.PodCapacity, 1000)
	set(s, "workload.baseLatency", &w.BaseLatency, Duration(25*time.Millisecond))
	set(s, "workload.timeout", &w.Timeout, Duration(2*time.Second))
	set(s, "workload.redis.shards", &w.Redis.Shards, 1) // F1: one Redis cluster
	set(s, "workload.redis.opsPerRequest", &w.Redis.OpsPerRequest, 1)
	set(s, "workload.redis.capacityPerShard", &w.Redis.CapacityPerShard, 100_000)
	set(s, "workload.redis.latency", &w.Redis.Latency, Duration(time.Millisecond))
	set(s, "workload.healthCheck.interval", &w.HealthCheck.Interval, Duration(5*time.Second))
	set(s, "workload.healthCheck.failThreshold", &w.HealthCheck.FailThreshold, 3)
	set(s, "workload.healthCheck.passThreshold", &w.HealthCheck.PassThreshold, 2)

	set(s, "config.totalSize", &s.Config.TotalSize, 2_000_000) // F5: 2 MB
	set(s, "config.objects", &s.Config.Objects, 80)            // 25 KB each, as restart-storm.yaml
	set(s, "config.hunts", &s.Config.Hunts, 20)

	b := &s.Baseline
	set(s, "baseline.replicas", &b.Replicas, 3) // T2: 3 before the team scaled to 12
	set(s, "baseline.controller", &b.Controller, true)
	set(s, "baseline.reconcileInterval", &b.ReconcileInterval, Duration(5*time.Second)) // F9
	set(s, "baseline.apiCallsPerReconcile", &b.APICallsPerReconcile, 1)                 // F9: a list of the config objects
	set(s, "baseline.reloadParallelism", &b.ReloadParallelism, 1)                       // F4: one object after another, as calibrated
	set(s, "baseline.clientQPS", &b.ClientQPS, 50)                                      // F11
	set(s, "baseline.clientBurst", &b.ClientBurst, 100)
	set(s, "baseline.priorityLevel", &b.PriorityLevel, "global-default") // F11: a token user, in flow schema global-default
	set(s, "baseline.delivery", &b.Delivery, "operator")
	set(s, "baseline.configCache", &b.ConfigCache, "none")

	r := &s.Reference
	set(s, "reference.replicas", &r.Replicas, 3)                          // R7
	set(s, "reference.debounce", &r.Debounce, Duration(10*time.Second))   // R3
	set(s, "reference.keepalive", &r.Keepalive, Duration(30*time.Second)) // R7
	set(s, "reference.l1.entries", &r.L1.Entries, 1000)                   // R5
	set(s, "reference.l1.entryBytes", &r.L1.EntryBytes, 512)              // R5
	set(s, "reference.l2.readsPerSecond", &r.L2.ReadsPerSecond, 100_000)  // R5
	set(s, "reference.store.kind", &r.Store.Kind, "bbolt")
	set(s, "reference.store.readsPerSecondPerNode", &r.Store.ReadsPerSecondPerNode, 5000) // R4

	for i := range s.Events {
		e := &s.Events[i]
		p := fmt.Sprintf("events[%d].", i)
		if e.RollingUpdate != nil { // Kubernetes' Deployment defaults
			set(s, p+"rollingUpdate.maxSurge", &e.RollingUpdate.MaxSurge, IntOrPercent{25, true})
			set(s, p+"rollingUpdate.maxUnavailable", &e.RollingUpdate.MaxUnavailable, IntOrPercent{25, true})
		}
		if e.ConfigChange != nil {
			set(s, p+"configChange.hunts", &e.ConfigChange.Hunts, 1)
		}
		if e.ReplicaKill != nil {
			set(s, p+"replicaKill.replicas", &e.ReplicaKill.Replicas, 1)
		}
	}

	s.controllerDefaults()

	set(s, "live.duration", &s.Live.Duration, s.Duration)
	set(s, "live.scale.pods", &s.Live.Scale.Pods, 0.1)
	set(s, "live.scale.traffic", &s.Live.Scale.Traffic, 0.01)
	set(s, "live.scale.bytes", &s.Live.Scale.Bytes, 1)
	s.applyProfile()
}

func set[T any](s *Scenario, path string, field *T, value T) {
	if !s.source.has(path) {
		*field = value
	}
}

// Validate reports every problem with s's values at once, as *Errors.
func (s *Scenario) Validate() error {
	errs := &Errors{}
	s.validate(errs)
	return errs.orNil()
}

var nameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// validate appends the problems of s to errs, skipping fields that already
// failed to decode.
func (s *Scenario) validate(errs *Errors) {
	v := validator{s: s, errs: errs}
	if s.Kind != Kind {
		v.failf("kind", "want %q, got %q", Kind, s.Kind)
	}
	if !nameRE.MatchString(s.Metadata.Name) || len(s.Metadata.Name) > 63 {
		v.failf("metadata.name", "want a lowercase name of letters, digits and '-' (it names the results directory), got %q", s.Metadata.Name)
	}
	v.duration("duration", s.Duration, 1, Duration(24*time.Hour))

	c := s.Cluster
	v.intRange("cluster.nodes", c.Nodes, 1, 100_000)
	v.intRange("cluster.pods", c.Pods, 1, 1_000_000)
	v.duration("cluster.podStartup", c.PodStartup, 0, Duration(time.Hour))
	v.positive("cluster.uplink", float64(c.Uplink))
	v.intRange("cluster.apiServer.maxRequestsInflight", c.APIServer.MaxRequestsInflight, 1, 1_000_000)
	v.intRange("cluster.apiServer.maxMutatingRequestsInflight", c.APIServer.MaxMutatingRequestsInflight, 1, 1_000_000)
	v.duration("cluster.etcd.heartbeatInterval", c.Etcd.HeartbeatInterval, 1, Duration(time.Minute))
	if !v.failed("cluster.etcd.heartbeatInterval") && c.Etcd.ElectionTimeout < 5*c.Etcd.HeartbeatInterval {
		// etcd itself refuses to start otherwise.
		v.failf("cluster.etcd.electionTimeout", "must be at least 5 x heartbeatInterval (%s), got %s", c.Etcd.HeartbeatInterval*5, c.Etcd.ElectionTimeout)
	}
	v.positive("cluster.etcd.maxRequestBytes", float64(c.Etcd.MaxRequestBytes))
	v.apiServer(c.APIServer)

	w := s.Workload
	v.positive("workload.requestRate", float64(w.RequestRate))
	v.positive("workload.podCapacity", float64(w.PodCapacity))
	if w.Timeout <= w.BaseLatency {
		v.failf("workload.timeout", "must be longer than workload.baseLatency (%s), got %s", w.BaseLatency, w.Timeout)
	}
	v.intRange("workload.redis.shards", w.Redis.Shards, 1, 100_000)
	v.floatRange("workload.redis.opsPerRequest", w.Redis.OpsPerRequest, 0, 1000)
	v.positive("workload.redis.capacityPerShard", float64(w.Redis.CapacityPerShard))
	v.duration("workload.healthCheck.interval", w.HealthCheck.Interval, 1, Duration(time.Hour))
	v.intRange("workload.healthCheck.failThreshold", w.HealthCheck.FailThreshold, 1, 100)
	v.intRange("workload.healthCheck.passThreshold", w.HealthCheck.PassThreshold, 1, 100)

	cfg := s.Config
	v.positive("config.totalSize", float64(cfg.TotalSize))
	v.intRange("config.objects", cfg.Objects, 1, 1_000_000)
	v.intRange("config.hunts", cfg.Hunts, 1, 1_000_000)
	if cfg.TotalSize > 0 && Bytes(cfg.Hunts) > cfg.TotalSize && !v.failed("config.hunts") {
		v.failf("config.hunts", "%d hunts cannot share %s of config (under one byte each)", cfg.Hunts, cfg.TotalSize)
	}

	b := s.Baseline
	v.intRange("baseline.replicas", b.Replicas, 1, 1000)
	v.duration("baseline.reconcileInterval", b.ReconcileInterval, 1, Duration(time.Hour))
	v.intRange("baseline.apiCallsPerReconcile", b.APICallsPerReconcile, 1, 1000)
	v.intRange("baseline.reloadParallelism", b.ReloadParallelism, 1, 1000)
	v.intRange("baseline.workers", b.Workers, 0, 100_000)
	v.positive("baseline.clientQPS", float64(b.ClientQPS))
	v.intRange("baseline.clientBurst", b.ClientBurst, 1, 1_000_000)
	if !slices.Contains(Deliveries, b.Delivery) {
		v.failf("baseline.delivery", "want one of %v, got %q", Deliveries, b.Delivery)
	}
	if !slices.ContainsFunc(c.APIServer.PriorityLevels(), func(pl PriorityLevel) bool { return pl.Name == b.PriorityLevel }) {
		v.failf("baseline.priorityLevel", "unknown priority level %q; want one of %s", b.PriorityLevel, levelNames(c.APIServer.PriorityLevels()))
	}
	if !slices.Contains(ConfigCaches, b.ConfigCache) {
		v.failf("baseline.configCache", "want one of %v, got %q", ConfigCaches, b.ConfigCache)
	}

	r := s.Reference
	v.intRange("reference.replicas", r.Replicas, 1, 1000)
	v.duration("reference.debounce", r.Debounce, 0, Duration(time.Hour))
	v.duration("reference.keepalive", r.Keepalive, 1, Duration(time.Hour))
	v.intRange("reference.l1.entries", r.L1.Entries, 1, 100_000_000)
	v.positive("reference.l1.entryBytes", float64(r.L1.EntryBytes))
	v.positive("reference.l2.readsPerSecond", float64(r.L2.ReadsPerSecond))
	if !slices.Contains(StoreKinds, r.Store.Kind) {
		v.failf("reference.store.kind", "want one of %v, got %q", StoreKinds, r.Store.Kind)
	}
	v.positive("reference.store.readsPerSecondPerNode", float64(r.Store.ReadsPerSecondPerNode))

	for i, e := range s.Events {
		v.event(fmt.Sprintf("events[%d]", i), e)
	}
	names := map[string]bool{}
	for i, c := range s.Controllers {
		v.controller(fmt.Sprintf("controllers[%d]", i), c, names)
	}

	v.floatRange("live.scale.pods", s.Live.Scale.Pods, math.SmallestNonzeroFloat64, 1)
	v.floatRange("live.scale.traffic", s.Live.Scale.Traffic, math.SmallestNonzeroFloat64, 1)
	v.floatRange("live.scale.bytes", s.Live.Scale.Bytes, math.SmallestNonzeroFloat64, 1)
	if !v.failed("duration") { // else live.duration's default is wrong too
		switch {
		case s.Live.Duration < 1:
			v.failf("live.duration", "must be above 0, got %s", s.Live.Duration)
		case s.Live.Duration > s.Duration:
			v.failf("live.duration", "must be at most the scenario's duration %s, got %s", s.Duration, s.Live.Duration)
		}
	}
	v.model(s.Model)
}

func (v *validator) event(p string, e Event) {
	if n := e.actions(); n != 1 {
		kinds := eventKinds()
		v.failf(p, "an event needs exactly one action (%s or %s), got %d", strings.Join(kinds[:len(kinds)-1], ", "), kinds[len(kinds)-1], n)
		return
	}
	if !v.s.source.has(p + ".at") {
		v.failf(p+".at", "missing; say when the event happens, e.g. at: 60s")
	}
	runLength := Duration(math.MaxInt64)
	if !v.failed("duration") {
		runLength = v.s.Duration
	}
	v.duration(p+".at", e.At, 0, runLength)
	c := eventCheck{v: v, p: p + "." + e.Name(), end: func(path string, over Duration) { // the action must finish inside the run
		if !v.failed(path) && !v.failed(p+".at") && e.At+over > runLength {
			v.failf(path, "event ends at %s, after the run's duration %s", e.At+over, v.s.Duration)
		}
	}}
	reflect.ValueOf(e).Field(e.action()).Interface().(action).check(c)
}

// action is an event's action: each kind checks its own fields.
type action interface {
	check(c eventCheck)
}

// eventCheck is what an action's check needs: the validator, the
// action's path, and end, which checks that a step lasting over from the
// event's time ends inside the run.
type eventCheck struct {
	v   *validator
	p   string
	end func(path string, over Duration)
}

func (a *Autoscale) check(c eventCheck) {
	c.v.intRange(c.p+".to", a.To, 1, 1_000_000)
	c.end(c.p+".over", a.Over)
}

func (a *RestartStorm) check(c eventCheck) {
	c.v.floatRange(c.p+".fraction", a.Fraction, math.SmallestNonzeroFloat64, 1)
	c.end(c.p+".over", a.Over)
}

func (a *RollingUpdate) check(c eventCheck) {
	if a.MaxSurge.Value == 0 && a.MaxUnavailable.Value == 0 {
		c.v.failf(c.p, "maxSurge and maxUnavailable cannot both be 0, or the update never makes progress")
	}
}

func (a *ConfigChange) check(c eventCheck) {
	c.v.intRange(c.p+".hunts", a.Hunts, 1, max(1, c.v.s.Config.Hunts))
}

func (a *OperatorScale) check(c eventCheck) {
	c.v.intRange(c.p+".replicas", a.Replicas, 0, 1000)
}

func (a *ControllerOff) check(c eventCheck) {
	c.v.duration(c.p+".for", a.For, 1, Duration(24*time.Hour))
}

func (a *ReplicaKill) check(c eventCheck) {
	c.v.intRange(c.p+".replicas", a.Replicas, 1, max(1, c.v.s.Reference.Replicas))
	c.v.duration(c.p+".for", a.For, 1, Duration(24*time.Hour))
}

func (a *StoreOutage) check(c eventCheck) {
	c.v.duration(c.p+".for", a.For, 1, Duration(24*time.Hour))
}

func (a *NodeAdd) check(c eventCheck) {
	c.v.intRange(c.p+".nodes", a.Nodes, 1, 100_000)
	c.end(c.p+".over", a.Over)
}

func (a *APIRestart) check(c eventCheck) {
	c.v.duration(c.p+".for", a.For, 0, Duration(time.Hour))
	c.end(c.p+".for", a.For)
}

// validator collects value problems, each placed at the line its field
// was written on (or its nearest written parent).
type validator struct {
	s    *Scenario
	errs *Errors
}

func (v *validator) failf(path, format string, args ...any) {
	if v.failed(path) {
		return
	}
	msg := fmt.Sprintf(format, args...)
	at := v.s.source.at(path)
	if !v.s.source.has(path) && at.Pos == (Pos{}) {
		msg += " (field is missing)"
	}
	v.errs.add(FieldError{File: at.file, Pos: at.Pos, Path: path, Msg: msg})
}

// failed reports whether path already has a problem, so that a field that
// did not decode does not also fail its range check with a zero value.
func (v *validator) failed(path string) bool {
	return v.errs.hasPath(path)
}

func (v *validator) intRange(path string, x, lo, hi int) {
	if x < lo || x > hi {
		v.failf(path, "must be between %d and %d, got %d", lo, hi, x)
	}
}

func (v *validator) floatRange(path string, x, lo, hi float64) {
	if x < lo || x > hi {
		if lo == math.SmallestNonzeroFloat64 {
			v.failf(path, "must be above 0 and at most %g, got %g", hi, x)
			return
		}
		v.failf(path, "must be between %g and %g, got %g", lo, hi, x)
	}
}

func (v *validator) positive(path string, x float64) {
	if x <= 0 {
		v.failf(path, "must be above 0")
	}
}

func (v *validator) duration(path string, d, lo, hi Duration) {
	switch {
	case d < lo && lo == 1:
		v.failf(path, "must be above 0, got %s", d)
	case d < lo:
		v.failf(path, "must be at least %s, got %s", lo, d)
	case d > hi:
		v.failf(path, "must be at most %s, got %s", hi, d)
	}
}
