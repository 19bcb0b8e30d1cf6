package baseline

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"slices"
	"strings"
	"sync"

	"golang.org/x/time/rate"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
)

// bundleStore holds the bundle prepared for each pod and serves it through
// one egress limiter shared by every transfer, as the config store's
// uplink was shared (F5, F6).
type bundleStore struct {
	mu      sync.Mutex
	bundles map[types.NamespacedName]bundle
	egress  *rate.Limiter // nil: unlimited
	metrics *operatorMetrics
}

type bundle struct {
	uid     types.UID
	data    []byte // nil for an adopted pod
	version string
	gzipped bool
}

// egressChunk is how many bytes a transfer takes from the limiter at once.
const egressChunk = 32 << 10

func newBundleStore(bytesPerSecond float64, m *operatorMetrics) *bundleStore {
	s := &bundleStore{bundles: map[types.NamespacedName]bundle{}, metrics: m}
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
	return b.version, true
}

// adopt records that pod got its config before this operator started.
func (s *bundleStore) adopt(pod types.NamespacedName, uid types.UID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.bundles[pod] = bundle{uid: uid}
}

func (s *bundleStore) forget(pod types.NamespacedName) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.bundles, pod)
}

// put builds the full bundle from every config object, in name order, and
// returns its version: a hash of its content.
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
	b := bundle{uid: uid, data: raw.Bytes(), version: hex.EncodeToString(sum[:8]), gzipped: compress}
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
	s.bundles[pod] = b
	s.mu.Unlock()
	return b.version, nil
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
	if !ok || b.data == nil {
		http.Error(w, "no bundle prepared for pod "+pod.String()+" (not yet, or it was running before the operator started)", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("X-Bundle-Version", b.version)
	if b.gzipped {
		w.Header().Set("X-Bundle-Encoding", "gzip")
	}
	for rest := b.data; len(rest) > 0; {
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
