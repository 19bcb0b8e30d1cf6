package runner

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"

	"github.com/churnlab/churnlab/baseline"
	"github.com/churnlab/churnlab/experiments/controlplane"
	"github.com/churnlab/churnlab/experiments/metrics"
	"github.com/churnlab/churnlab/experiments/pod"
	"github.com/churnlab/churnlab/experiments/scenario"
	pb "github.com/churnlab/churnlab/reference/proto"
	"github.com/churnlab/churnlab/reference/server"
	"github.com/churnlab/churnlab/reference/store"
)

// liveSystem is one system under test in a live run.
type liveSystem interface {
	// install runs before the game pods exist.
	install(ctx context.Context) error
	// start runs once the first pods are Running, and returns how pods
	// get their config.
	start(ctx context.Context) (pod.Source, error)
	// changeConfig rewrites the config of these hunts (a configChange).
	changeConfig(ctx context.Context, hunts []string) error
	// play applies an event only this system has; false if it has none
	// such, or the event does not apply to it.
	play(ctx context.Context, e scenario.Event) (bool, error)
	// podArgs are the config client's flags of cmd/podagent, for game
	// pods that run in the cluster; called after install.
	podArgs() []string
	// metrics returns the system's Prometheus endpoints by name, for the
	// scrape log.
	metrics() map[string]metricsEndpoint
	// stop stops what start started and waits for it.
	stop()
}

// serveHTTP serves h on l until ctx ends, and returns the base URL.
func serveHTTP(ctx context.Context, wg *sync.WaitGroup, h http.Handler, l net.Listener) string {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	wg.Add(2)
	go func() { defer wg.Done(); srv.Serve(l) }() //nolint:errcheck // ends with Close
	go func() { defer wg.Done(); <-ctx.Done(); srv.Close() }()
	return "http://" + l.Addr().String()
}

// loopback listens on a free loopback port.
func loopback() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }

// --- baseline ---

// baselineSystem is the Veltrix-like operator (cmd/veltrix, package
// baseline) as its own process, with its bundle endpoint behind the
// uplink.
type baselineSystem struct {
	run *liveRun
	op  operator
	wg  sync.WaitGroup
	// metricsURL is the operator's /metrics, off the uplink.
	metricsURL string
	bundleURL  string // the proxy to the operator's bundle endpoint, behind the uplink

	mu     sync.Mutex
	change *bundleChange
}

func (b *baselineSystem) install(ctx context.Context) error {
	sc, admin := b.run.sc, b.run.cluster.Admin
	if err := baseline.Install(ctx, admin, b.run.cluster.OperatorUser); err != nil {
		return err
	}
	if err := baseline.WriteConfig(ctx, admin, b.run.cluster.Namespace, int(sc.Config.TotalSize), sc.Config.Objects); err != nil {
		return err
	}
	if b.run.inCluster() {
		// The game pods are told the bundle endpoint when they are made.
		return b.startOperator(ctx)
	}
	return nil
}

func (b *baselineSystem) start(ctx context.Context) (pod.Source, error) {
	if b.run.inCluster() {
		return nil, nil // the pods pull for themselves (cmd/podagent)
	}
	started := time.Now()
	if err := b.startOperator(ctx); err != nil {
		return nil, err
	}
	return &pod.BundleSource{URL: b.bundleURL, OperatorStarted: started}, nil
}

// startOperator starts the operator, as a pod where the cluster runs
// churnlab's programs and as a process here otherwise, and the proxy to
// its bundle endpoint behind the uplink that the pods pull through.
func (b *baselineSystem) startOperator(ctx context.Context) error {
	var err error
	if c := b.run.cluster; c.Images != nil {
		b.op, err = startOperatorPod(ctx, c, b.run.sc, filepath.Join(b.run.tmp, "veltrix.log"))
	} else {
		b.op, err = b.startOperatorProcess(ctx)
	}
	if err != nil {
		return err
	}
	target, err := url.Parse(b.op.endpoint())
	if err != nil {
		return err
	}
	l, err := b.run.uplinkListen("")
	if err != nil {
		return err
	}
	b.bundleURL = serveHTTP(ctx, &b.wg, b.bundleProxy(target), l)
	b.metricsURL = b.op.endpoint() + "/metrics"
	return nil
}

// podArgs are the in-cluster game pods' config client: the bundle,
// through the uplink.
func (b *baselineSystem) podArgs() []string {
	return []string{"--system=baseline", "--bundle-url=" + b.bundleURL}
}

// bundleProxy forwards the pods' pulls to the operator's endpoint, and
// records each complete pull of a bundle (pulled).
func (b *baselineSystem) bundleProxy(target *url.URL) http.Handler {
	proxy := httputil.NewSingleHostReverseProxy(target)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w}
		// A body cut short panics with http.ErrAbortHandler, out of here.
		proxy.ServeHTTP(rec, r)
		if version := rec.Header().Get("X-Bundle-Version"); rec.status == http.StatusOK && version != "" && r.Context().Err() == nil {
			b.pulled(r.URL.Query().Get("pod"), version, time.Now())
		}
	})
}

