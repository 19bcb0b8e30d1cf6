package pod

import (
	"context"
	"fmt"
	"strconv"
	"strings"
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

// ConfigReady is the pod condition set True once a pod's game server
// holds its config: by the Realizer for the pods it runs, by the pod
// itself (RunInPod) where it runs in the cluster. Game pods name it in
// spec.readinessGates, so a pod is Ready, and counts as available to its
// Deployment (a rolling update waits for it), only with config: a
// kubelet, or kwok's stages on the local target, keep it unready until
// then.
const ConfigReady corev1.PodConditionType = "churnlab.io/config"

// Pod is one game pod the runner follows: its game server, wherever that
// runs, and the latest Pod object.
type Pod struct {
	Name, Namespace, Node string
	UID                   types.UID
	Created               time.Time // the Pod object's creation

	addr    string
	ready   atomic.Bool
	game    *Game // the pod's game server, where it runs in this process
	latest  atomic.Pointer[corev1.Pod]
	changed chan struct{} // a signal: the Pod object changed
	cancel  context.CancelFunc
}

func newPod(o *corev1.Pod, addr string) *Pod {
	p := &Pod{
		Name: o.Name, Namespace: o.Namespace, Node: o.Spec.NodeName, UID: o.UID, Created: o.CreationTimestamp.Time,
		addr: addr, changed: make(chan struct{}, 1), cancel: func() {},
	}
	p.latest.Store(o)
	return p
}

// update stores o as the latest object and signals the change.
func (p *Pod) update(o *corev1.Pod) {
	p.latest.Store(o)
	select {
	case p.changed <- struct{}{}:
	default:
	}
}

// Object returns the latest Pod object the informer saw.
func (p *Pod) Object() *corev1.Pod { return p.latest.Load() }

// Changed signals that the Pod object changed since the last receive.
func (p *Pod) Changed() <-chan struct{} { return p.changed }

// Addr is the pod's game server, host:port.
func (p *Pod) Addr() string { return p.addr }

// Ready reports whether the pod has its config and serves.
func (p *Pod) Ready() bool { return p.ready.Load() }

// Events are a tracker's callbacks; any may be nil. The Realizer calls
// them from each pod's own goroutine, the Observer from its informer's.
type Events struct {
	Started func(p *Pod)                                                      // the game server listens: add it to the balancer
	Loaded  func(p *Pod, at time.Time, took time.Duration, uplinkBytes int64) // the config is in; took is from the Pod's creation
	Failed  func(p *Pod, err error)                                           // the config could not be loaded, or the pod not marked ConfigReady
	Stopped func(p *Pod)                                                      // the pod is gone
}

// tracker holds the game pods a Realizer or an Observer follows, and
// watches their Pod objects.
type tracker struct {
	mu   sync.Mutex
	pods map[types.UID]*Pod
}

// Pods returns how many pods are followed, and how many of those serve.
func (t *tracker) Pods() (total, ready int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, p := range t.pods {
		total++
		if p.Ready() {
			ready++
		}
	}
	return total, ready
}

// Running returns the names of the pods followed.
func (t *tracker) Running() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var names []string
	for _, p := range t.pods {
		names = append(names, p.Name)
	}
	return names
}

// Lookup returns the pod called name, or nil.
func (t *tracker) Lookup(name string) *Pod {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, p := range t.pods {
		if p.Name == name {
			return p
		}
	}
	return nil
}

// watch runs an informer on the pods of namespace that selector (labels)
// and field (fields) pick, until ctx ends: observe sees every added or
// updated object, gone the UID of every deleted one.
func watch(ctx context.Context, client kubernetes.Interface, namespace, selector, field string, observe func(*corev1.Pod), gone func(types.UID)) error {
	factory := informers.NewSharedInformerFactoryWithOptions(client, 0,
		informers.WithNamespace(namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector, o.FieldSelector = selector, field }))
	informer := factory.Core().V1().Pods().Informer()
	see := func(obj any) {
		if o, ok := obj.(*corev1.Pod); ok {
			observe(o)
		}
	}
	_, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    see,
		UpdateFunc: func(_, obj any) { see(obj) },
		DeleteFunc: func(obj any) {
			if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = tomb.Obj
			}
			if o, ok := obj.(*corev1.Pod); ok {
				gone(o.UID)
			}
		},
	})
	if err != nil {
		return fmt.Errorf("pod: %w", err)
	}
	factory.Start(ctx.Done())
	<-ctx.Done()
	factory.Shutdown()
	return nil
}

// markConfigReady sets pod's ConfigReady condition True, with a message
// that says when the config came in and what it cost the uplink, which
// the Observer reads back (parseLoaded). A Source calls loaded once: a
// pod's config, once in, stays (a later push updates it in place).
func markConfigReady(ctx context.Context, client kubernetes.Interface, namespace, name string, at time.Time, uplinkBytes int64) error {
	patch := fmt.Sprintf(`{"status":{"conditions":[{"type":%q,"status":"True","reason":"ConfigLoaded","message":%q,"lastTransitionTime":%q}]}}`,
		ConfigReady, loadedMessage(at, uplinkBytes), at.UTC().Format(time.RFC3339))
	_, err := client.CoreV1().Pods(namespace).Patch(ctx, name, types.StrategicMergePatchType, []byte(patch), metav1.PatchOptions{}, "status")
	if err != nil {
		return fmt.Errorf("pod: setting %s on %s/%s: %w", ConfigReady, namespace, name, err)
	}
	return nil
}

const loadedPrefix, loadedSep, loadedSuffix = "config loaded at ", "; ", " bytes over the uplink"

// loadedMessage is the ConfigReady condition's message.
func loadedMessage(at time.Time, uplinkBytes int64) string {
	return loadedPrefix + at.UTC().Format(time.RFC3339Nano) + loadedSep + strconv.FormatInt(uplinkBytes, 10) + loadedSuffix
}

// parseLoaded reads a loadedMessage back.
func parseLoaded(msg string) (time.Time, int64, error) {
	rest, ok := strings.CutPrefix(msg, loadedPrefix)
	stamp, bytes, ok2 := strings.Cut(rest, loadedSep)
	bytes, ok3 := strings.CutSuffix(bytes, loadedSuffix)
	if !ok || !ok2 || !ok3 {
		return time.Time{}, 0, fmt.Errorf("pod: condition %s's message %q is not %q", ConfigReady, msg, loadedPrefix+"TIME"+loadedSep+"N"+loadedSuffix)
	}
	at, err := time.Parse(time.RFC3339Nano, stamp)
	if err != nil {
		return time.Time{}, 0, fmt.Errorf("pod: condition %s's message %q: %w", ConfigReady, msg, err)
	}
	n, err := strconv.ParseInt(bytes, 10, 64)
	if err != nil || n < 0 {
		return time.Time{}, 0, fmt.Errorf("pod: condition %s's message %q: bad byte count %q", ConfigReady, msg, bytes)
	}
	return at, n, nil
}

// configReady returns o's ConfigReady condition when it is True.
func configReady(o *corev1.Pod) (corev1.PodCondition, bool) {
	for _, c := range o.Status.Conditions {
		if c.Type == ConfigReady && c.Status == corev1.ConditionTrue {
			return c, true
		}
	}
	return corev1.PodCondition{}, false
}
