package baseline

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/flowcontrol"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// Pod annotations the operator writes.
const (
	// BundleAnnotation holds the version of the bundle prepared for the pod,
	// "<content hash>-g<generation>" (see BundleGeneration); once it is
	// set, the pod can pull its bundle, and when it changes, pull it again.
	BundleAnnotation = "veltrix.churnlab.io/bundle"
	// ReconciledAnnotation holds the time of the pod's last full reconcile.
	ReconciledAnnotation = "veltrix.churnlab.io/reconciled-at"
)

// Options configures the operator. Zero values take the defaults noted.
type Options struct {
	Namespace         string        // where game pods and configs live; default "default"
	PodSelector       string        // label selector of game pods; default "app=game"
	Replicas          int           // operator replicas; each reconciles every pod (T2); default 1
	ReconcileInterval time.Duration // full reconcile of each pod; default 5 s (F9)
	// APICallsPerReconcile is the requests of one full reconcile: a LIST
	// of every config object, then GETs of the pod, then the last
	// WritesPerReconcile of them PATCHes of it. Default 1, a LIST alone
	// (F9, baseline.apiCallsPerReconcile; model.operator.writesPerReconcile).
	APICallsPerReconcile int
	WritesPerReconcile   int
	Controller           bool    // the controller runs (T3); set it, there is no default
	QPS                  float32 // client-side rate limit per replica; default 50 (F11)
	Burst                int     // default 100
	Workers              int     // concurrent reconciles per replica; default 8
	ReloadParallelism    int     // concurrent GETs when reloading configs for a pod; default 8
	Gzip                 bool    // compress bundles
	Uplink               float64 // bundle egress limit in bytes per second; 0 = unlimited
	// Now tells the time; configurable so that tests can control it.
	Now func() time.Time
}

// Operator is a running Veltrix-like operator: Replicas reconcilers and
// one bundle endpoint.
type Operator struct {
	opts       Options
	cfg        *rest.Config
	selector   labels.Selector
	controller atomic.Bool
	// controllerCtx is cancelled when the controller is switched off, so
	// that reconciles in flight stop their API calls (and client-go's
	// retries of 429s) at once.
	ctxMu         sync.Mutex
	controllerCtx context.Context
	stopInFlight  context.CancelFunc
	bundles       *bundleStore
	metrics       *operatorMetrics
	started       time.Time // pods running since before this are adopted, not reloaded
}

