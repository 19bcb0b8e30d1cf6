//go:build fdb

package store

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/apple/foundationdb/bindings/go/src/fdb"
	"github.com/apple/foundationdb/bindings/go/src/fdb/subspace"
	"github.com/apple/foundationdb/bindings/go/src/fdb/tuple"
)

// fdbAPIVersion is the client API this store is written for (7.3).
const fdbAPIVersion = 730

// FDBValueLimit is the largest value FoundationDB stores; a hunt's
// record (its labels and fragment) must fit in one.
const FDBValueLimit = 100_000

// fdbLogRetention is how long the change log keeps an entry. A Sync
// caller that falls further behind is told to Sync again.
const fdbLogRetention = 10 * time.Minute

// fdbVersionsPerSecond is how fast FoundationDB's commit versions advance.
const fdbVersionsPerSecond = 1_000_000

// FDB keeps hunts in FoundationDB (R4): linearizable reads, no leader
// election in the read path, and many replicas on one store. Built only
// with the build tag fdb, since it needs the FoundationDB C client.
//
// Layout under the prefix: hunts/<id> holds a 10-byte versionstamp (the
// commit version of its last write, which is the hunt's version) then the
// record; log/<versionstamp> holds the id of each write, in commit order,
// with a deleted flag; change is bumped by every write, so that a Sync
// waits on one watch instead of polling.
type FDB struct {
	db      fdb.Database
	hunts   subspace.Subspace
	log     subspace.Subspace
	change  fdb.Key
	trimmed fdb.Key // commit version below which the log has been cleared
}

var _ Store = (*FDB)(nil)

// OpenFDB connects to the cluster named by clusterFile ("" for the
// default) and keeps hunts under prefix.
func OpenFDB(clusterFile, prefix string) (*FDB, error) {
	if err := fdb.APIVersion(fdbAPIVersion); err != nil {
		return nil, fmt.Errorf("store: FoundationDB client API %d: %w", fdbAPIVersion, err)
	}
	db, err := fdb.OpenDatabase(clusterFile)
	if err != nil {
		return nil, fmt.Errorf("store: opening FoundationDB cluster %q: %w", clusterFile, err)
	}
	root := subspace.Sub(prefix)
	return &FDB{
		db:      db,
		hunts:   root.Sub("hunts"),
		log:     root.Sub("log"),
		change:  root.Pack(tuple.Tuple{"change"}),
		trimmed: root.Pack(tuple.Tuple{"trimmed"}),
	}, nil
}

// stamped is a value for SetVersionstampedValue: a 10-byte placeholder
// the commit fills in, then data, then the placeholder's offset.
func stamped(data []byte) []byte {
	v := make([]byte, 10, 10+len(data)+4)
	v = append(v, data...)
	return binary.LittleEndian.AppendUint32(v, 0)
}

// commitVersion reads the commit version out of a versionstamp.
func commitVersion(stamp []byte) uint64 { return binary.BigEndian.Uint64(stamp[:8]) }

func (f *FDB) transact(ctx context.Context, op string, fn func(fdb.Transaction) (any, error)) (any, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out, err := f.db.Transact(func(tr fdb.Transaction) (any, error) {
		if deadline, ok := ctx.Deadline(); ok {
			if err := tr.Options().SetTimeout(max(1, time.Until(deadline).Milliseconds())); err != nil {
				return nil, err
			}
		}
		return fn(tr)
	})
	var fe fdb.Error
	if errors.As(err, &fe) {
		return nil, fmt.Errorf("store: %s: %w: %v", op, ErrUnavailable, err)
	}
	return out, err
}

// appendLog records a write of id in the change log, bumps the change
// key, and clears log entries past their retention.
func (f *FDB) appendLog(tr fdb.Transaction, id string, deleted bool) error {
	key, err := f.log.PackWithVersionstamp(tuple.Tuple{tuple.IncompleteVersionstamp(0)})
	if err != nil {
		return err
	}
	entry, err := json.Marshal(fdbLogEntry{ID: id, Deleted: deleted})
	if err != nil {
		return err
	}
	tr.SetVersionstampedKey(key, entry)
	tr.Add(f.change, binary.LittleEndian.AppendUint64(nil, 1))
	rv, err := tr.GetReadVersion().Get()
	if err != nil {
		return err
	}
	if cut := rv - int64(fdbLogRetention.Seconds()*fdbVersionsPerSecond); cut > 0 {
		begin, _ := f.log.FDBRangeKeys()
		tr.ClearRange(fdb.KeyRange{Begin: begin, End: f.logKeyAfter(uint64(cut))})
		tr.Max(f.trimmed, binary.LittleEndian.AppendUint64(nil, uint64(cut)))
	}
	return nil
}

