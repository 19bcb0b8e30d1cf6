package driver

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/churnlab/churnlab/experiments/scenario"
)

// Options configures a Driver.
type Options struct {
	Admin     *rest.Config // sets the scene up; not throttled
	Namespace string       // holds the run's objects, identities and game pods
	// PodSelector picks the game pods whose events fire pod triggers.
	PodSelector string
	Scenario    *scenario.Scenario // as the live run plays it (live scale)
	// Record receives every request's outcome, from any goroutine.
	Record func(Result)
	// Note reports what the run should know (a trigger it cannot play).
	Note func(format string, args ...any)
}

// Result is one request a controller made.
type Result struct {
	Controller, Level string
	At                time.Time // when it was sent
	Latency           time.Duration
	Throttled         bool // answered 429
}

// Driver plays the declared controllers. Make one with New, call Setup,
// then Run.
type Driver struct {
	opts        Options
	admin       kubernetes.Interface
	controllers []*controller
	rng         *rand.Rand
	rngMu       sync.Mutex

	mu       sync.Mutex
	replicas map[string]*replica // by controller/node or controller/pod
	nodes    []string
	pods     map[string]string // game pod name -> its node
	started  bool
	objects  map[string]int  // made by Setup, per resource
	noted    map[string]bool // errors already noted
}

// controller is one declared controller and its identity.
type controller struct {
	spec   scenario.Controller
	level  string
	config *rest.Config // its service account, with its QPS and burst
}

// New checks that every request of sc's controllers can be played.
func New(opts Options) (*Driver, error) {
	admin, err := kubernetes.NewForConfig(opts.Admin)
	if err != nil {
		return nil, err
	}
	d := &Driver{opts: opts, admin: admin, rng: rand.New(rand.NewPCG(opts.Scenario.Seed, 17)),
		replicas: map[string]*replica{}, pods: map[string]string{}, noted: map[string]bool{}}
	for _, spec := range opts.Scenario.Controllers {
		level, _ := opts.Scenario.LevelOf(spec)
		for _, t := range spec.Triggers {
			for _, r := range t.Requests {
				if _, err := resourceOf(r.Resource); err != nil {
					return nil, fmt.Errorf("controller %s: %w", spec.Name, err)
				}
			}
		}
		d.controllers = append(d.controllers, &controller{spec: spec, level: level})
	}
	return d, nil
}

// Run plays every controller until ctx ends, then stops every replica
// and waits for them.
func (d *Driver) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	nodes, err := d.admin.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("listing nodes: %w", err)
	}
	d.mu.Lock()
	for _, n := range nodes.Items {
		d.nodes = append(d.nodes, n.Name)
	}
	d.mu.Unlock()
	for _, c := range d.controllers {
		switch {
		case c.spec.PerNode:
			for _, n := range d.nodes {
				d.startReplica(ctx, &wg, c, n, "", 0)
			}
		case c.spec.PerPod:
			// Started by the pod informer, one per game pod.
		default:
			for i := range c.spec.Replicas {
				d.startReplica(ctx, &wg, c, "", "", i)
			}
		}
	}
	factory := informers.NewSharedInformerFactoryWithOptions(d.admin, 0, informers.WithNamespace(d.opts.Namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = d.opts.PodSelector }))
	podInformer := factory.Core().V1().Pods().Informer()
	podInformer.AddEventHandler(cache.ResourceEventHandlerFuncs{ //nolint:errcheck // the handle is not needed
		AddFunc: func(obj any) {
			if p, ok := obj.(*corev1.Pod); ok {
				d.podStarted(ctx, &wg, p)
			}
		},
		DeleteFunc: func(obj any) {
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			if p, ok := obj.(*corev1.Pod); ok {
				d.podDeleted(p)
			}
		},
	})
	nodeFactory := informers.NewSharedInformerFactory(d.admin, 0)
	nodeInformer := nodeFactory.Core().V1().Nodes().Informer()
	nodeInformer.AddEventHandler(cache.ResourceEventHandlerFuncs{ //nolint:errcheck // the handle is not needed
		AddFunc: func(obj any) {
			if n, ok := obj.(*corev1.Node); ok {
				d.nodeAdded(ctx, &wg, n.Name)
			}
		},
	})
	factory.Start(ctx.Done())
	nodeFactory.Start(ctx.Done())
	factory.WaitForCacheSync(ctx.Done())
	nodeFactory.WaitForCacheSync(ctx.Done())
	d.mu.Lock()
	d.started = true // informer events from now on are new
	d.mu.Unlock()
	<-ctx.Done()
	factory.Shutdown()
	nodeFactory.Shutdown()
	return nil
}

// ConfigChanged fires every configChange trigger.
func (d *Driver) ConfigChanged() { d.fire("configChange", "", "", "") }

func (d *Driver) podStarted(ctx context.Context, wg *sync.WaitGroup, p *corev1.Pod) {
	d.mu.Lock()
	_, known := d.pods[p.Name]
	d.pods[p.Name] = p.Spec.NodeName
	started := d.started
	d.mu.Unlock()
	if known {
		return
	}
	for _, c := range d.controllers {
		if c.spec.PerPod {
			d.startReplica(ctx, wg, c, p.Spec.NodeName, p.Name, 0)
		}
	}
	if started {
		d.fire("podStart", p.Spec.NodeName, p.Name, p.Name)
	}
	d.eachPodTimers(p.Name, p.Spec.NodeName)
}

