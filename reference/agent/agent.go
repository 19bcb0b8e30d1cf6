package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/churnlab/churnlab/reference/cache"
	pb "github.com/churnlab/churnlab/reference/proto"
)

// Options configures an Agent. Zero values take the defaults noted.
type Options struct {
	Endpoints []string // service replicas, host:port; the agent fails over between them
	Node      string
	L2        *cache.L2
	Debounce  time.Duration // default 10 s (R3)
	Token     string        // bearer token; empty sends none
	// TLS is the transport security; nil means plaintext.
	TLS        credentials.TransportCredentials
	Keepalive  time.Duration // default 30 s (R7)
	BackoffMin time.Duration // first wait after a failed stream; default 100 ms
	BackoffMax time.Duration // longest wait; default 5 s. Waits are jittered.
	// HealthCheck is how often the agent asks its replica's gRPC health
	// service whether it is SERVING; a replica that is not (cut off from
	// its store, so its data may be stale) is left for one that is, if
	// any. Default 2 s.
	HealthCheck time.Duration
	// OnUpdate, if set, is called after each fragment lands in L2.
	OnUpdate func(hunt string, version uint64)
	// Seed seeds the backoff jitter, so that tests can repeat it.
	Seed uint64
	// MaxMessageBytes is the largest update the agent accepts from the
	// service: at least the service's largest fragment (configd
	// --max-fragment-bytes) and a little more for the envelope. Default
	// DefaultMaxMessageBytes.
	MaxMessageBytes int
}

// DefaultMaxMessageBytes is Options.MaxMessageBytes's default: room for
// fragments far above configd's default limit of 1 MiB (gRPC's own
// default of 4 MiB would refuse a 5 MiB fragment the service accepted).
const DefaultMaxMessageBytes = 64 << 20

// Agent keeps one stream for a node's pods. Its methods are safe for
// concurrent use.
type Agent struct {
	opts Options

	mu        sync.Mutex
	interests map[string]*interest // by hunt
	podHunt   map[string]string    // pod -> hunt
	versions  map[string]uint64    // hunt -> version in L2, as the service last said
	confirmed map[string]bool      // hunts the current stream has caught up on
	changed   chan struct{}        // closed and replaced when state waiters care about changes
	reselect  chan struct{}        // non-blocking signal: the wanted hunts changed
	refused   error                // the service's last refusal (bad token, scope, selector); nil once a stream opens
	stats     Stats
}

type interest struct {
	pods    map[string]bool
	release *time.Timer // pending removal after the debounce window
}

// Stats counts what the agent cost the service.
type Stats struct {
	Watches       int   // streams opened
	Syncs         int   // streams that caught up (got the service's synced marker)
	Shed          int   // Watch calls the service refused as too busy (ResourceExhausted)
	LeftDegraded  int   // streams left because their replica was NOT_SERVING and another was SERVING
	Failovers     int   // streams lost to an error, after which the agent moved to the next replica
	FragmentBytes int64 // fragment bytes received
	L2Hits        int   // Acquires served from L2 with no wait on the service
}

// New checks opts and returns an agent; call Run.
func New(opts Options) (*Agent, error) {
	if len(opts.Endpoints) == 0 {
		return nil, errors.New("agent: no endpoints")
	}
	if opts.L2 == nil {
		return nil, errors.New("agent: no L2 cache")
	}
	if opts.Debounce == 0 {
		opts.Debounce = 10 * time.Second
	}
	if opts.Keepalive == 0 {
		opts.Keepalive = 30 * time.Second
	}
	if opts.BackoffMin == 0 {
		opts.BackoffMin = 100 * time.Millisecond
	}
	if opts.BackoffMax == 0 {
		opts.BackoffMax = 5 * time.Second
	}
	if opts.HealthCheck == 0 {
		opts.HealthCheck = 2 * time.Second
	}
	if opts.TLS == nil {
		opts.TLS = insecure.NewCredentials()
	}
	if opts.MaxMessageBytes == 0 {
		opts.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if opts.MaxMessageBytes < 0 {
		return nil, fmt.Errorf("agent: MaxMessageBytes %d: must be above 0", opts.MaxMessageBytes)
	}
	return &Agent{
		opts:      opts,
		interests: map[string]*interest{},
		podHunt:   map[string]string{},
		versions:  map[string]uint64{},
		confirmed: map[string]bool{},
		changed:   make(chan struct{}),
		reselect:  make(chan struct{}, 1),
	}, nil
}

// Stats returns the counters so far.
func (a *Agent) Stats() Stats {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.stats
}

// Versions returns the version of each hunt the agent holds.
func (a *Agent) Versions() map[string]uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make(map[string]uint64, len(a.versions))
	for h, v := range a.versions {
		out[h] = v
	}
	return out
}

