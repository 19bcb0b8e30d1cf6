package pod

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// ConfigReady is the pod condition the realizer sets True once a pod's
// worker holds its config. Game pods name it in spec.readinessGates, so a
// pod is Ready, and counts as available to its Deployment (a rolling
// update waits for it), only with config: a kubelet, or kwok's stages on
// the local target, keep it unready until then.
const ConfigReady corev1.PodConditionType = "churnlab.io/config"

// Pod is one realized game pod: a worker with its own Game server.
type Pod struct {
	Name, Namespace, Node string
	UID                   types.UID
	Created               time.Time // the Pod object's creation

	game    *Game
	latest  atomic.Pointer[corev1.Pod]
	changed chan struct{} // a signal: the Pod object changed
	cancel  context.CancelFunc
}

// Object returns the latest Pod object the informer saw.
func (p *Pod) Object() *corev1.Pod { return p.latest.Load() }

// Changed signals that the Pod object changed since the last receive.
func (p *Pod) Changed() <-chan struct{} { return p.changed }

// Addr is the pod's game server, host:port.
func (p *Pod) Addr() string { return p.game.Addr() }

// Ready reports whether the pod has its config and serves.
func (p *Pod) Ready() bool { return p.game.Ready() }

// Events are the realizer's callbacks, each called from its own worker's
// goroutine; any may be nil.
type Events struct {
	Started func(p *Pod)                                                      // the game server listens: add it to the balancer
	Loaded  func(p *Pod, at time.Time, took time.Duration, uplinkBytes int64) // the config is in; took is from the Pod's creation
	Failed  func(p *Pod, err error)                                           // the config could not be loaded, or the pod not marked ConfigReady
	Stopped func(p *Pod)                                                      // the pod is gone
}

// RealizerOptions configures a Realizer.
type RealizerOptions struct {
	Client    kubernetes.Interface
	Namespace string
	Selector  string // label selector of the game pods
	Source    Source
	Game      GameOptions
	Events    Events
}

// Realizer starts a worker for every Running game pod and stops it when
// the pod is deleted.
type Realizer struct {
	opts RealizerOptions

	mu      sync.Mutex
	pods    map[types.UID]*Pod
	started int
	wg      sync.WaitGroup
}

// NewRealizer returns a realizer; call Run.
func NewRealizer(opts RealizerOptions) *Realizer {
	return &Realizer{opts: opts, pods: map[types.UID]*Pod{}}
}

// Run watches the pods until ctx ends, then stops every worker.
func (r *Realizer) Run(ctx context.Context) error {
	factory := informers.NewSharedInformerFactoryWithOptions(r.opts.Client, 0,
		informers.WithNamespace(r.opts.Namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = r.opts.Selector }))
	informer := factory.Core().V1().Pods().Informer()
	_, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { r.observe(ctx, obj) },
		UpdateFunc: func(_, obj any) { r.observe(ctx, obj) },
		DeleteFunc: func(obj any) {
			if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = tomb.Obj
			}
			if p, ok := obj.(*corev1.Pod); ok {
				r.stop(p.UID)
			}
		},
	})
	if err != nil {
		return fmt.Errorf("pod: %w", err)
	}
	factory.Start(ctx.Done())
	<-ctx.Done()
	factory.Shutdown()
	r.mu.Lock()
	for uid := range r.pods {
		r.stopLocked(uid)
	}
	r.mu.Unlock()
	r.wg.Wait()
	return nil
}

// Pods returns how many pods have a worker, and how many of those serve.
func (r *Realizer) Pods() (total, ready int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range r.pods {
		total++
		if p.Ready() {
			ready++
		}
	}
	return total, ready
}

// Running returns the names of the pods that have a worker.
func (r *Realizer) Running() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var names []string
	for _, p := range r.pods {
		names = append(names, p.Name)
	}
	return names
}

func (r *Realizer) observe(ctx context.Context, obj any) {
	o, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	if o.DeletionTimestamp != nil {
		r.stop(o.UID)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if p, ok := r.pods[o.UID]; ok {
		p.latest.Store(o)
		select {
		case p.changed <- struct{}{}:
		default:
		}
		return
	}
	if o.Status.Phase != corev1.PodRunning || ctx.Err() != nil {
		return
	}
	opts := r.opts.Game
	opts.Seed += uint64(r.started)
	r.started++
	game, err := StartGame(opts)
	if err != nil {
		if r.opts.Events.Failed != nil {
			r.opts.Events.Failed(&Pod{Name: o.Name, Namespace: o.Namespace}, err)
		}
		return
	}
	workCtx, cancel := context.WithCancel(ctx)
	p := &Pod{
		Name: o.Name, Namespace: o.Namespace, Node: o.Spec.NodeName, UID: o.UID, Created: o.CreationTimestamp.Time,
		game: game, changed: make(chan struct{}, 1), cancel: cancel,
	}
	p.latest.Store(o)
	r.pods[o.UID] = p
	r.wg.Add(1)
	go r.work(workCtx, p)
}

// work is one pod's life: announce, load config, serve until stopped.
func (r *Realizer) work(ctx context.Context, p *Pod) {
	defer r.wg.Done()
	ev := r.opts.Events
	if ev.Started != nil {
		ev.Started(p)
	}
	err := r.opts.Source.Serve(ctx, p, func(uplinkBytes int64) {
		p.game.SetReady()
		now := time.Now()
		if ev.Loaded != nil {
			ev.Loaded(p, now, now.Sub(p.Created), uplinkBytes)
		}
		if err := r.markConfigReady(ctx, p, now); err != nil && ctx.Err() == nil && ev.Failed != nil {
			ev.Failed(p, err)
		}
	})
	if err != nil && ev.Failed != nil {
		ev.Failed(p, err)
	}
	<-ctx.Done()
	p.game.Close()
	r.opts.Source.Unload(p)
	if ev.Stopped != nil {
		ev.Stopped(p)
	}
}

func (r *Realizer) stop(uid types.UID) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stopLocked(uid)
}

func (r *Realizer) stopLocked(uid types.UID) {
	if p, ok := r.pods[uid]; ok {
		p.cancel()
		delete(r.pods, uid)
	}
}

// markConfigReady sets the pod's ConfigReady condition True. A Source
// calls loaded once: a pod's config, once in, stays (a later push
// updates it in place).
func (r *Realizer) markConfigReady(ctx context.Context, p *Pod, at time.Time) error {
	patch := fmt.Sprintf(`{"status":{"conditions":[{"type":%q,"status":"True","reason":"ConfigLoaded","lastTransitionTime":%q}]}}`,
		ConfigReady, at.UTC().Format(time.RFC3339))
	_, err := r.opts.Client.CoreV1().Pods(p.Namespace).Patch(ctx, p.Name, types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{}, "status")
	if err != nil {
		return fmt.Errorf("pod: setting %s on %s/%s: %w", ConfigReady, p.Namespace, p.Name, err)
	}
	return nil
}
