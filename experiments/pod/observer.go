package pod

import (
	"context"
	"net"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

// ObserverOptions configures an Observer.
type ObserverOptions struct {
	Client    kubernetes.Interface
	Namespace string
	Selector  string // label selector of the game pods
	Port      int    // the game servers' port on their pod IPs
	Events    Events
}

// Observer follows game pods whose programs run in the cluster
// (cmd/podagent, RunInPod): it calls Started once a pod is Running with
// an IP, Loaded once the pod has marked itself ConfigReady, with the time
// and uplink bytes the pod wrote in the condition, and Stopped when the
// pod is deleted.
type Observer struct {
	tracker
	opts ObserverOptions
}

// NewObserver returns an observer; call Run.
func NewObserver(opts ObserverOptions) *Observer {
	return &Observer{opts: opts, tracker: tracker{pods: map[types.UID]*Pod{}}}
}

// Run watches the pods until ctx ends.
func (o *Observer) Run(ctx context.Context) error {
	return watch(ctx, o.opts.Client, o.opts.Namespace, o.opts.Selector, "", o.observe, o.stop)
}

func (o *Observer) observe(obj *corev1.Pod) {
	if obj.DeletionTimestamp != nil {
		o.stop(obj.UID)
		return
	}
	ev := o.opts.Events
	o.mu.Lock()
	p, known := o.pods[obj.UID]
	if !known {
		if obj.Status.Phase != corev1.PodRunning || obj.Status.PodIP == "" {
			o.mu.Unlock()
			return
		}
		p = newPod(obj, net.JoinHostPort(obj.Status.PodIP, strconv.Itoa(o.opts.Port)))
		o.pods[obj.UID] = p
	} else {
		p.update(obj)
	}
	cond, ready := configReady(obj)
	loaded := ready && !p.ready.Swap(true)
	o.mu.Unlock()
	if !known && ev.Started != nil {
		ev.Started(p)
	}
	if !loaded {
		return
	}
	at, uplinkBytes, err := parseLoaded(cond.Message)
	switch {
	case err != nil && ev.Failed != nil:
		ev.Failed(p, err)
	case err == nil && ev.Loaded != nil:
		ev.Loaded(p, at, at.Sub(p.Created), uplinkBytes)
	}
}

func (o *Observer) stop(uid types.UID) {
	o.mu.Lock()
	p, ok := o.pods[uid]
	delete(o.pods, uid)
	o.mu.Unlock()
	if ok && o.opts.Events.Stopped != nil {
		o.opts.Events.Stopped(p)
	}
}