// New checks opts and builds an operator that will talk to the API server
// as cfg's identity.
func New(cfg *rest.Config, opts Options) (*Operator, error) {
	if opts.Namespace == "" {
		opts.Namespace = "default"
	}
	if opts.PodSelector == "" {
		opts.PodSelector = "app=game"
	}
	if opts.Replicas == 0 {
		opts.Replicas = 1
	}
	if opts.ReconcileInterval == 0 {
		opts.ReconcileInterval = 5 * time.Second
	}
	if opts.QPS == 0 {
		opts.QPS = 50
	}
	if opts.Burst == 0 {
		opts.Burst = 100
	}
	if opts.Workers == 0 {
		opts.Workers = 8
	}
	if opts.ReloadParallelism == 0 {
		opts.ReloadParallelism = 8
	}
	if opts.APICallsPerReconcile == 0 {
		opts.APICallsPerReconcile = 1
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	switch {
	case opts.Replicas < 1:
		return nil, fmt.Errorf("baseline: replicas must be at least 1, got %d", opts.Replicas)
	case opts.ReconcileInterval < 0:
		return nil, fmt.Errorf("baseline: reconcile interval must be positive, got %s", opts.ReconcileInterval)
	case opts.QPS < 0 || opts.Burst < 1:
		return nil, fmt.Errorf("baseline: QPS must be positive and burst at least 1, got %g and %d", opts.QPS, opts.Burst)
	case opts.WritesPerReconcile < 0 || opts.WritesPerReconcile > opts.APICallsPerReconcile-1:
		return nil, fmt.Errorf("baseline: a reconcile lists the config first, so at most %d of its %d API calls can be writes, got %d",
			opts.APICallsPerReconcile-1, opts.APICallsPerReconcile, opts.WritesPerReconcile)
	case opts.Uplink < 0:
		return nil, fmt.Errorf("baseline: uplink must not be negative, got %g", opts.Uplink)
	}
	selector, err := labels.Parse(opts.PodSelector)
	if err != nil {
		return nil, fmt.Errorf("baseline: pod selector %q: %w", opts.PodSelector, err)
	}
	m := newOperatorMetrics()
	op := &Operator{opts: opts, cfg: cfg, selector: selector, metrics: m, bundles: newBundleStore(opts.Uplink, m)}
	op.SetController(opts.Controller)
	return op, nil
}

// SetController switches the controller on or off at run time (T3). While
// it is off the operator makes no API calls: it neither reconciles nor
// prepares bundles for starting pods, which get theirs once it is back on.
func (op *Operator) SetController(on bool) {
	op.ctxMu.Lock()
	defer op.ctxMu.Unlock()
	switch {
	case on && op.controllerCtx == nil:
		op.controllerCtx, op.stopInFlight = context.WithCancel(context.Background())
		op.controller.Store(true)
	case !on && op.controllerCtx != nil:
		op.controller.Store(false) // before the cancel, so the cut reconciles see it
		op.stopInFlight()
		op.controllerCtx, op.stopInFlight = nil, nil
	}
	v := 0.0
	if on {
		v = 1
	}
	op.metrics.controllerOn.Set(v)
}

// ControllerOn reports whether the controller runs.
func (op *Operator) ControllerOn() bool { return op.controller.Load() }

// Registry returns the operator's Prometheus registry.
func (op *Operator) Registry() *prometheus.Registry { return op.metrics.registry }

// Run starts every replica's reconciler and blocks until ctx ends or one
// of them fails.
func (op *Operator) Run(ctx context.Context) error {
	op.started = op.opts.Now()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, op.opts.Replicas)
	var wg sync.WaitGroup
	for r := range op.opts.Replicas {
		mgr, err := op.replica(r)
		if err != nil {
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := mgr.Start(ctx); err != nil {
				errs <- fmt.Errorf("baseline: replica %d: %w", r, err)
				cancel()
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs // nil when every replica stopped cleanly
}

// replica builds one replica: its own client (so its own QPS budget), its
// own pod informer and its own reconciler.
func (op *Operator) replica(r int) (ctrl.Manager, error) {
	cfg := rest.CopyConfig(op.cfg)
	// One token bucket for every client of the replica, as one process
	// has (each client built from a config without one makes its own).
	cfg.QPS, cfg.Burst = op.opts.QPS, op.opts.Burst
	cfg.RateLimiter = flowcontrol.NewTokenBucketRateLimiter(op.opts.QPS, op.opts.Burst)
	cfg.UserAgent = fmt.Sprintf("veltrix-operator/replica-%d", r)
	cfg.Wrap(op.metrics.countAPICalls)
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Metrics:                server.Options{BindAddress: "0"}, // the operator serves its own /metrics
		HealthProbeBindAddress: "0",
		LeaderElection:         false, // every replica reconciles: that is T2
		Cache: cache.Options{
			DefaultNamespaces:    map[string]cache.Config{op.opts.Namespace: {}},
			DefaultLabelSelector: op.selector,
		},
	})
	if err != nil {
		return nil, fmt.Errorf("baseline: replica %d: %w", r, err)
	}
	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	meta, err := metadata.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	rec := &reconciler{
		op: op, index: r, replica: strconv.Itoa(r), kube: kube, pods: mgr.GetClient(),
		configs:     dyn.Resource(Resource).Namespace(op.opts.Namespace),
		configMetas: meta.Resource(Resource).Namespace(op.opts.Namespace),
	}
	err = builder.ControllerManagedBy(mgr).
		Named(fmt.Sprintf("veltrix-replica-%d", r)).
		For(&corev1.Pod{}, builder.WithPredicates(podLifecycleChanged())).
		WithOptions(controller.Options{
			MaxConcurrentReconciles: op.opts.Workers,
			SkipNameValidation:      ptr(true),
			// A failed reconcile is retried with backoff, but never later
			// than the next periodic reconcile would have come.
			RateLimiter: workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](5*time.Millisecond, op.opts.ReconcileInterval),
		}).
		Complete(rec)
	if err != nil {
		return nil, fmt.Errorf("baseline: replica %d: %w", r, err)
	}
	return mgr, nil
}

func ptr[T any](v T) *T { return &v }

