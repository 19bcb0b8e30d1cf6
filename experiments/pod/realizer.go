package pod

import (
	"context"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

// RealizerOptions configures a Realizer.
type RealizerOptions struct {
	Client    kubernetes.Interface
	Namespace string
	Selector  string // label selector of the game pods
	Source    Source
	Game      GameOptions
	Events    Events
}

// Realizer runs the game pods' programs in this process: it starts a
// worker for every Running game pod and stops it when the pod is deleted.
type Realizer struct {
	tracker
	opts    RealizerOptions
	started int
	wg      sync.WaitGroup
}

// NewRealizer returns a realizer; call Run.
func NewRealizer(opts RealizerOptions) *Realizer {
	return &Realizer{opts: opts, tracker: tracker{pods: map[types.UID]*Pod{}}}
}

// Run watches the pods until ctx ends, then stops every worker.
func (r *Realizer) Run(ctx context.Context) error {
	err := watch(ctx, r.opts.Client, r.opts.Namespace, r.opts.Selector, "", func(o *corev1.Pod) { r.observe(ctx, o) }, r.stop)
	r.mu.Lock()
	for uid := range r.pods {
		r.stopLocked(uid)
	}
	r.mu.Unlock()
	r.wg.Wait()
	return err
}

func (r *Realizer) observe(ctx context.Context, o *corev1.Pod) {
	if o.DeletionTimestamp != nil {
		r.stop(o.UID)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if p, ok := r.pods[o.UID]; ok {
		p.update(o)
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
	p := newPod(o, game.Addr())
	p.game = game
	workCtx, cancel := context.WithCancel(ctx)
	p.cancel = cancel
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
		p.ready.Store(true)
		now := time.Now()
		if ev.Loaded != nil {
			ev.Loaded(p, now, now.Sub(p.Created), uplinkBytes)
		}
		if err := markConfigReady(ctx, r.opts.Client, p.Namespace, p.Name, now, uplinkBytes); err != nil && ctx.Err() == nil && ev.Failed != nil {
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
