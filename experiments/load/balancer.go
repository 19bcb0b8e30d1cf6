package load

import (
	"context"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/churnlab/churnlab/experiments/scenario"
)

// Balancer is an HTTP load balancer over game pods. A pod joins the
// rotation after PassThreshold passing health checks in a row and leaves
// it after FailThreshold failing ones; until then a pod that went away
// still gets requests, which fail. Requests go round-robin over the pods
// in rotation; with none, the balancer answers 503.
type Balancer struct {
	hc         scenario.HealthCheck
	healthPath string
	client     *http.Client

	mu       sync.Mutex
	backends []*backend // in the order they were added
	next     int
}

type backend struct {
	addr          string
	proxy         *httputil.ReverseProxy
	inRotation    bool
	retired       bool // the pod is gone; forget it once out of rotation
	passes, fails int  // consecutive
}

// NewBalancer returns a balancer that checks healthPath on every pod each
// hc.Interval.
func NewBalancer(hc scenario.HealthCheck, healthPath string) *Balancer {
	return &Balancer{
		hc:         hc,
		healthPath: healthPath,
		client:     &http.Client{Timeout: hc.Interval.D()},
	}
}

// Add registers a pod at addr (host:port). It takes no requests until it
// passes its checks.
func (b *Balancer) Add(addr string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	// A new pod on a retired one's port replaces it.
	b.backends = slices.DeleteFunc(b.backends, func(x *backend) bool { return x.addr == addr && x.retired })
	if slices.ContainsFunc(b.backends, func(x *backend) bool { return x.addr == addr }) {
		return
	}
	proxy := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: addr})
	proxy.ErrorHandler = func(w http.ResponseWriter, _ *http.Request, err error) {
		http.Error(w, "pod unreachable: "+err.Error(), http.StatusBadGateway)
	}
	b.backends = append(b.backends, &backend{addr: addr, proxy: proxy})
}

// Retire says the pod at addr is gone (deleted). The balancer does not act
// on it: like the 2023 load balancers, which knew pods only through their
// checks (F7), it keeps sending the pod requests, which fail, until its
// checks take it out of rotation; then it forgets it.
func (b *Balancer) Retire(addr string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, x := range b.backends {
		if x.addr == addr {
			x.retired = true
		}
	}
	b.forgetRetired()
}

// forgetRetired drops retired pods that are out of rotation. b.mu must be
// held.
func (b *Balancer) forgetRetired() {
	b.backends = slices.DeleteFunc(b.backends, func(x *backend) bool { return x.retired && !x.inRotation })
}

// InRotation returns how many pods take requests now.
func (b *Balancer) InRotation() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, x := range b.backends {
		if x.inRotation {
			n++
		}
	}
	return n
}

// Run checks every pod each interval until ctx ends.
func (b *Balancer) Run(ctx context.Context) {
	t := time.NewTicker(b.hc.Interval.D())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		b.mu.Lock()
		pods := slices.Clone(b.backends)
		b.mu.Unlock()
		var wg sync.WaitGroup
		for _, x := range pods {
			wg.Add(1)
			go func() { defer wg.Done(); b.check(ctx, x) }()
		}
		wg.Wait()
	}
}

// check probes one pod and moves it in or out of rotation.
func (b *Balancer) check(ctx context.Context, x *backend) {
	ok := false
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+x.addr+b.healthPath, nil)
	if err == nil {
		if resp, err := b.client.Do(req); err == nil {
			resp.Body.Close()
			ok = resp.StatusCode == http.StatusOK
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if ok {
		x.passes, x.fails = x.passes+1, 0
		if !x.inRotation && x.passes >= b.hc.PassThreshold {
			x.inRotation = true
		}
	} else {
		x.fails, x.passes = x.fails+1, 0
		if x.inRotation && x.fails >= b.hc.FailThreshold {
			x.inRotation = false
		}
	}
	b.forgetRetired()
}

// ServeHTTP sends r to the next pod in rotation.
func (b *Balancer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.mu.Lock()
	var target *backend
	for range len(b.backends) {
		x := b.backends[b.next%len(b.backends)]
		b.next++
		if x.inRotation {
			target = x
			break
		}
	}
	b.mu.Unlock()
	if target == nil {
		http.Error(w, "no pod in rotation", http.StatusServiceUnavailable)
		return
	}
	target.proxy.ServeHTTP(w, r)
}