// podLifecycleChanged passes pod creations, deletions, and updates that
// change the pod's identity or phase, but not the operator's own
// annotation patches, which would otherwise re-trigger it in a loop.
func podLifecycleChanged() predicate.Predicate {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			oldPod, ok1 := e.ObjectOld.(*corev1.Pod)
			newPod, ok2 := e.ObjectNew.(*corev1.Pod)
			if !ok1 || !ok2 {
				return false
			}
			return oldPod.Status.Phase != newPod.Status.Phase || oldPod.DeletionTimestamp != newPod.DeletionTimestamp
		},
	}
}

// reconciler is one replica's reconcile loop.
type reconciler struct {
	op          *Operator
	index       int
	replica     string // index, as a metric label
	kube        kubernetes.Interface
	pods        client.Reader              // the replica's informer cache of the game pods
	configs     dynamic.ResourceInterface  // whole objects
	configMetas metadata.ResourceInterface // names and versions only
	// seen is the config as this replica last listed or reloaded it:
	// object name -> resourceVersion. Each replica keeps its own, as
	// replicas in processes of their own would, so a config change costs
	// every replica a reload. reloadMu makes that one reload at a time.
	seenMu   sync.Mutex
	seen     map[string]string
	reloadMu sync.Mutex
}

// Reconcile runs for a pod when it appears or changes phase, and again
// every ReconcileInterval. The pod comes from the informer; every config
// read goes to the API server: Veltrix had no cache of its config.
func (r *reconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	res, err := r.reconcile(ctx, req)
	if err != nil && !r.op.ControllerOn() {
		// Cut short by the switch: not a failure, so no backoff.
		return reconcile.Result{RequeueAfter: r.op.opts.ReconcileInterval}, nil
	}
	return res, err
}

func (r *reconciler) reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	op := r.op
	began := op.opts.Now()
	op.ctxMu.Lock()
	on := op.controllerCtx
	op.ctxMu.Unlock()
	if on == nil {
		// Switched off (T3): no API calls at all; look again later.
		return reconcile.Result{RequeueAfter: op.opts.ReconcileInterval}, nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(on, cancel)()
	pod := &corev1.Pod{}
	err := r.pods.Get(ctx, req.NamespacedName, pod)
	if apierrors.IsNotFound(err) {
		op.bundles.forget(req.NamespacedName)
		return reconcile.Result{}, nil
	}
	if err != nil {
		return reconcile.Result{}, err
	}
	if pod.DeletionTimestamp != nil {
		op.bundles.forget(req.NamespacedName)
		return reconcile.Result{}, nil
	}
	version, prepared := op.bundles.prepared(req.NamespacedName, pod.UID)
	switch {
	case !prepared && pod.Status.StartTime != nil && pod.Status.StartTime.Time.Before(op.started):
		// Running before the operator started: it has its config already.
		op.bundles.adopt(req.NamespacedName, pod.UID)
	case !prepared && op.bundles.prepares(req.NamespacedName, pod.UID, r.index, op.opts.Replicas):
		// A pod started since: a start or a restart (F4). One replica
		// reloads for it; the others send it the bundle once it is ready.
		if version, err = r.prepareBundle(ctx, pod); err != nil {
			return reconcile.Result{}, err
		}
	}
	if v, stale := op.bundles.refresh(req.NamespacedName, pod.UID); stale {
		// A reload since the pod got its bundle: send it again (F5, F6).
		version = v
	}
	if version != "" && pod.Annotations[BundleAnnotation] != version {
		// Tell the pod its bundle is ready (again, if the last try failed).
		if err := r.annotate(ctx, pod, BundleAnnotation, version); err != nil {
			return reconcile.Result{}, err
		}
	}
	if err := r.fullReconcile(ctx, pod); err != nil {
		return reconcile.Result{}, err
	}
	// Every ReconcileInterval from start to start, as a ticker would; a
	// reconcile that overran goes again at once. (A zero RequeueAfter
	// would mean never.)
	return reconcile.Result{RequeueAfter: max(op.opts.ReconcileInterval-op.opts.Now().Sub(began), time.Millisecond)}, nil
}

// prepareBundle reloads every config object, one GET each, and builds the
// pod's bundle: a new generation. It returns the bundle's version.
func (r *reconciler) prepareBundle(ctx context.Context, pod *corev1.Pod) (string, error) {
	return r.reload(ctx, types.NamespacedName{Namespace: pod.Namespace, Name: pod.Name}, pod.UID)
}

