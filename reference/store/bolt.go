package store

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

var (
	huntsBucket = []byte("hunts")
	metaBucket  = []byte("meta")
	revisionKey = []byte("revision")
)

// subscriberBuffer is how many events a Sync caller may fall behind
// before its channel is closed and it must Sync again.
const subscriberBuffer = 4096

// Bolt is the embedded store: one file, one process. Versions come from a
// counter that every write increments in the same transaction.
type Bolt struct {
	db *bolt.DB

	mu          sync.Mutex // orders writes with their broadcast, and Sync's snapshot with its subscription
	subscribers map[chan Event]struct{}
}

var _ Store = (*Bolt)(nil)

type boltRecord struct {
	Labels   map[string]string `json:"labels"`
	Fragment []byte            `json:"fragment"`
	Version  uint64            `json:"version"`
}

// DefaultLockTimeout is how long OpenBolt waits for the file's lock
// before it gives up with ErrInUse.
const DefaultLockTimeout = time.Second

// BoltOption configures OpenBolt.
type BoltOption func(*boltOptions)

type boltOptions struct {
	lockTimeout time.Duration
}

// WithLockTimeout sets how long OpenBolt waits for another process to
// release the file (default DefaultLockTimeout). It must be above 0:
// bbolt would otherwise wait for ever.
func WithLockTimeout(d time.Duration) BoltOption {
	return func(o *boltOptions) { o.lockTimeout = d }
}

// OpenBolt opens (creating if needed) the store file at path. bbolt
// allows one process a file: when another holds it, OpenBolt waits the
// lock timeout and fails with an error wrapping ErrInUse that names the
// file, instead of waiting for ever.
func OpenBolt(path string, opts ...BoltOption) (*Bolt, error) {
	o := boltOptions{lockTimeout: DefaultLockTimeout}
	for _, opt := range opts {
		opt(&o)
	}
	if o.lockTimeout <= 0 {
		return nil, fmt.Errorf("store: opening %s: lock timeout must be above 0, got %s", path, o.lockTimeout)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: o.lockTimeout})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("%w: %s is locked by another process (another configd with the same data directory?); gave up waiting after %s", ErrInUse, path, o.lockTimeout)
	}
	if err != nil {
		return nil, fmt.Errorf("store: opening %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		if _, err := tx.CreateBucketIfNotExists(huntsBucket); err != nil {
			return err
		}
		_, err := tx.CreateBucketIfNotExists(metaBucket)
		return err
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("store: initializing %s: %w", path, err)
	}
	return &Bolt{db: db, subscribers: map[chan Event]struct{}{}}, nil
}

func (b *Bolt) Put(_ context.Context, id string, labels map[string]string, fragment []byte) (uint64, error) {
	labels, err := ValidateHunt(id, labels)
	if err != nil {
		return 0, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	var version uint64
	err = b.db.Update(func(tx *bolt.Tx) error {
		version = nextRevision(tx)
		data, err := json.Marshal(boltRecord{Labels: labels, Fragment: fragment, Version: version})
		if err != nil {
			return err
		}
		return tx.Bucket(huntsBucket).Put([]byte(id), data)
	})
	if err != nil {
		return 0, fmt.Errorf("store: putting hunt %s: %w", id, err)
	}
	b.broadcast(Event{Hunt: Hunt{ID: id, Labels: labels, Fragment: fragment, Version: version}})
	return version, nil
}

func (b *Bolt) Delete(_ context.Context, id string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	var version uint64
	err := b.db.Update(func(tx *bolt.Tx) error {
		bucket := tx.Bucket(huntsBucket)
		if bucket.Get([]byte(id)) == nil {
			return ErrNotFound
		}
		version = nextRevision(tx)
		return bucket.Delete([]byte(id))
	})
	if err != nil {
		return fmt.Errorf("store: deleting hunt %s: %w", id, err)
	}
	b.broadcast(Event{Hunt: Hunt{ID: id, Version: version}, Deleted: true})
	return nil
}

func (b *Bolt) Get(_ context.Context, id string) (Hunt, error) {
	var h Hunt
	err := b.db.View(func(tx *bolt.Tx) error {
		data := tx.Bucket(huntsBucket).Get([]byte(id))
		if data == nil {
			return ErrNotFound
		}
		var err error
		h, err = decodeBolt(id, data)
		return err
	})
	if err != nil {
		return Hunt{}, fmt.Errorf("store: getting hunt %s: %w", id, err)
	}
	return h, nil
}

func (b *Bolt) Sync(ctx context.Context) ([]Hunt, <-chan Event, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var hunts []Hunt
	err := b.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(huntsBucket).ForEach(func(k, v []byte) error {
			h, err := decodeBolt(string(k), v)
			hunts = append(hunts, h)
			return err
		})
	})
	if err != nil {
		return nil, nil, fmt.Errorf("store: reading hunts: %w", err)
	}
	ch := make(chan Event, subscriberBuffer)
	b.subscribers[ch] = struct{}{}
	context.AfterFunc(ctx, func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		if _, ok := b.subscribers[ch]; ok {
			delete(b.subscribers, ch)
			close(ch)
		}
	})
	return hunts, ch, nil
}

// broadcast sends e to every subscriber; one that is full is dropped (its
// channel closed) so that it resyncs instead of missing the event.
// b.mu must be held.
func (b *Bolt) broadcast(e Event) {
	for ch := range b.subscribers {
		select {
		case ch <- e:
		default:
			delete(b.subscribers, ch)
			close(ch)
		}
	}
}

func (b *Bolt) Close() error {
	b.mu.Lock()
	for ch := range b.subscribers {
		delete(b.subscribers, ch)
		close(ch)
	}
	b.mu.Unlock()
	return b.db.Close()
}

func nextRevision(tx *bolt.Tx) uint64 {
	meta := tx.Bucket(metaBucket)
	var rev uint64
	if v := meta.Get(revisionKey); len(v) == 8 {
		rev = binary.BigEndian.Uint64(v)
	}
	rev++
	var buf [8]byte
	binary.BigEndian.PutUint64(buf[:], rev)
	_ = meta.Put(revisionKey, buf[:]) // cannot fail inside a writable transaction on an existing bucket
	return rev
}

func decodeBolt(id string, data []byte) (Hunt, error) {
	var r boltRecord
	if err := json.Unmarshal(data, &r); err != nil {
		return Hunt{}, fmt.Errorf("store: hunt %s is corrupt: %w", id, err)
	}
	return Hunt{ID: id, Labels: r.Labels, Fragment: r.Fragment, Version: r.Version}, nil
}

// Ping always succeeds: the store is this process's own file.
func (b *Bolt) Ping(context.Context) error { return nil }