// statusRecorder keeps the status a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(p []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController (the proxy's flushes) reach w.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// startOperatorProcess runs cmd/veltrix as a process on this machine.
func (b *baselineSystem) startOperatorProcess(ctx context.Context) (operator, error) {
	program, err := buildOperator(ctx, b.run.cluster.BinDir)
	if err != nil {
		return nil, err
	}
	p, err := startOperator(ctx, program, b.run.cluster.OperatorKubeconfig, b.run.cluster.Namespace, filepath.Join(b.run.tmp, "veltrix.log"), b.run.sc)
	if err != nil {
		return nil, err
	}
	return p, nil
}

// changeConfig rewrites the start of one config object per hunt. The
// operator's next LIST sees the new versions and reloads everything: a new
// generation, which each pod is sent at its next reconcile. A pod's first
// pull of a later generation is the change's propagation to it.
func (b *baselineSystem) changeConfig(ctx context.Context, hunts []string) error {
	fams, err := metrics.Scrape(ctx, &http.Client{Timeout: 5 * time.Second}, b.metricsURL)
	if err != nil {
		return err
	}
	generation := int(fams.Sum("veltrix_bundle_generation", nil))
	dyn, err := dynamic.NewForConfig(b.run.cluster.Admin)
	if err != nil {
		return err
	}
	objects := dyn.Resource(baseline.Resource).Namespace(b.run.cluster.Namespace)
	at := time.Now()
	stamp := "changed at " + at.UTC().Format(time.RFC3339Nano) + "\n"
	b.mu.Lock()
	b.change = &bundleChange{at: at, after: generation, arrived: map[types.UID]bool{}}
	b.mu.Unlock()
	for i := range min(len(hunts), b.run.sc.Config.Objects) {
		name := fmt.Sprintf("config-%04d", i)
		obj, err := objects.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		data, _, _ := unstructured.NestedString(obj.Object, "spec", "data")
		data = stamp + data[min(len(stamp), len(data)):]
		if err := unstructured.SetNestedField(obj.Object, data, "spec", "data"); err != nil {
			return err
		}
		if _, err := objects.Update(ctx, obj, metav1.UpdateOptions{}); err != nil {
			return err
		}
	}
	return nil
}

// bundleChange is the last config change: when it was written, and the
// operator's generation then.
type bundleChange struct {
	at      time.Time
	after   int
	arrived map[types.UID]bool // pods that have it
}

// pulled records the propagation of the last change to a pod that was
// running when it was written, the first time it pulls a later generation.
func (b *baselineSystem) pulled(name, version string, at time.Time) {
	g, ok := baseline.BundleGeneration(version)
	p := b.run.lookupPod(name)
	if p == nil {
		return // not followed (yet, or any more): it counts for nothing
	}
	b.mu.Lock()
	c := b.change
	first := ok && c != nil && g > c.after && p.Created.Before(c.at) && !c.arrived[p.UID]
	if first {
		c.arrived[p.UID] = true
	}
	b.mu.Unlock()
	if first {
		b.run.record(func(r *metrics.Recorder) { r.ConfigPropagated(at.Sub(c.at)) })
	}
}

func (b *baselineSystem) play(ctx context.Context, e scenario.Event) (bool, error) {
	if c := e.ControllerOff; c != nil {
		if err := b.op.setController(ctx, false); err != nil {
			return true, err
		}
		b.run.after(ctx, c.For.D(), func() {
			if err := b.op.setController(ctx, true); err != nil && ctx.Err() == nil {
				b.run.notef("switching the operator's controller back on: %v", err)
			}
		})
		return true, nil
	}
	return false, nil
}

// metricsEndpoint is a /metrics URL and the metric prefix the scrape log
// keeps of it.
type metricsEndpoint struct{ url, prefix string }

func (b *baselineSystem) metrics() map[string]metricsEndpoint {
	if b.metricsURL == "" {
		return nil
	}
	return map[string]metricsEndpoint{"operator": {b.metricsURL, "veltrix_"}}
}

func (b *baselineSystem) stop() {
	b.wg.Wait()
	if b.op != nil {
		if err := b.op.wait(); err != nil {
			b.run.notef("operator stopped: %v", err)
		}
	}
}

// --- reference ---