type fdbLogEntry struct {
	ID      string `json:"id"`
	Deleted bool   `json:"deleted,omitempty"`
}

// logKeyAfter is the first log key of a commit after version v.
func (f *FDB) logKeyAfter(v uint64) fdb.Key {
	var vs tuple.Versionstamp
	binary.BigEndian.PutUint64(vs.TransactionVersion[:8], v)
	vs.TransactionVersion[8], vs.TransactionVersion[9] = 0xff, 0xff
	vs.UserVersion = 0xffff
	return f.log.Pack(tuple.Tuple{vs})
}

func (f *FDB) Put(ctx context.Context, id string, labels map[string]string, fragment []byte) (uint64, error) {
	labels, err := ValidateHunt(id, labels)
	if err != nil {
		return 0, err
	}
	data, err := json.Marshal(record{Labels: labels, Fragment: fragment})
	if err != nil {
		return 0, err
	}
	if len(data)+10 > FDBValueLimit {
		return 0, fmt.Errorf("store: hunt %s: its record is %d bytes, over FoundationDB's %d-byte value limit", id, len(data), FDBValueLimit)
	}
	out, err := f.transact(ctx, "putting hunt "+id, func(tr fdb.Transaction) (any, error) {
		tr.SetVersionstampedValue(f.hunts.Pack(tuple.Tuple{id}), stamped(data))
		if err := f.appendLog(tr, id, false); err != nil {
			return nil, err
		}
		return tr.GetVersionstamp(), nil
	})
	if err != nil {
		return 0, err
	}
	stamp, err := out.(fdb.FutureKey).Get()
	if err != nil {
		return 0, fmt.Errorf("store: putting hunt %s: %w: %v", id, ErrUnavailable, err)
	}
	return commitVersion(stamp), nil
}

func (f *FDB) Delete(ctx context.Context, id string) error {
	_, err := f.transact(ctx, "deleting hunt "+id, func(tr fdb.Transaction) (any, error) {
		key := f.hunts.Pack(tuple.Tuple{id})
		v, err := tr.Get(key).Get()
		if err != nil {
			return nil, err
		}
		if v == nil {
			return nil, fmt.Errorf("store: deleting hunt %s: %w", id, ErrNotFound)
		}
		tr.Clear(key)
		return nil, f.appendLog(tr, id, true)
	})
	return err
}

func (f *FDB) Get(ctx context.Context, id string) (Hunt, error) {
	out, err := f.transact(ctx, "getting hunt "+id, func(tr fdb.Transaction) (any, error) {
		return tr.Get(f.hunts.Pack(tuple.Tuple{id})).Get()
	})
	if err != nil {
		return Hunt{}, err
	}
	v := out.([]byte)
	if v == nil {
		return Hunt{}, fmt.Errorf("store: getting hunt %s: %w", id, ErrNotFound)
	}
	return decodeFDB(id, v)
}

func decodeFDB(id string, v []byte) (Hunt, error) {
	if len(v) < 10 {
		return Hunt{}, fmt.Errorf("store: hunt %s is corrupt: %d bytes", id, len(v))
	}
	var r record
	if err := json.Unmarshal(v[10:], &r); err != nil {
		return Hunt{}, fmt.Errorf("store: hunt %s is corrupt: %w", id, err)
	}
	return Hunt{ID: id, Labels: r.Labels, Fragment: r.Fragment, Version: commitVersion(v)}, nil
}