// broadcast wakes every waiter. a.mu must be held.
func (a *Agent) broadcast() {
	close(a.changed)
	a.changed = make(chan struct{})
}

func (a *Agent) signalReselect() {
	select {
	case a.reselect <- struct{}{}:
	default:
	}
}

// Acquire returns the current config of hunt for pod, waiting for the
// service if the node does not already hold it. A pod restarting within
// the debounce window is served from L2 at once.
func (a *Agent) Acquire(ctx context.Context, pod, hunt string) ([]byte, uint64, error) {
	a.mu.Lock()
	if old, ok := a.podHunt[pod]; ok && old != hunt {
		a.releaseLocked(pod)
	}
	in, ok := a.interests[hunt]
	if !ok {
		in = &interest{pods: map[string]bool{}}
		a.interests[hunt] = in
		a.signalReselect()
	}
	if in.release != nil {
		in.release.Stop() // back within the debounce window: keep the stream as it is
		in.release = nil
	}
	in.pods[pod] = true
	a.podHunt[pod] = hunt
	waited := false
	for {
		if a.refused != nil && !a.confirmed[hunt] {
			err := a.refused
			a.mu.Unlock()
			return nil, 0, fmt.Errorf("agent: the service refused this agent's watch for hunt %s: %w", hunt, err)
		}
		if a.confirmed[hunt] {
			v, held := a.versions[hunt]
			if !held {
				a.mu.Unlock()
				return nil, 0, fmt.Errorf("agent: hunt %s does not exist or is not visible to this agent", hunt)
			}
			fragment, err := a.opts.L2.Get(cache.Key{Hunt: hunt, Version: v})
			if err == nil {
				if !waited {
					a.stats.L2Hits++
				}
				a.mu.Unlock()
				return fragment, v, nil
			}
			// Missing or corrupt in L2: forget it and have the stream resend.
			delete(a.versions, hunt)
			delete(a.confirmed, hunt)
			a.signalReselect()
		}
		changed := a.changed
		a.mu.Unlock()
		waited = true
		select {
		case <-ctx.Done():
			return nil, 0, fmt.Errorf("agent: waiting for hunt %s: %w", hunt, ctx.Err())
		case <-changed:
		}
		a.mu.Lock()
	}
}

// Release tells the agent pod stopped. Its hunt leaves the stream after
// the debounce window unless a pod of that hunt Acquires it first.
func (a *Agent) Release(pod string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.releaseLocked(pod)
}

func (a *Agent) releaseLocked(pod string) {
	hunt, ok := a.podHunt[pod]
	if !ok {
		return
	}
	delete(a.podHunt, pod)
	in := a.interests[hunt]
	delete(in.pods, pod)
	if len(in.pods) > 0 || in.release != nil {
		return
	}
	in.release = time.AfterFunc(a.opts.Debounce, func() {
		a.mu.Lock()
		defer a.mu.Unlock()
		if cur := a.interests[hunt]; cur == in && len(in.pods) == 0 {
			delete(a.interests, hunt)
			delete(a.confirmed, hunt)
			a.signalReselect()
		}
	})
}

// selector returns the selector for the wanted hunts, and the versions to
// tell the service, or "" when nothing is wanted.
func (a *Agent) selector() (string, map[string]uint64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	hunts := make([]string, 0, len(a.interests))
	for h := range a.interests {
		hunts = append(hunts, h)
	}
	if len(hunts) == 0 {
		return "", nil
	}
	slices.Sort(hunts)
	known := map[string]uint64{}
	for _, h := range hunts {
		if v, ok := a.versions[h]; ok {
			known[h] = v
		} else if v, ok := a.opts.L2.Latest(h); ok {
			known[h] = v // a warm L2 from before this agent: the service confirms or replaces it
		}
		a.confirmed[h] = false
	}
	return "hunt in (" + strings.Join(hunts, ",") + ")", known
}