// referenceSystem is the streaming config service (package
// reference/server): its replicas in this process on loopback ports
// behind the uplink, over one store.
type referenceSystem struct {
	run      *liveRun
	store    store.Store
	etcd     *controlplane.Etcd // the store's server, when it is etcd
	replicas []*replica
	source   *pod.AgentSource
	wg       sync.WaitGroup

	mu      sync.Mutex
	changed map[string]*huntChange // hunt -> the last change written
	// early holds, by hunt, updates that reached a node before the write
	// that made them had returned its version: a push can beat Put's
	// answer. putHunts counts them once it knows the version.
	early map[string][]nodeUpdate
}

// nodeUpdate is a hunt's version landing in a node's L2.
type nodeUpdate struct {
	node    string
	version uint64
	at      time.Time
}

// huntChange is the last write of a hunt, for measuring its propagation.
type huntChange struct {
	version uint64
	at      time.Time
	arrived map[string]bool // nodes that have it
}

// replica is one configd replica; a replicaKill stops it and brings it
// back on the same address.
type replica struct {
	addr       string
	metricsURL string // stays the same across restarts
	stop       context.CancelFunc
	done       chan struct{}

	mu       sync.Mutex
	registry *prometheus.Registry // each run of the replica has its own
}

// ServeHTTP serves the metrics of the replica's latest run.
func (rep *replica) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	rep.mu.Lock()
	reg := rep.registry
	rep.mu.Unlock()
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP(w, req)
}

func (r *referenceSystem) install(ctx context.Context) error {
	kind := r.run.sc.Reference.Store.Kind
	if kind != "bbolt" && kind != "etcd" {
		return fmt.Errorf("reference.store.kind %s cannot run here (only bbolt and etcd can)", kind)
	}
	r.changed = map[string]*huntChange{}
	if r.run.inCluster() {
		if err := r.installInCluster(ctx); err != nil {
			return err
		}
	} else if err := r.installHere(ctx, kind); err != nil {
		return err
	}
	var all []string
	for i := range r.run.sc.Config.Hunts {
		all = append(all, fmt.Sprintf("h-%d", i))
	}
	if err := r.putHunts(ctx, all); err != nil {
		return err
	}
	if r.run.inCluster() {
		// The game pods find their node's agent when they are made.
		return r.startAgents(ctx)
	}
	return nil
}

// installHere runs the store and the replicas in this process.
func (r *referenceSystem) installHere(ctx context.Context, kind string) error {
	switch kind {
	case "bbolt":
		b, err := store.OpenBolt(filepath.Join(r.run.tmp, "configd.db"))
		if err != nil {
			return err
		}
		r.store = b
	case "etcd":
		var err error
		if r.etcd, err = controlplane.StartEtcd(ctx, r.run.cluster.BinDir); err != nil {
			return err
		}
		e, err := store.OpenEtcd([]string{r.etcd.Endpoint})
		if err != nil {
			return err
		}
		r.store = e
	}
	for range r.run.sc.Reference.Replicas {
		l, err := r.run.link.Listen("")
		if err != nil {
			return err
		}
		rep := &replica{addr: l.Addr().String()}
		r.replicas = append(r.replicas, rep)
		if err := r.serve(ctx, rep, l); err != nil {
			return err
		}
		ml, err := loopback()
		if err != nil {
			return err
		}
		rep.metricsURL = serveHTTP(ctx, &r.wg, rep, ml) + "/metrics"
	}
	return nil
}

// serve starts rep on l, a listener of the uplink.
func (r *referenceSystem) serve(ctx context.Context, rep *replica, l net.Listener) error {
	registry := prometheus.NewRegistry()
	srv, err := server.New(server.Options{
		Store:     r.store,
		Keepalive: r.run.sc.Reference.Keepalive.D(),
		L1Entries: r.run.sc.Reference.L1.Entries,
		L1Bytes:   r.run.sc.Reference.L1.Entries * int(r.run.sc.Reference.L1.EntryBytes),
		Registry:  registry,
		// Zero but when a test injects a slower server (LiveOptions).
		InjectPushDelay: r.run.injectPushDelay,
	})
	if err != nil {
		l.Close()
		return err
	}
	rep.mu.Lock()
	rep.registry = registry
	rep.mu.Unlock()
	ctx, rep.stop = context.WithCancel(ctx)
	rep.done = make(chan struct{})
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer close(rep.done)
		if err := srv.Serve(ctx, l); err != nil && ctx.Err() == nil {
			r.run.notef("configd replica %s stopped: %v", rep.addr, err)
		}
	}()
	return nil
}