// Sync reads every hunt at one read version, then follows the change log
// from that version: each entry is sent with the hunt as it is when the
// entry is read, which may be newer than the entry (a later entry then
// repeats it, at the same version). Between reads it waits on a watch of
// the change key.
func (f *FDB) Sync(ctx context.Context) ([]Hunt, <-chan Event, error) {
	type snapshot struct {
		hunts []Hunt
		rv    int64
	}
	out, err := f.transact(ctx, "listing hunts", func(tr fdb.Transaction) (any, error) {
		rv, err := tr.GetReadVersion().Get()
		if err != nil {
			return nil, err
		}
		kvs, err := tr.GetRange(f.hunts, fdb.RangeOptions{}).GetSliceWithError()
		if err != nil {
			return nil, err
		}
		s := snapshot{rv: rv}
		for _, kv := range kvs {
			t, err := f.hunts.Unpack(kv.Key)
			if err != nil || len(t) != 1 {
				return nil, fmt.Errorf("store: a hunt key is corrupt: %q", kv.Key)
			}
			id, _ := t[0].(string)
			h, err := decodeFDB(id, kv.Value)
			if err != nil {
				return nil, err
			}
			s.hunts = append(s.hunts, h)
		}
		return s, nil
	})
	if err != nil {
		return nil, nil, err
	}
	snap := out.(snapshot)
	events := make(chan Event, subscriberBuffer)
	go f.follow(ctx, f.logKeyAfter(uint64(snap.rv)), uint64(snap.rv), events)
	return snap.hunts, events, nil
}

// follow sends every log entry from cursor on until ctx ends, or until
// the log has been trimmed past cursor (the caller must Sync again).
func (f *FDB) follow(ctx context.Context, cursor fdb.Key, seen uint64, events chan<- Event) {
	defer close(events)
	_, end := f.log.FDBRangeKeys()
	for ctx.Err() == nil {
		type batch struct {
			events []Event
			next   fdb.Key
			seen   uint64 // commit version of the last entry read
			watch  fdb.FutureNil
			lost   bool
		}
		out, err := f.transact(ctx, "following the change log", func(tr fdb.Transaction) (any, error) {
			b := batch{next: cursor, seen: seen}
			trimmed, err := tr.Get(f.trimmed).Get()
			if err != nil {
				return nil, err
			}
			if len(trimmed) == 8 && binary.LittleEndian.Uint64(trimmed) > seen {
				b.lost = true
				return b, nil
			}
			kvs, err := tr.GetRange(fdb.KeyRange{Begin: cursor, End: end}, fdb.RangeOptions{Limit: 1000}).GetSliceWithError()
			if err != nil {
				return nil, err
			}
			for _, kv := range kvs {
				t, err := f.log.Unpack(kv.Key)
				if err != nil || len(t) != 1 {
					return nil, fmt.Errorf("store: a log key is corrupt: %q", kv.Key)
				}
				vs, _ := t[0].(tuple.Versionstamp)
				var entry fdbLogEntry
				if err := json.Unmarshal(kv.Value, &entry); err != nil {
					return nil, fmt.Errorf("store: a log entry is corrupt: %w", err)
				}
				ev := Event{Hunt: Hunt{ID: entry.ID, Version: commitVersion(vs.TransactionVersion[:])}, Deleted: true}
				if v, err := tr.Get(f.hunts.Pack(tuple.Tuple{entry.ID})).Get(); err != nil {
					return nil, err
				} else if v != nil {
					if ev.Hunt, err = decodeFDB(entry.ID, v); err != nil {
						return nil, err
					}
					ev.Deleted = false
				}
				b.events = append(b.events, ev)
				b.next = append(fdb.Key{}, append(kv.Key, 0)...)
				b.seen = commitVersion(vs.TransactionVersion[:])
			}
			if len(kvs) == 0 {
				b.watch = tr.Watch(f.change)
			}
			return b, nil
		})
		if err != nil {
			select { // the store is away: try again, without a gap
			case <-time.After(time.Second):
				continue
			case <-ctx.Done():
				return
			}
		}
		b := out.(batch)
		if b.lost {
			return
		}
		for _, ev := range b.events {
			select {
			case events <- ev:
			case <-ctx.Done():
				return
			}
		}
		cursor, seen = b.next, b.seen
		if b.watch != nil {
			stop := context.AfterFunc(ctx, b.watch.Cancel)
			_ = b.watch.Get() // fires on the next write, or on cancel
			stop()
		}
	}
}

// Ping gets a read version, which needs the cluster's proxies and a
// quorum of its coordinators.
func (f *FDB) Ping(ctx context.Context) error {
	_, err := f.transact(ctx, "pinging FoundationDB", func(tr fdb.Transaction) (any, error) {
		return tr.GetReadVersion().Get()
	})
	return err
}

func (f *FDB) Close() error {
	f.db.Close()
	return nil
}
