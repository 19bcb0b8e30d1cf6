package server

import (
	"context"
	"errors"
	"sort"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/churnlab/churnlab/internal/ctxsleep"
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

type huntVersion struct {
	hunt    string
	version uint64
}

// Watch implements ConfigStream.Watch. The handler's own goroutine does
// everything: the catch-up, then every change from the shared backlog. A
// stream that stops reading blocks only itself; if it falls more than the
// backlog behind, it resyncs when it moves again, as a reconnect would,
// and loses nothing.
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
	release, err := s.admit.admit(ctx)
	if err != nil {
		s.metrics.shed.Inc()
		return err
	}
	caughtUp := false
	defer func() {
		if !caughtUp {
			release()
		}
	}()
	s.mu.Lock()
	if !s.synced {
		s.mu.Unlock()
		return status.Error(codes.Unavailable, "not synced with the config store yet; try another replica")
	}
	initial, cursor := s.matchingLocked(sel)
	s.mu.Unlock()
	s.metrics.streams.Inc()
	defer s.metrics.streams.Dec()

	sent := map[string]uint64{} // the newest version this caller has of each hunt
	for h, v := range req.GetKnownVersions() {
		sent[h] = v
	}
	if err := s.catchUp(ctx, stream, sent, initial); err != nil {
		return err
	}
	if err := s.send(stream, &pb.ConfigUpdate{Synced: true}); err != nil {
		return err
	}
	caughtUp = true
	release()
	var batch []*notice
	for {
		s.mu.Lock()
		switch {
		case cursor < s.first: // fell behind the backlog: resync
			initial, cursor = s.matchingLocked(sel)
			s.mu.Unlock()
			s.metrics.resyncs.Inc()
			if err := s.catchUp(ctx, stream, sent, initial); err != nil {
				return err
			}
			continue
		case cursor < s.next:
			batch = batch[:0]
			for ; cursor < s.next; cursor++ {
				batch = append(batch, s.backlog[cursor%uint64(len(s.backlog))])
			}
			s.mu.Unlock()
			for _, n := range batch {
				if n.concerns(sel) {
					if err := s.deliver(stream, sel, sent, n); err != nil {
						return err
					}
				}
			}
			continue
		}
		wake := s.wake
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil
		case <-s.shutdown:
			return status.Error(codes.Unavailable, "replica shutting down; reconnect to another")
		case <-wake:
		}
	}
}

// matchingLocked returns the hunts sel matches, by name, and the backlog
// position they are current as of. s.mu must be held.
func (s *Server) matchingLocked(sel labels.Selector) ([]huntVersion, uint64) {
	var out []huntVersion
	for id, h := range s.hunts {
		if sel.Matches(h.labels) {
			out = append(out, huntVersion{id, h.version})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].hunt < out[j].hunt })
	return out, s.next
}

// catchUp sends what the caller lacks of current (the hunts its selector
// matches), and a deletion for every hunt it has that is not among them.
func (s *Server) catchUp(ctx context.Context, stream pb.ConfigStream_WatchServer, sent map[string]uint64, current []huntVersion) error {
	matching := make(map[string]bool, len(current))
	for _, c := range current {
		matching[c.hunt] = true
		if sent[c.hunt] >= c.version {
			continue // the caller has it: nothing to send (R6)
		}
		if err := s.sendFragment(ctx, stream, sent, c.hunt, c.version); err != nil {
			return err
		}
	}
	var gone []string
	for h := range sent {
		if !matching[h] {
			gone = append(gone, h)
		}
	}
	sort.Strings(gone)
	for _, h := range gone { // hunts the caller has that are gone or no longer match
		if err := s.send(stream, &pb.ConfigUpdate{Hunt: h, Change: &pb.ConfigUpdate_Deleted{Deleted: true}}); err != nil {
			return err
		}
		delete(sent, h)
	}
	return nil
}

// deliver sends one notice, if the caller does not already have it: the
// new fragment if the hunt matches sel now, a deletion if it matched
// before but no longer does (or is gone).
func (s *Server) deliver(stream pb.ConfigStream_WatchServer, sel labels.Selector, sent map[string]uint64, n *notice) error {
	if !n.deleted && n.now != nil && sel.Matches(n.now) {
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
	if d := s.opts.InjectPushDelay; d > 0 && !ctxsleep.Sleep(stream.Context(), d) {
		return stream.Context().Err()
	}
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