// Run keeps the stream up until ctx ends: it connects to a replica,
// watches the wanted hunts, reconnects at once when they change, and
// after a failure moves to the next replica after a jittered backoff.
func (a *Agent) Run(ctx context.Context) error {
	rng := rand.New(rand.NewPCG(a.opts.Seed, 0x5eed))
	conns := make([]*grpc.ClientConn, len(a.opts.Endpoints))
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	conn := func(j int) (*grpc.ClientConn, error) {
		if conns[j] == nil {
			c, err := grpc.NewClient(a.opts.Endpoints[j],
				grpc.WithTransportCredentials(a.opts.TLS),
				grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(a.opts.MaxMessageBytes)),
				grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: a.opts.Keepalive, Timeout: 10 * time.Second, PermitWithoutStream: true}))
			if err != nil {
				return nil, fmt.Errorf("agent: endpoint %s: %w", a.opts.Endpoints[j], err)
			}
			conns[j] = c
		}
		return conns[j], nil
	}
	backoff := time.Duration(0)
	for i := 0; ctx.Err() == nil; {
		sel, known := a.selector()
		if sel == "" {
			select {
			case <-ctx.Done():
			case <-a.reselect:
			}
			continue
		}
		c, err := conn(i)
		if err != nil {
			return err
		}
		// better finds a SERVING replica when this one is not.
		better := func() (int, bool) {
			if a.serving(ctx, c) {
				return 0, false
			}
			for k := 1; k < len(conns); k++ {
				j := (i + k) % len(conns)
				if other, err := conn(j); err == nil && a.serving(ctx, other) {
					return j, true
				}
			}
			return 0, false
		}
		synced, err := a.watch(ctx, pb.NewConfigStreamClient(c), sel, known, better)
		if synced {
			backoff = 0 // the stream worked: a later failure starts afresh
		}
		var moved *movedTo
		switch {
		case ctx.Err() != nil:
		case errors.Is(err, errReselect):
			backoff = 0
		case errors.As(err, &moved):
			a.mu.Lock()
			a.stats.LeftDegraded++
			a.mu.Unlock()
			i, backoff = moved.endpoint, 0
		default:
			// Fail over to the next replica, after a jittered wait. A
			// refusal is told to the pods waiting, who cannot expect a
			// retry to fix it; the agent keeps trying all the same.
			a.mu.Lock()
			a.stats.Failovers++
			if refusal(err) {
				a.refused = err
				a.broadcast()
			}
			a.mu.Unlock()
			i = (i + 1) % len(conns)
			backoff = min(max(2*backoff, a.opts.BackoffMin), a.opts.BackoffMax)
			wait := time.Duration(rng.Int64N(int64(backoff)) + 1)
			if hint, ok := retryHint(err); ok {
				// The service is shedding load: come back no sooner than it
				// asks, spread over as long again so that the retries of a
				// whole fleet do not land together.
				a.mu.Lock()
				a.stats.Shed++
				a.mu.Unlock()
				wait = hint + time.Duration(rng.Int64N(int64(hint)+1))
			}
			select {
			case <-ctx.Done():
			case <-time.After(wait):
			}
		}
	}
	return nil
}

var errReselect = errors.New("agent: wanted hunts changed")

// movedTo ends a stream whose replica is NOT_SERVING for one that is.
type movedTo struct{ endpoint int }

func (m *movedTo) Error() string {
	return fmt.Sprintf("agent: moving to SERVING endpoint %d", m.endpoint)
}

// serving asks c's health service whether the replica is SERVING.
func (a *Agent) serving(ctx context.Context, c *grpc.ClientConn) bool {
	ctx, cancel := context.WithTimeout(ctx, a.opts.HealthCheck)
	defer cancel()
	resp, err := healthpb.NewHealthClient(c).Check(ctx, &healthpb.HealthCheckRequest{})
	return err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING
}

