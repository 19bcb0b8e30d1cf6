package baseline

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/time/rate"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
)

// bundleStore holds the bundle prepared for each pod and serves it through
// one egress limiter shared by every transfer, as the config store's
// uplink was shared (F5, F6).
//
// Every reload of the config objects makes a new generation of the bundle
// (F4). A pod holds the generation it was last sent; the periodic
// reconcile of a pod on an older one sends it the current bundle again,
// so during churn every pod gets the whole bundle once per pod start
// (F5, F6), as the simulator's operator model does.
//
// A starting pod gets one preparer: the replicas take turns, so that one
// reload serves it, however many replicas reconcile it.
type bundleStore struct {
	mu        sync.Mutex
	bundles   map[types.NamespacedName]bundle
	preparers map[types.NamespacedName]preparer
	turn      int           // the replica that prepares the next starting pod, modulo the replicas
	current   *built        // the last reload's bundle; nil before the first
	egress    *rate.Limiter // nil: unlimited
	metrics   *operatorMetrics
}

// preparer is the replica that reloads the config for a starting pod.
type preparer struct {
	uid     types.UID
	replica int
}

// bundle is what a pod holds.
type bundle struct {
	uid   types.UID
	built *built // nil for an adopted pod, which has the config it started with
}

// built is one generation of the bundle, shared by every pod sent it.
type built struct {
	data       []byte
	version    string // content hash and generation
	gzipped    bool
	generation int
}

// egressChunk is how many bytes a transfer takes from the limiter at once.
const egressChunk = 32 << 10

func newBundleStore(bytesPerSecond float64, m *operatorMetrics) *bundleStore {
	s := &bundleStore{bundles: map[types.NamespacedName]bundle{}, preparers: map[types.NamespacedName]preparer{}, metrics: m}
	if bytesPerSecond > 0 {
		s.egress = rate.NewLimiter(rate.Limit(bytesPerSecond), egressChunk)
	}
	return s
}

// prepared reports whether pod (with this UID: a restarted pod has a new
// one) already has its bundle or was adopted, and the bundle's version
// ("" for an adopted pod).
func (s *bundleStore) prepared(pod types.NamespacedName, uid types.UID) (version string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.bundles[pod]
	if !ok || b.uid != uid {
		return "", false
	}
	if b.built == nil {
		return "", true
	}
	return b.built.version, true
}

// adopt records that pod got its config before this operator started.
func (s *bundleStore) adopt(pod types.NamespacedName, uid types.UID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bundles[pod] = bundle{uid: uid}
}

// prepares reports whether replica (of replicas) is the one to reload the
// config for pod, a pod that started since the operator did. The first
// replica to ask names the preparer, in turn, as the simulator's operator
// hands each starting pod to one replica.
func (s *bundleStore) prepares(pod types.NamespacedName, uid types.UID, replica, replicas int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.preparers[pod]
	if !ok || p.uid != uid {
		p = preparer{uid: uid, replica: s.turn % replicas}
		s.turn++
		s.preparers[pod] = p
	}
	return p.replica == replica
}

func (s *bundleStore) forget(pod types.NamespacedName) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.bundles, pod)
	delete(s.preparers, pod)
}

// put builds the full bundle from every config object, in name order, as
// a new generation, gives it to pod, and returns its version.
func (s *bundleStore) put(pod types.NamespacedName, uid types.UID, objects []*unstructured.Unstructured, compress bool) (string, error) {
	slices.SortFunc(objects, func(a, b *unstructured.Unstructured) int { return strings.Compare(a.GetName(), b.GetName()) })
	var raw bytes.Buffer
	for _, o := range objects {
		data, _, _ := unstructured.NestedString(o.Object, "spec", "data")
		raw.WriteString("--- " + o.GetName() + "\n")
		raw.WriteString(data)
		raw.WriteByte('\n')
	}
	sum := sha256.Sum256(raw.Bytes())
	b := &built{data: raw.Bytes(), gzipped: compress}
	if compress {
		var z bytes.Buffer
		zw := gzip.NewWriter(&z)
		if _, err := zw.Write(raw.Bytes()); err != nil {
			return "", err
		}
		if err := zw.Close(); err != nil {
			return "", err
		}
		b.data = z.Bytes()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	b.generation = 1
	if s.current != nil {
		b.generation = s.current.generation + 1
	}
	b.version = fmt.Sprintf("%s-g%d", hex.EncodeToString(sum[:8]), b.generation)
	s.current = b
	s.metrics.generation.Set(float64(b.generation))
	if pod.Name != "" {
		s.bundles[pod] = bundle{uid: uid, built: b}
	}
	return b.version, nil
}

// refresh gives pod the current generation if it holds an older one (an
// adopted pod holds none), and returns its version; ok is false when the
// pod is up to date or unknown.
func (s *bundleStore) refresh(pod types.NamespacedName, uid types.UID) (version string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, known := s.bundles[pod]
	if !known || b.uid != uid || s.current == nil || (b.built != nil && b.built.generation >= s.current.generation) {
		return "", false
	}
	b.built = s.current
	s.bundles[pod] = b
	return s.current.version, true
}

// BundleGeneration returns the generation of a bundle version (the
// BundleAnnotation, or the X-Bundle-Version header of /bundle).
func BundleGeneration(version string) (int, bool) {
	i := strings.LastIndex(version, "-g")
	if i < 0 {
		return 0, false
	}
	g, err := strconv.Atoi(version[i+2:])
	return g, err == nil && g > 0
}

// serve answers GET /bundle?namespace=NS&pod=NAME.
func (s *bundleStore) serve(w http.ResponseWriter, req *http.Request) {
	q := req.URL.Query()
	pod := types.NamespacedName{Namespace: q.Get("namespace"), Name: q.Get("pod")}
	if pod.Namespace == "" || pod.Name == "" {
		http.Error(w, "want /bundle?namespace=NS&pod=NAME", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	b, ok := s.bundles[pod]
	s.mu.Unlock()
	if !ok || b.built == nil {
		http.Error(w, "no bundle prepared for pod "+pod.String()+" (not yet, or it was running before the operator started)", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("X-Bundle-Version", b.built.version)
	if b.built.gzipped {
		w.Header().Set("X-Bundle-Encoding", "gzip")
	}
	for rest := b.built.data; len(rest) > 0; {
		n := min(len(rest), egressChunk)
		if s.egress != nil {
			if err := s.egress.WaitN(req.Context(), n); err != nil {
				return // the client went away
			}
		}
		if _, err := w.Write(rest[:n]); err != nil {
			return
		}
		s.metrics.bundleBytes.Add(float64(n))
		rest = rest[n:]
	}
}