func (d *Driver) podDeleted(p *corev1.Pod) {
	d.fire("podDelete", p.Spec.NodeName, p.Name, p.Name)
	d.mu.Lock()
	delete(d.pods, p.Name)
	for key, r := range d.replicas {
		if r.pod == p.Name {
			r.stop()
			delete(d.replicas, key)
		}
	}
	d.mu.Unlock()
}

func (d *Driver) nodeAdded(ctx context.Context, wg *sync.WaitGroup, node string) {
	d.mu.Lock()
	started := d.started
	if started {
		d.nodes = append(d.nodes, node)
	}
	d.mu.Unlock()
	if !started {
		return // one of the nodes Run started with
	}
	for _, c := range d.controllers {
		if c.spec.PerNode {
			d.startReplica(ctx, wg, c, node, "", 0)
		}
	}
	d.fire("nodeAdd", "", "", node)
}

// fire adds event's key to the queue of every replica that hears of an
// event on node and pod ("" for none).
func (d *Driver) fire(event, node, pod, object string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, r := range d.replicas {
		for i, t := range r.ctl.spec.Triggers {
			if t.On == event && r.hears(node, pod) {
				r.queue.Add(key{i, object})
			}
		}
	}
}

// eachPodTimers starts the each-pod loops of the replicas that hear of
// the pod.
func (d *Driver) eachPodTimers(pod, node string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, r := range d.replicas {
		for i, t := range r.ctl.spec.Triggers {
			if t.Every > 0 && t.Each == "pod" && r.hears(node, pod) {
				r.loop(i, pod)
			}
		}
	}
}

// noteOnce notes the first problem of each kind.
func (d *Driver) noteOnce(kind, format string, args ...any) {
	d.mu.Lock()
	first := !d.noted[kind]
	d.noted[kind] = true
	d.mu.Unlock()
	if first {
		d.opts.Note(format, args...)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// jitter is a random shift of a timer, below upTo.
func (d *Driver) jitter(upTo scenario.Duration) time.Duration {
	if upTo <= 0 {
		return 0
	}
	d.rngMu.Lock()
	defer d.rngMu.Unlock()
	return time.Duration(d.rng.Int64N(int64(upTo)))
}

// recordingTransport reports each request's latency and 429s.
type recordingTransport struct {
	next              http.RoundTripper
	record            func(Result)
	controller, level string
}

func (t *recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := t.next.RoundTrip(req)
	if err == nil && !strings.Contains(req.URL.RawQuery, "watch=true") {
		t.record(Result{Controller: t.controller, Level: t.level, At: start, Latency: time.Since(start),
			Throttled: resp.StatusCode == http.StatusTooManyRequests})
	}
	return resp, err
}

// resource is where a request's resource lives in the API.
type resource struct {
	gvr        schema.GroupVersionResource
	namespaced bool
}

var builtins = map[string]resource{
	"pods":       {schema.GroupVersionResource{Version: "v1", Resource: "pods"}, true},
	"nodes":      {schema.GroupVersionResource{Version: "v1", Resource: "nodes"}, false},
	"configmaps": {schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}, true},
	"secrets":    {schema.GroupVersionResource{Version: "v1", Resource: "secrets"}, true},
	"events":     {schema.GroupVersionResource{Version: "v1", Resource: "events"}, true},
	"leases":     {schema.GroupVersionResource{Group: "coordination.k8s.io", Version: "v1", Resource: "leases"}, true},
	"endpoints":  {schema.GroupVersionResource{Version: "v1", Resource: "endpoints"}, true},
	"services":   {schema.GroupVersionResource{Version: "v1", Resource: "services"}, true},
}

// resourceOf maps a scenario's resource name to the API: a built-in, or
// a custom resource plural.group served at version v1 in a namespace.
func resourceOf(name string) (resource, error) {
	if r, ok := builtins[name]; ok {
		return r, nil
	}
	plural, group, ok := strings.Cut(name, ".")
	if !ok {
		return resource{}, fmt.Errorf("resource %q is neither built in nor plural.group", name)
	}
	return resource{schema.GroupVersionResource{Group: group, Version: "v1", Resource: plural}, true}, nil
}

// clientFor is a dynamic client of c's identity, recording each request,
// with a connection of its own, as a replica in its own process has
// (client-go shares one between configs of the same TLS settings, and
// does not when a config sets a proxy function).
func (d *Driver) clientFor(c *controller) (dynamic.Interface, error) {
	cfg := rest.CopyConfig(c.config)
	cfg.Proxy = func(*http.Request) (*url.URL, error) { return nil, nil }
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return &recordingTransport{next: rt, record: d.opts.Record, controller: c.spec.Name, level: c.level}
	})
	return dynamic.NewForConfig(cfg)
}

// key is one key of a replica's work queue: a trigger and the object it
// fired for.
type key struct {
	trigger int
	object  string
}

// startReplica starts replica index of c, on node (a perNode or perPod
// replica) and in pod (perPod), each "" otherwise.
func (d *Driver) startReplica(ctx context.Context, wg *sync.WaitGroup, c *controller, node, pod string, index int) {
	client, err := d.clientFor(c)
	if err != nil {
		d.opts.Note("controller %s: %v", c.spec.Name, err)
		return
	}
	rctx, cancel := context.WithCancel(ctx)
	r := &replica{d: d, ctl: c, node: node, pod: pod, client: client, cancel: cancel, queue: workqueue.NewTypedDelayingQueue[key]()}
	d.mu.Lock()
	d.replicas[fmt.Sprintf("%s/%s/%s/%d", c.spec.Name, node, pod, index)] = r
	d.mu.Unlock()
	wg.Add(1)
	go func() {
		defer wg.Done()
		r.run(rctx)
	}()
}
