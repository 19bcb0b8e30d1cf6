package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/churnlab/churnlab/reference/cache"
	pb "github.com/churnlab/churnlab/reference/proto"
	"github.com/churnlab/churnlab/reference/store"
)

// Options configures a Server. Zero values take the defaults noted.
type Options struct {
	Store            store.Store
	Tokens           *Tokens              // nil: auth off
	L1Entries        int                  // default 1000 (R5)
	L1Bytes          int                  // default 1000 x 512 B (R5)
	MaxFragmentBytes int                  // Put refuses larger fragments; default 1 MiB, at most MaxFragmentLimit
	Backlog          int                  // changes kept for streams that fall behind; one further behind resyncs; default 1024
	Keepalive        time.Duration        // server pings idle connections this often; default 30 s (R7)
	StoreCheck       time.Duration        // the store is pinged this often, and must answer within it; default 1 s
	CatchUps         int                  // streams caught up at once; default 64
	CatchUpWaiters   int                  // streams waiting to catch up; beyond, Watch is shed with ResourceExhausted; default 1024
	Registry         *prometheus.Registry // metrics go here; default a new one
	Logger           *slog.Logger
	// Now tells the time; configurable so that tests can control it.
	Now func() time.Time
	// InjectPushDelay, for tests only, makes every push wait this long
	// before it is sent: a deliberately slower server, to show that the
	// live gate (make gate-live) catches a regression of the real code.
	// Zero, the default, in any real use.
	InjectPushDelay time.Duration
}

// MaxFragmentLimit is the largest Options.MaxFragmentBytes: a protobuf
// message cannot reach 2 GiB, and a fragment travels in one.
const MaxFragmentLimit = 1 << 30

// envelopeHeadroom is the room a Put request gets above its fragment, for
// its hunt id and labels.
const envelopeHeadroom = 1 << 20

// grpcDefaultRecvBytes is gRPC's own default receive limit, which the
// server never goes below.
const grpcDefaultRecvBytes = 4 << 20

// Server is one replica of the reference config service.
type Server struct {
	pb.UnimplementedConfigStreamServer
	pb.UnimplementedConfigAdminServer

	opts     Options
	l1       *cache.L1
	admit    *admission
	shutdown chan struct{} // closed when Run returns: streams end so agents fail over
	health   *health.Server
	metrics  *serverMetrics

	mu      sync.Mutex
	hunts   map[string]huntState // the index, synced from the store
	synced  bool
	storeUp bool // the last store check succeeded
	// backlog is a ring of the last Options.Backlog changes, shared by
	// every stream: each keeps only its position, so a stream costs no
	// queue of its own, and one that stalls costs nothing but its place.
	backlog     []*notice
	first, next uint64        // sequence numbers held: [first, next)
	wake        chan struct{} // closed and replaced on every change
}

// huntState is what the index knows of a hunt: enough to match selectors
// and to know which version is current, not the fragment itself.
type huntState struct {
	labels  labels.Set
	version uint64
}

// New checks opts and returns a server that is not yet serving: call Run.
func New(opts Options) (*Server, error) {
	if opts.Store == nil {
		return nil, errors.New("server: no store")
	}
	if opts.L1Entries == 0 {
		opts.L1Entries = 1000
	}
	if opts.L1Bytes == 0 {
		opts.L1Bytes = 1000 * 512
	}
	if opts.MaxFragmentBytes == 0 {
		opts.MaxFragmentBytes = 1 << 20
	}
	if opts.Backlog == 0 {
		opts.Backlog = 1024
	}
	if opts.Keepalive == 0 {
		opts.Keepalive = 30 * time.Second
	}
	if opts.StoreCheck == 0 {
		opts.StoreCheck = time.Second
	}
	if opts.CatchUps == 0 {
		opts.CatchUps = 64
	}
	if opts.CatchUpWaiters == 0 {
		opts.CatchUpWaiters = 1024
	}
	if opts.Registry == nil {
		opts.Registry = prometheus.NewRegistry()
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.L1Entries < 0 || opts.L1Bytes < 0 || opts.MaxFragmentBytes < 0 || opts.Backlog < 1 || opts.CatchUps < 1 || opts.CatchUpWaiters < 0 {
		return nil, fmt.Errorf("server: L1 bounds, fragment limit, backlog and catch-up limits must be positive")
	}
	if opts.MaxFragmentBytes > MaxFragmentLimit {
		return nil, fmt.Errorf("server: MaxFragmentBytes %d is over the %d-byte limit of a protobuf message's fragment", opts.MaxFragmentBytes, MaxFragmentLimit)
	}
	s := &Server{
		opts:     opts,
		l1:       cache.NewL1(opts.L1Entries, opts.L1Bytes),
		admit:    newAdmission(opts.CatchUps, opts.CatchUpWaiters),
		health:   health.NewServer(),
		hunts:    map[string]huntState{},
		shutdown: make(chan struct{}),
		backlog:  make([]*notice, opts.Backlog),
		wake:     make(chan struct{}),
		storeUp:  true,
	}
	s.metrics = newServerMetrics(opts.Registry, s)
	s.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	return s, nil
}

// GRPCOptions returns the server options the service needs: its codec,
// which sends a change encoded once to every stream (a server built
// without these options cannot send updates); a receive limit that fits a
// Put of the largest fragment allowed (MaxRecvBytes); and keepalive pings
// every Options.Keepalive (R7), with clients allowed to ping as often.
func (s *Server) GRPCOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ForceServerCodecV2(newSharedEncodingCodec()),
		grpc.MaxRecvMsgSize(s.MaxRecvBytes()),
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: s.opts.Keepalive, Timeout: 10 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
	}
}