// putHunts writes a new fragment for each hunt through the admin API of
// the first replica, and remembers each version and when it was written,
// for propagation.
func (r *referenceSystem) putHunts(ctx context.Context, hunts []string) error {
	conn, err := grpc.NewClient(r.replicas[0].addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	admin := pb.NewConfigAdminClient(conn)
	size := int(r.run.sc.Config.FragmentSize())
	stamp := time.Now().UTC().Format(time.RFC3339Nano)
	for _, hunt := range hunts {
		fragment := make([]byte, size)
		copy(fragment, fmt.Sprintf("hunt %s written %s\n", hunt, stamp))
		at := time.Now()
		resp, err := admin.Put(ctx, &pb.PutRequest{Hunt: hunt, Fragment: fragment})
		if err != nil {
			return fmt.Errorf("writing hunt %s: %w", hunt, err)
		}
		c := &huntChange{version: resp.GetVersion(), at: at, arrived: map[string]bool{}}
		r.mu.Lock()
		r.changed[hunt] = c
		early := r.early[hunt]
		delete(r.early, hunt)
		r.mu.Unlock()
		for _, u := range early {
			r.arrived(c, u)
		}
	}
	return nil
}

func (r *referenceSystem) start(ctx context.Context) (pod.Source, error) {
	if r.run.inCluster() {
		return nil, nil // the pods ask their node's agent (cmd/podagent)
	}
	var endpoints []string
	for _, rep := range r.replicas {
		endpoints = append(endpoints, rep.addr)
	}
	src, err := pod.NewAgentSource(ctx, pod.AgentSourceOptions{
		Endpoints: endpoints,
		Dir:       filepath.Join(r.run.tmp, "l2"),
		Hunts:     r.run.sc.Config.Hunts,
		Debounce:  r.run.sc.Reference.Debounce.D(),
		OnUpdate:  func(node, hunt string, version uint64) { r.updated(node, hunt, version, time.Now()) },
	})
	r.source = src
	return src, err
}

// updated records the propagation of a change the first time it reaches
// a node, at.
func (r *referenceSystem) updated(node, hunt string, version uint64, at time.Time) {
	u := nodeUpdate{node: node, version: version, at: at}
	r.mu.Lock()
	c, ok := r.changed[hunt]
	if ok && version > c.version {
		// Newer than the last write this system knows: that write's Put
		// has not answered yet.
		if r.early == nil {
			r.early = map[string][]nodeUpdate{}
		}
		r.early[hunt] = append(r.early[hunt], u)
		r.mu.Unlock()
		return
	}
	r.mu.Unlock()
	if ok {
		r.arrived(c, u)
	}
}

// arrived records c's propagation to u's node, the first time an update
// at c's version or later lands there, for a change made while the run
// was on.
func (r *referenceSystem) arrived(c *huntChange, u nodeUpdate) {
	r.mu.Lock()
	first := u.version >= c.version && !c.arrived[u.node] && r.run.started(c.at)
	if first {
		c.arrived[u.node] = true
	}
	r.mu.Unlock()
	if first {
		r.run.record(func(rec *metrics.Recorder) { rec.ConfigPropagated(u.at.Sub(c.at)) })
	}
}

func (r *referenceSystem) changeConfig(ctx context.Context, hunts []string) error {
	return r.putHunts(ctx, hunts)
}

func (r *referenceSystem) play(ctx context.Context, e scenario.Event) (bool, error) {
	if r.run.inCluster() {
		return r.playInCluster(ctx, e)
	}
	switch {
	case e.ReplicaKill != nil:
		n := min(e.ReplicaKill.Replicas, len(r.replicas))
		for _, rep := range r.replicas[:n] {
			rep.stop()
			<-rep.done
		}
		r.run.after(ctx, e.ReplicaKill.For.D(), func() {
			for _, rep := range r.replicas[:n] {
				l, err := r.run.link.Listen(rep.addr)
				if err == nil {
					err = r.serve(ctx, rep, l)
				}
				if err != nil {
					r.run.notef("bringing configd replica %s back: %v", rep.addr, err)
				}
			}
		})
		return true, nil
	case e.StoreOutage != nil && r.etcd != nil:
		r.etcd.Kill()
		r.run.after(ctx, e.StoreOutage.For.D(), func() {
			if err := r.etcd.Restart(ctx); err != nil {
				r.run.notef("bringing the store back: %v", err)
			}
		})
		return true, nil
	}
	return false, nil
}

func (r *referenceSystem) metrics() map[string]metricsEndpoint {
	if r.run.inCluster() {
		return r.metricsInCluster()
	}
	m := map[string]metricsEndpoint{}
	for i, rep := range r.replicas {
		if rep.metricsURL != "" {
			m[fmt.Sprintf("configd-%d", i)] = metricsEndpoint{rep.metricsURL, "configd_"}
		}
	}
	return m
}

func (r *referenceSystem) stop() {
	if r.source != nil {
		r.source.Wait()
	}
	r.wg.Wait()
	var errs []error
	if r.store != nil {
		errs = append(errs, r.store.Close())
	}
	if r.etcd != nil {
		r.etcd.Stop()
	}
	if err := errors.Join(errs...); err != nil {
		r.run.notef("closing the store: %v", err)
	}
}
