package driver

import (
	"context"
	"fmt"
	"hash/fnv"
	"slices"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/churnlab/churnlab/experiments/scenario"
)

// replica is one running copy of a controller: its own client, work
// queue and workers.
type replica struct {
	d         *Driver
	ctl       *controller
	node, pod string
	client    dynamic.Interface
	cancel    context.CancelFunc
	queue     workqueue.TypedDelayingInterface[key]
	mu        sync.Mutex
	writes    int // tick of its patches' annotation
}

// hears reports whether r is told of an event on node and pod ("" for
// none), as sim/controllers.go's replica.hears.
func (r *replica) hears(node, pod string) bool {
	switch {
	case r.pod != "":
		return pod == r.pod || (pod == "" && node == "")
	case r.node != "":
		return node == "" || node == r.node
	}
	return true
}

func (r *replica) stop() { r.cancel() }

// run starts r's workers, watches and timers, and returns when ctx ends
// and every worker has stopped.
func (r *replica) run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	go func() { <-ctx.Done(); r.queue.ShutDown() }()
	work := func(k key) {
		start := time.Now()
		r.reconcile(ctx, k)
		r.queue.Done(k)
		r.requeue(k, start)
	}
	// Workers goroutines work the queue; with Workers 0 one takes each key
	// as it comes and works it on a goroutine of its own.
	workers := r.ctl.spec.Workers
	for range max(1, workers) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				k, shutdown := r.queue.Get()
				switch {
				case shutdown:
					return
				case workers == 0:
					wg.Add(1)
					go func() {
						defer wg.Done()
						work(k)
					}()
				default:
					work(k)
				}
			}
		}()
	}
	for i, t := range r.ctl.spec.Triggers {
		switch {
		case t.Watch != "":
			r.watch(ctx, i, t)
		case t.On == "start":
			r.queue.Add(key{trigger: i})
		case t.Every > 0 && t.Each == "":
			go r.every(ctx, i, "")
		case t.Every > 0 && t.Each == "node":
			r.d.mu.Lock()
			for _, n := range r.d.nodes {
				if r.hears(n, "") {
					go r.every(ctx, i, n)
				}
			}
			r.d.mu.Unlock()
		case t.Every > 0 && t.Each == "pod":
			r.d.mu.Lock()
			for p, n := range r.d.pods {
				if r.hears(n, p) {
					r.loop(i, p)
				}
			}
			r.d.mu.Unlock()
		}
	}
}

// every adds trigger i's key for object each interval, shifted by up to
// the jitter, until ctx ends.
func (r *replica) every(ctx context.Context, i int, object string) {
	t := r.ctl.spec.Triggers[i]
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(t.Every.D() + r.d.jitter(t.Jitter)):
		}
		r.queue.Add(key{i, object})
	}
}

// loop starts the each-pod trigger i's loop for pod: its key an interval
// (and up to the jitter) from now, and again after each reconcile of it
// (requeue), as the sim's controllers do.
func (r *replica) loop(i int, pod string) {
	t := r.ctl.spec.Triggers[i]
	r.queue.AddAfter(key{i, pod}, t.Every.D()+r.d.jitter(t.Jitter))
}

// requeue puts an each-pod trigger's key back an interval after its
// reconcile began (at once if it overran), while its pod lives: a
// controller-runtime RequeueAfter.
func (r *replica) requeue(k key, start time.Time) {
	t := r.ctl.spec.Triggers[k.trigger]
	if t.Every == 0 || t.Each != "pod" {
		return
	}
	r.d.mu.Lock()
	_, alive := r.d.pods[k.object]
	r.d.mu.Unlock()
	if alive {
		r.queue.AddAfter(k, max(0, time.Until(start.Add(t.Every.D())))+r.d.jitter(t.Jitter))
	}
}

// watch runs r's own informer on the trigger's resource: every change
// and every resync adds the object's key.
func (r *replica) watch(ctx context.Context, i int, t scenario.Trigger) {
	res, _ := resourceOf(t.Watch)
	ns := ""
	if res.namespaced {
		ns = r.d.opts.Namespace
	}
	factory := dynamicinformer.NewFilteredDynamicSharedInformerFactory(r.client, t.Resync.D(), ns, func(o *metav1.ListOptions) {
		if r.node != "" {
			switch t.Watch {
			case "pods":
				o.FieldSelector = "spec.nodeName=" + r.node
			case "nodes":
				o.FieldSelector = "metadata.name=" + r.node
			}
		}
	})
	add := func(obj any) {
		if m, err := meta(obj); err == nil {
			r.queue.Add(key{i, m})
		}
	}
	factory.ForResource(res.gvr).Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{ //nolint:errcheck // the handle is not needed
		AddFunc:    add,
		UpdateFunc: func(_, obj any) { add(obj) },
		DeleteFunc: add,
	})
	factory.Start(ctx.Done())
}

func meta(obj any) (string, error) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		return t.Key, nil
	}
	return cache.MetaNamespaceKeyFunc(obj)
}