// retryHint returns the wait a ResourceExhausted refusal asks for.
func retryHint(err error) (time.Duration, bool) {
	st := status.Convert(err)
	if st.Code() != codes.ResourceExhausted {
		return 0, false
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.RetryInfo); ok && info.GetRetryDelay().AsDuration() > 0 {
			return info.GetRetryDelay().AsDuration(), true
		}
	}
	return 0, false
}

// refusal reports whether err is the service saying no to this agent (its
// token or selector), rather than a fault another replica might not have.
func refusal(err error) bool {
	switch status.Code(err) {
	case codes.Unauthenticated, codes.PermissionDenied, codes.InvalidArgument:
		return true
	}
	return false
}

// watch runs one stream until it fails, ctx ends, the wanted hunts
// change, or, checked every Options.HealthCheck, better finds a SERVING
// replica while this one is not; it says whether the stream caught up
// before it ended.
func (a *Agent) watch(ctx context.Context, client pb.ConfigStreamClient, sel string, known map[string]uint64, better func() (int, bool)) (synced bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if a.opts.Token != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+a.opts.Token)
	}
	stream, err := client.Watch(ctx, &pb.WatchRequest{Selector: sel, KnownVersions: known, Node: a.opts.Node})
	if err != nil {
		return false, err
	}
	a.mu.Lock()
	a.stats.Watches++
	a.mu.Unlock()
	refusedCleared := false
	mentioned := map[string]bool{} // hunts the catch-up sent something for
	updates := make(chan *pb.ConfigUpdate)
	errs := make(chan error, 1)
	go func() {
		for {
			u, err := stream.Recv()
			if err != nil {
				errs <- err
				return
			}
			select {
			case updates <- u:
			case <-ctx.Done():
				errs <- ctx.Err()
				return
			}
		}
	}()
	health := time.NewTicker(a.opts.HealthCheck)
	defer health.Stop()
	for {
		select {
		case <-health.C:
			if j, ok := better(); ok {
				return synced, &movedTo{endpoint: j}
			}
		case <-a.reselect:
			return synced, errReselect
		case err := <-errs:
			if err == io.EOF {
				err = errors.New("agent: stream ended")
			}
			return synced, err
		case u := <-updates:
			if !refusedCleared { // the service accepted this stream
				a.mu.Lock()
				a.refused = nil
				a.mu.Unlock()
				refusedCleared = true
			}
			if err := a.apply(u, known, mentioned); err != nil {
				return synced, err
			}
			if u.GetSynced() && !synced {
				synced = true
				a.mu.Lock()
				a.stats.Syncs++
				a.mu.Unlock()
			}
		}
	}
}

// apply stores one update and wakes the pods waiting for it. known is what
// this stream told the service; mentioned collects the hunts it answered.
func (a *Agent) apply(u *pb.ConfigUpdate, known map[string]uint64, mentioned map[string]bool) error {
	mentioned[u.GetHunt()] = true
	if u.GetSynced() {
		a.mu.Lock()
		for h := range a.interests {
			if _, ok := a.confirmed[h]; ok {
				a.confirmed[h] = true
			}
		}
		// Known hunts the service did not mention are current as known.
		for h, v := range known {
			if !mentioned[h] {
				a.versions[h] = v
			}
		}
		a.broadcast()
		a.mu.Unlock()
		return nil
	}
	hunt, version := u.GetHunt(), u.GetVersion()
	a.mu.Lock()
	if old, ok := a.versions[hunt]; ok && version != 0 && version < old {
		a.mu.Unlock()
		return fmt.Errorf("agent: service sent hunt %s at version %d, older than the %d held", hunt, version, old)
	}
	a.mu.Unlock()
	if u.GetDeleted() {
		a.mu.Lock()
		delete(a.versions, hunt)
		a.broadcast()
		a.mu.Unlock()
		return nil
	}
	if err := a.opts.L2.Put(cache.Key{Hunt: hunt, Version: version}, u.GetFragment()); err != nil {
		return err
	}
	a.mu.Lock()
	a.versions[hunt] = version
	a.stats.FragmentBytes += int64(len(u.GetFragment()))
	a.broadcast()
	a.mu.Unlock()
	if a.opts.OnUpdate != nil {
		a.opts.OnUpdate(hunt, version)
	}
	return nil
}