// reload GETs every config object and builds a new generation of the
// bundle, given to pod unless pod is empty.
func (r *reconciler) reload(ctx context.Context, pod types.NamespacedName, uid types.UID) (string, error) {
	op := r.op
	list, err := r.configMetas.List(ctx, metav1.ListOptions{})
	if err != nil {
		return "", err
	}
	names := make([]string, len(list.Items))
	for i, item := range list.Items {
		names[i] = item.GetName()
	}
	objects := make([]*unstructured.Unstructured, len(names))
	errs := make([]error, len(names))
	sem := make(chan struct{}, op.opts.ReloadParallelism)
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			objects[i], errs[i] = r.configs.Get(ctx, name, metav1.GetOptions{})
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return "", fmt.Errorf("reloading config for pod %s: %w", pod.Name, err)
	}
	version, err := op.bundles.put(pod, uid, objects, op.opts.Gzip)
	if err != nil {
		return "", err
	}
	read := make(map[string]string, len(objects))
	for _, o := range objects {
		read[o.GetName()] = o.GetResourceVersion()
	}
	r.seenMu.Lock()
	r.seen = read
	r.seenMu.Unlock()
	op.metrics.reloads.WithLabelValues(r.replica).Inc()
	return version, nil
}

// changed reports whether listed (config object name -> resourceVersion)
// differs from what this replica last listed or reloaded. Its first LIST
// only sets what it has seen.
func (r *reconciler) changed(listed map[string]string) bool {
	r.seenMu.Lock()
	defer r.seenMu.Unlock()
	if r.seen == nil {
		r.seen = listed
		return false
	}
	return !maps.Equal(r.seen, listed)
}

// fullReconcile is Veltrix's periodic reconcile: LIST every config object
// (then GET and PATCH the pod as many times as Options says), each time
// (F9). Cheap alone; 36 a second of them is what the API server could not
// absorb. A LIST that finds the config changed reloads it all.
func (r *reconciler) fullReconcile(ctx context.Context, pod *corev1.Pod) error {
	op := r.op
	list, err := r.configs.List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	listed := make(map[string]string, len(list.Items))
	for _, item := range list.Items {
		listed[item.GetName()] = item.GetResourceVersion()
	}
	if r.changed(listed) {
		// The config changed: this replica reloads it all, a new
		// generation that every pod's next reconcile sends it. One reload
		// at a time; a reconcile that waited finds the change loaded.
		r.reloadMu.Lock()
		if r.changed(listed) {
			_, err = r.reload(ctx, types.NamespacedName{}, "")
		}
		r.reloadMu.Unlock()
		if err != nil {
			return err
		}
	}
	writes := op.opts.WritesPerReconcile
	for range op.opts.APICallsPerReconcile - 1 - writes {
		if _, err := r.kube.CoreV1().Pods(pod.Namespace).Get(ctx, pod.Name, metav1.GetOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return err
		}
	}
	for range writes {
		if err := r.annotate(ctx, pod, ReconciledAnnotation, op.opts.Now().UTC().Format(time.RFC3339Nano)); err != nil {
			return err
		}
	}
	op.metrics.reconciles.WithLabelValues(r.replica).Inc()
	return nil
}

func (r *reconciler) annotate(ctx context.Context, pod *corev1.Pod, key, value string) error {
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, key, value)
	_, err := r.kube.CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
	if apierrors.IsNotFound(err) {
		return nil // deleted meanwhile
	}
	return err
}

// Handler serves the operator's HTTP API:
//
//	GET  /bundle?namespace=NS&pod=NAME   the pod's bundle, through the egress limiter
//	GET  /metrics                        Prometheus metrics
//	GET  /admin/controller               "on" or "off"
//	POST /admin/controller?enabled=BOOL  switch the periodic reconcile
//	GET  /healthz                        "ok"
func (op *Operator) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /bundle", op.bundles.serve)
	mux.Handle("GET /metrics", op.metrics.handler())
	mux.HandleFunc("GET /admin/controller", func(w http.ResponseWriter, _ *http.Request) {
		if op.ControllerOn() {
			fmt.Fprintln(w, "on")
		} else {
			fmt.Fprintln(w, "off")
		}
	})
	mux.HandleFunc("POST /admin/controller", func(w http.ResponseWriter, req *http.Request) {
		on, err := strconv.ParseBool(req.URL.Query().Get("enabled"))
		if err != nil {
			http.Error(w, "enabled must be true or false", http.StatusBadRequest)
			return
		}
		op.SetController(on)
		fmt.Fprintln(w, map[bool]string{true: "on", false: "off"}[on])
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	return mux
}
