package server

import (
	"context"
	"errors"
	"sort"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/apimachinery/pkg/labels"

	pb "github.com/churnlab/churnlab/reference/proto"
	"github.com/churnlab/churnlab/reference/store"
)

// notice tells a watcher that a hunt changed. Labels before and after let
// the watcher see a hunt leave its selector. One notice goes to every
// watcher concerned, with the update already encoded for all of them.
type notice struct {
	hunt        string
	version     uint64
	deleted     bool
	now, before labels.Set // nil when the hunt did not exist on that side
	seenAt      time.Time
	update      *encodedUpdate // the new fragment; nil for a deletion
	removal     *encodedUpdate // the deletion a watcher gets if the hunt left its selector
}

// concerns reports whether a watcher with selector sel must hear of n: the
// hunt matches now, or matched before.
func (n *notice) concerns(sel labels.Selector) bool {
	return (n.now != nil && sel.Matches(n.now)) || (n.before != nil && sel.Matches(n.before))
}

// watcher is one Watch stream's registration with the server.
type watcher struct {
	selector labels.Selector
	initial  []huntVersion // what matched when it registered
	notices  chan *notice  // shared, read-only notices: 8 bytes a slot
	overflow chan struct{} // closed when notices was full: the stream is dropped
}

type huntVersion struct {
	hunt    string
	version uint64
}

// notify queues n without blocking; a full queue drops the stream (the
// documented slow-consumer policy). s.mu must be held.
func (w *watcher) notify(n *notice) {
	select {
	case w.notices <- n:
	default:
		select {
		case <-w.overflow:
		default:
			close(w.overflow)
		}
	}
}

// Watch implements ConfigStream.Watch.
func (s *Server) Watch(req *pb.WatchRequest, stream pb.ConfigStream_WatchServer) error {
	ctx := stream.Context()
	sel, err := labels.Parse(req.GetSelector())
	if err != nil {
		return status.Errorf(codes.InvalidArgument, "selector %q: %v", req.GetSelector(), err)
	}
	if req.GetSelector() == "" {
		return status.Error(codes.InvalidArgument, `empty selector; want e.g. "hunt=h-17"`)
	}
	if err := s.opts.Tokens.authorizeWatch(ctx, sel); err != nil {
		return err
	}

	// Register before taking the snapshot, under one lock, so that no
	// change falls between the two.
	w := &watcher{selector: sel, notices: make(chan *notice, s.opts.SendBuffer), overflow: make(chan struct{})}
	s.mu.Lock()
	if !s.synced {
		s.mu.Unlock()
		return status.Error(codes.Unavailable, "not synced with the config store yet; try another replica")
	}
	for id, h := range s.hunts {
		if sel.Matches(h.labels) {
			w.initial = append(w.initial, huntVersion{id, h.version})
		}
	}
	s.watchers[w] = struct{}{}
	s.mu.Unlock()
	s.metrics.streams.Inc()
	defer func() {
		s.mu.Lock()
		delete(s.watchers, w)
		s.mu.Unlock()
		s.metrics.streams.Dec()
	}()

	// Sending runs apart from this handler so that a stream stalled in
	// Send (the client stopped reading and flow control filled up) can
	// still be cut off: returning ends the RPC, which unblocks Send.
	sendDone := make(chan error, 1)
	go func() { sendDone <- s.sendLoop(ctx, stream, w, req) }()
	select {
	case err := <-sendDone:
		return err
	case <-s.shutdown:
		return status.Error(codes.Unavailable, "replica shutting down; reconnect to another")
	case <-w.overflow:
		s.metrics.dropped.Inc()
		return status.Errorf(codes.ResourceExhausted,
			"stream fell %d updates behind; reconnect with your known versions", s.opts.SendBuffer)
	}
}

// sendLoop sends the catch-up, the synced marker, then every change.
func (s *Server) sendLoop(ctx context.Context, stream pb.ConfigStream_WatchServer, w *watcher, req *pb.WatchRequest) error {
	sent := map[string]uint64{} // the newest version this caller has of each hunt
	for h, v := range req.GetKnownVersions() {
		sent[h] = v
	}
	initial := w.initial
	sort.Slice(initial, func(i, j int) bool { return initial[i].hunt < initial[j].hunt })
	matching := make(map[string]bool, len(initial))
	for _, c := range initial {
		matching[c.hunt] = true
		if sent[c.hunt] >= c.version {
			continue // the caller has it: nothing to send (R6)
		}
		if err := s.sendFragment(ctx, stream, sent, c.hunt, c.version); err != nil {
			return err
		}
	}
	known := make([]string, 0, len(req.GetKnownVersions()))
	for h := range req.GetKnownVersions() {
		if !matching[h] {
			known = append(known, h)
		}
	}
	sort.Strings(known)
	for _, h := range known { // known hunts that are gone or no longer match
		if err := s.send(stream, &pb.ConfigUpdate{Hunt: h, Change: &pb.ConfigUpdate_Deleted{Deleted: true}}); err != nil {
			return err
		}
		delete(sent, h)
	}
	if err := s.send(stream, &pb.ConfigUpdate{Synced: true}); err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case n := <-w.notices:
			if err := s.deliver(ctx, stream, w, sent, n); err != nil {
				return err
			}
		}
	}
}

// deliver sends one notice, if the caller does not already have it: the
// new fragment if the hunt matches w's selector now, a deletion if it
// matched before but no longer does (or is gone).
func (s *Server) deliver(ctx context.Context, stream pb.ConfigStream_WatchServer, w *watcher, sent map[string]uint64, n *notice) error {
	if !n.deleted && n.now != nil && w.selector.Matches(n.now) {
		if sent[n.hunt] >= n.version {
			return nil
		}
		sent[n.hunt] = n.version
		return s.sendEncoded(stream, n.update, n.seenAt)
	}
	if _, had := sent[n.hunt]; !had {
		return nil
	}
	delete(sent, n.hunt)
	return s.sendEncoded(stream, n.removal, n.seenAt)
}

// sendFragment sends hunt at version (or newer) during the catch-up.
func (s *Server) sendFragment(ctx context.Context, stream pb.ConfigStream_WatchServer, sent map[string]uint64, hunt string, version uint64) error {
	fragment, v, err := s.fragment(ctx, hunt, version)
	if errors.Is(err, store.ErrNotFound) {
		return nil // deleted meanwhile; its deletion notice follows
	}
	if err != nil {
		return status.Errorf(codes.Unavailable, "reading hunt %s: %v", hunt, err)
	}
	if sent[hunt] >= v {
		return nil
	}
	sent[hunt] = v
	return s.send(stream, &pb.ConfigUpdate{Hunt: hunt, Version: v, Change: &pb.ConfigUpdate_Fragment{Fragment: fragment}})
}

// send encodes and sends one update of the catch-up, which has no
// propagation delay to observe.
func (s *Server) send(stream pb.ConfigStream_WatchServer, u *pb.ConfigUpdate) error {
	e, err := encodeUpdate(u)
	if err != nil {
		return status.Errorf(codes.Internal, "encoding update: %v", err)
	}
	return s.sendEncoded(stream, e, time.Time{})
}

func (s *Server) sendEncoded(stream pb.ConfigStream_WatchServer, e *encodedUpdate, seenAt time.Time) error {
	if err := stream.SendMsg(e); err != nil {
		return err
	}
	s.metrics.pushes.Inc()
	s.metrics.bytesSent.Add(float64(e.fragmentBytes))
	if !seenAt.IsZero() {
		s.metrics.propagation.Observe(s.opts.Now().Sub(seenAt).Seconds())
	}
	return nil
}