// MaxRecvBytes is the largest request the server reads: a Put of
// Options.MaxFragmentBytes with room for its hunt id and labels, and never
// less than gRPC's default of 4 MiB. A Put over MaxFragmentBytes but
// within it is refused with InvalidArgument and the limit; one past it,
// by gRPC itself with ResourceExhausted. Clients of Watch must accept
// messages of MaxFragmentBytes and a little more (agent.Options.MaxMessageBytes).
func (s *Server) MaxRecvBytes() int {
	return max(grpcDefaultRecvBytes, s.opts.MaxFragmentBytes+envelopeHeadroom)
}

// Register adds the config services, health and reflection to g.
func (s *Server) Register(g *grpc.Server) {
	pb.RegisterConfigStreamServer(g, s)
	pb.RegisterConfigAdminServer(g, s)
	healthpb.RegisterHealthServer(g, s.health)
	reflection.Register(g)
}

// Run keeps the index in sync with the store until ctx ends: it syncs,
// applies every change, and syncs again whenever the change stream ends.
// The server reports SERVING once the first sync is done.
func (s *Server) Run(ctx context.Context) error {
	checked := make(chan struct{})
	go func() { s.checkStore(ctx); close(checked) }()
	defer func() { <-checked }()
	for ctx.Err() == nil {
		snapshot, events, err := s.opts.Store.Sync(ctx)
		if err != nil {
			s.opts.Logger.Warn("sync with the store failed; retrying", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
			continue
		}
		s.applySnapshot(snapshot)
		for e := range events {
			s.apply(e)
		}
	}
	s.health.Shutdown()
	close(s.shutdown)
	return nil
}

// applySnapshot replaces the index with a full snapshot, telling watchers
// about every hunt that changed or vanished meanwhile.
func (s *Server) applySnapshot(snapshot []store.Hunt) {
	now := s.opts.Now()
	s.mu.Lock()
	seen := make(map[string]bool, len(snapshot))
	var changes []store.Event
	for _, h := range snapshot {
		seen[h.ID] = true
		if old, ok := s.hunts[h.ID]; !ok || old.version < h.Version {
			changes = append(changes, store.Event{Hunt: h})
		}
	}
	for id, old := range s.hunts {
		if !seen[id] {
			changes = append(changes, store.Event{Hunt: store.Hunt{ID: id, Version: old.version}, Deleted: true})
		}
	}
	s.synced = true
	s.mu.Unlock()
	for _, e := range changes {
		s.applyAt(e, now)
	}
	s.reportHealth()
}

// checkStore pings the store every Options.StoreCheck until ctx ends.
// While the store does not answer, the replica is degraded: its streams
// go on from its index and L1 (nothing can be written meanwhile through
// a store no replica reaches), but it reports NOT_SERVING and
// configd_store_up 0, so that a readiness probe takes it out of rotation
// and operators see why. When the store answers again, the sync loop
// has already resynced the index (Run), and it reports SERVING.
func (s *Server) checkStore(ctx context.Context) {
	t := time.NewTicker(s.opts.StoreCheck)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pingCtx, cancel := context.WithTimeout(ctx, s.opts.StoreCheck)
		err := s.opts.Store.Ping(pingCtx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		s.mu.Lock()
		was := s.storeUp
		s.storeUp = err == nil
		s.mu.Unlock()
		if was != (err == nil) {
			if err != nil {
				s.opts.Logger.Warn("config store unreachable; serving from the index and L1, reporting NOT_SERVING", "err", err)
			} else {
				s.opts.Logger.Info("config store reachable again")
			}
			s.reportHealth()
		}
	}
}

// reportHealth sets the gRPC health status: SERVING once synced while the
// store answers, NOT_SERVING otherwise.
func (s *Server) reportHealth() {
	s.mu.Lock()
	ok := s.synced && s.storeUp
	s.mu.Unlock()
	st := healthpb.HealthCheckResponse_NOT_SERVING
	if ok {
		st = healthpb.HealthCheckResponse_SERVING
	}
	s.health.SetServingStatus("", st)
}

func (s *Server) apply(e store.Event) { s.applyAt(e, s.opts.Now()) }

// applyAt updates the index with one change, appends it to the backlog
// and wakes the streams.
func (s *Server) applyAt(e store.Event, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, existed := s.hunts[e.Hunt.ID]
	if existed && e.Hunt.Version <= old.version && !e.Deleted {
		return // already known: a resync replaying what we have
	}
	n := &notice{hunt: e.Hunt.ID, version: e.Hunt.Version, deleted: e.Deleted, before: old.labels, seenAt: now}
	removal, err := encodeUpdate(&pb.ConfigUpdate{Hunt: e.Hunt.ID, Version: e.Hunt.Version, Change: &pb.ConfigUpdate_Deleted{Deleted: true}})
	if err != nil {
		s.opts.Logger.Error("encoding an update", "hunt", e.Hunt.ID, "err", err)
		return
	}
	n.removal = removal
	if e.Deleted {
		delete(s.hunts, e.Hunt.ID)
	} else {
		n.now = labels.Set(e.Hunt.Labels)
		s.hunts[e.Hunt.ID] = huntState{labels: n.now, version: e.Hunt.Version}
		s.l1.Put(cache.Key{Hunt: e.Hunt.ID, Version: e.Hunt.Version}, e.Hunt.Fragment)
		if n.update, err = encodeUpdate(&pb.ConfigUpdate{Hunt: e.Hunt.ID, Version: e.Hunt.Version, Change: &pb.ConfigUpdate_Fragment{Fragment: e.Hunt.Fragment}}); err != nil {
			s.opts.Logger.Error("encoding an update", "hunt", e.Hunt.ID, "err", err)
			return
		}
	}
	s.backlog[s.next%uint64(len(s.backlog))] = n
	s.next++
	if s.next-s.first > uint64(len(s.backlog)) {
		s.first++
	}
	close(s.wake)
	s.wake = make(chan struct{})
}

// fragment returns hunt's fragment at version or newer, from L1 or the
// store.
func (s *Server) fragment(ctx context.Context, hunt string, version uint64) ([]byte, uint64, error) {
	if f, ok := s.l1.Get(cache.Key{Hunt: hunt, Version: version}); ok {
		return f, version, nil
	}
	h, err := s.opts.Store.Get(ctx, hunt)
	if err != nil {
		return nil, 0, err
	}
	if h.Version < version {
		return nil, 0, fmt.Errorf("server: store has hunt %s at version %d, older than %d", hunt, h.Version, version)
	}
	s.l1.Put(cache.Key{Hunt: hunt, Version: h.Version}, h.Fragment)
	return h.Fragment, h.Version, nil
}

// Serve runs the replica on l until ctx ends: it keeps the index in sync
// with the store (Run) and serves gRPC with GRPCOptions and extra. When
// ctx ends, every Watch stream ends with Unavailable, so agents move to
// another replica at once, and Serve returns after the server has stopped.
func (s *Server) Serve(ctx context.Context, l net.Listener, extra ...grpc.ServerOption) error {
	g := grpc.NewServer(append(s.GRPCOptions(), extra...)...)
	s.Register(g)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	synced := make(chan struct{})
	go func() { s.Run(ctx); close(synced) }() //nolint:errcheck // nil when ctx ends
	served := make(chan error, 1)
	go func() { served <- g.Serve(l) }()
	var err error
	select {
	case <-ctx.Done():
	case err = <-served:
	}
	cancel()
	<-synced // Run has returned: every stream is ending
	g.GracefulStop()
	return err
}