// reconcile makes k's trigger's requests in order, each Repeat times,
// Parallel of those at once.
func (r *replica) reconcile(ctx context.Context, k key) {
	for _, q := range r.ctl.spec.Triggers[k.trigger].Requests {
		var wg sync.WaitGroup
		slots := make(chan struct{}, q.Parallel)
		for rep := range q.Repeat {
			if ctx.Err() != nil {
				break
			}
			slots <- struct{}{}
			wg.Add(1)
			go func() {
				defer func() { <-slots; wg.Done() }()
				if err := r.request(ctx, k, q, rep); err != nil && ctx.Err() == nil {
					r.d.noteOnce(r.ctl.spec.Name+"/"+q.Verb+"/"+q.Resource, "controller %s: %s %s: %v (the first such error; the run goes on)", r.ctl.spec.Name, q.Verb, q.Resource, err)
				}
			}()
		}
		wg.Wait()
	}
}

// request makes the rep-th repeat of one of a trigger's requests; repeats
// touch different objects. A write of several objects is one request for
// each; a read returns them all at once.
func (r *replica) request(ctx context.Context, k key, q scenario.Request, rep int) error {
	res, _ := resourceOf(q.Resource)
	all := r.client.Resource(res.gvr)
	var in dynamic.ResourceInterface = all
	if res.namespaced {
		in = all.Namespace(r.d.opts.Namespace)
	}
	r.d.mu.Lock()
	n := q.Objects.Eval(scenario.Size{Pods: len(r.d.pods), Nodes: len(r.d.nodes)})
	r.d.mu.Unlock()
	switch q.Verb {
	case "list":
		opts := metav1.ListOptions{}
		if q.From == "cache" {
			opts.ResourceVersion = "0"
		}
		if q.Scope == "node" {
			opts.FieldSelector = nodeSelector(q.Resource, r.node)
		}
		var err error
		if q.Scope == "cluster" && res.namespaced {
			_, err = all.List(ctx, opts)
		} else {
			_, err = in.List(ctx, opts)
		}
		return err
	case "watch":
		wctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		w, err := in.Watch(wctx, metav1.ListOptions{ResourceVersion: "0", FieldSelector: nodeSelector(q.Resource, r.nodeIf(q))})
		if err == nil {
			w.Stop()
		}
		return err
	case "get":
		name, err := r.d.target(q, r, k, rep)
		if err == nil {
			_, err = in.Get(ctx, name, metav1.GetOptions{})
		}
		return err
	}
	for j := range max(1, n) {
		name, err := r.d.target(q, r, k, rep*max(1, n)+j)
		if err != nil {
			return err
		}
		switch q.Verb {
		case "patch":
			_, err = in.Patch(ctx, name, types.MergePatchType, r.tick(), metav1.PatchOptions{})
		case "update":
			var obj *unstructured.Unstructured
			if obj, err = in.Get(ctx, name, metav1.GetOptions{}); err == nil {
				obj.SetAnnotations(map[string]string{tickAnnotation: fmt.Sprint(r.nextTick())})
				_, err = in.Update(ctx, obj, metav1.UpdateOptions{})
			}
		case "create":
			_, err = in.Create(ctx, r.d.newObject(q, res, ""), metav1.CreateOptions{})
		case "delete":
			// Deleted and made again, so that the declared number stays.
			if err = in.Delete(ctx, name, metav1.DeleteOptions{}); err == nil {
				_, err = in.Create(ctx, r.d.newObject(q, res, name), metav1.CreateOptions{})
			}
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (r *replica) nodeIf(q scenario.Request) string {
	if q.Scope == "node" {
		return r.node
	}
	return ""
}

// nodeSelector selects the objects of resource on node, "" for all.
func nodeSelector(resource, node string) string {
	switch {
	case node == "":
		return ""
	case resource == "pods":
		return "spec.nodeName=" + node
	case resource == "nodes":
		return "metadata.name=" + node
	}
	return ""
}

const tickAnnotation = "churnlab.io/tick"

func (r *replica) nextTick() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.writes++
	return r.writes
}

// tick is a merge patch that changes the object: a new value of its
// tick annotation.
func (r *replica) tick() []byte {
	return fmt.Appendf(nil, `{"metadata":{"annotations":{%q:"%s-%d"}}}`, tickAnnotation, r.ctl.spec.Name, r.nextTick())
}

// target names the j-th object a request of r touches for key k: its
// node, a pod (on its node), or one of the objects Setup made.
func (d *Driver) target(q scenario.Request, r *replica, k key, j int) (string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch q.Resource {
	case "nodes":
		if q.Scope == "node" && r.node != "" {
			return r.node, nil
		}
		if len(d.nodes) == 0 {
			return "", fmt.Errorf("no node")
		}
		return d.nodes[(hash(k.object)+j)%len(d.nodes)], nil
	case "pods":
		if _, ok := d.pods[k.object]; ok && j == 0 {
			return k.object, nil
		}
		var names []string
		for p, n := range d.pods {
			if q.Scope != "node" || n == r.node {
				names = append(names, p)
			}
		}
		if len(names) == 0 {
			return "", fmt.Errorf("no game pod %s", map[bool]string{true: "on node " + r.node}[q.Scope == "node"])
		}
		slices.Sort(names)
		return names[(hash(k.object)+j)%len(names)], nil
	}
	count := d.objects[q.Resource]
	if count == 0 {
		return "", fmt.Errorf("no %s object was made for it (its requests declare none)", q.Resource)
	}
	return objectName(q.Resource, (hash(k.object)+j)%count), nil
}

func hash(s string) int {
	h := fnv.New32a()
	h.Write([]byte(s))
	return int(h.Sum32() & 0x7fffffff)
}
