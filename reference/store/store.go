package store

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// Hunt is one hunt instance's whole config.
type Hunt struct {
	ID       string
	Labels   map[string]string // what selectors match; always includes HuntLabel=ID
	Fragment []byte
	Version  uint64 // changes only when the hunt is written; never goes backwards
}

// HuntLabel is the label every hunt carries, set to its ID, so that a pod
// selects its hunt with "hunt=<id>" (R1).
const HuntLabel = "hunt"

// Event is one change after a Sync's snapshot.
type Event struct {
	Hunt    Hunt // for a deletion, only ID and Version are set
	Deleted bool
}

// Store holds hunts. Implementations are safe for concurrent use.
type Store interface {
	// Put replaces a hunt's labels and fragment atomically and returns its
	// new version.
	Put(ctx context.Context, id string, labels map[string]string, fragment []byte) (uint64, error)
	// Delete removes a hunt; ErrNotFound if there is none.
	Delete(ctx context.Context, id string) error
	// Get returns one hunt; ErrNotFound if there is none.
	Get(ctx context.Context, id string) (Hunt, error)
	// Sync returns every hunt, then streams every change made after that
	// snapshot until ctx ends. Through a store outage the stream waits and
	// resumes without a gap. The channel closes when ctx ends or the
	// stream cannot resume (the caller fell too far behind, or etcd
	// compacted past it); the caller then Syncs again.
	Sync(ctx context.Context) ([]Hunt, <-chan Event, error)
	// Ping reports whether the store can serve a linearizable read now:
	// nil, or an error wrapping ErrUnavailable. Replicas use it to tell
	// their clients and operators that they are cut off.
	Ping(ctx context.Context) error
	// Close releases the store.
	Close() error
}

// Sentinel errors. Test with errors.Is.
var (
	// ErrNotFound: no hunt has that ID.
	ErrNotFound = errors.New("store: hunt not found")
	// ErrUnavailable: the store cannot be reached; the caller may retry.
	ErrUnavailable = errors.New("store: unavailable")
	// ErrInUse: OpenBolt's file is locked by another process, which must
	// stop first (bbolt allows one process a file).
	ErrInUse = errors.New("store: database in use")
	// ErrNoHuntID: a hunt was written without its id.
	ErrNoHuntID = errors.New("store: a hunt id is required (a label value such as h-17)")
)

// ValidateHunt checks what a hunt's ID and labels must be: Kubernetes
// label syntax, since selectors match them. It returns the labels with
// HuntLabel set.
func ValidateHunt(id string, labels map[string]string) (map[string]string, error) {
	if id == "" {
		return nil, ErrNoHuntID
	}
	if msgs := validation.IsValidLabelValue(id); len(msgs) > 0 {
		return nil, fmt.Errorf("store: hunt id %q is not a valid label value: %s", id, strings.Join(msgs, "; "))
	}
	out := make(map[string]string, len(labels)+1)
	for k, v := range labels {
		if msgs := validation.IsQualifiedName(k); len(msgs) > 0 {
			return nil, fmt.Errorf("store: label key %q: %s", k, strings.Join(msgs, "; "))
		}
		if msgs := validation.IsValidLabelValue(v); len(msgs) > 0 {
			return nil, fmt.Errorf("store: label %s=%q: %s", k, v, strings.Join(msgs, "; "))
		}
		out[k] = v
	}
	if v, ok := out[HuntLabel]; ok && v != id {
		return nil, fmt.Errorf("store: label %s=%q contradicts the hunt id %q", HuntLabel, v, id)
	}
	out[HuntLabel] = id
	return out, nil
}
