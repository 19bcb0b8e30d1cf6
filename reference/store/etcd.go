package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
)

// etcdPrefix is where hunts live in etcd: one key each.
const etcdPrefix = "/churnlab/hunts/"

// etcdTimeout bounds every etcd call but the watch, so that an outage is
// reported as ErrUnavailable instead of hanging.
const etcdTimeout = 5 * time.Second

// Etcd is the store several replicas share. A hunt's version is its key's
// mod revision: 64 bits, changed only by a write, increasing across all
// hunts.
type Etcd struct {
	client *clientv3.Client
}

var _ Store = (*Etcd)(nil)

// record is a hunt as the etcd and FoundationDB stores keep it; its
// version is the store's own (a mod revision, a commit version).
type record struct {
	Labels   map[string]string `json:"labels"`
	Fragment []byte            `json:"fragment"`
}

// OpenEtcd connects to the etcd cluster at endpoints.
func OpenEtcd(endpoints []string) (*Etcd, error) {
	c, err := clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: etcdTimeout,
		Logger:      zap.NewNop(),
		// gRPC's default reconnect backoff grows to two minutes; a replica
		// should notice within a second that its store is back.
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
			MinConnectTimeout: etcdTimeout,
		})},
	})
	if err != nil {
		return nil, fmt.Errorf("store: connecting to etcd %v: %w", endpoints, err)
	}
	return &Etcd{client: c}, nil
}

func unavailable(op string, err error) error {
	if errors.Is(err, context.Canceled) {
		return err
	}
	return fmt.Errorf("store: %s: %w: %v", op, ErrUnavailable, err)
}

func (e *Etcd) Put(ctx context.Context, id string, labels map[string]string, fragment []byte) (uint64, error) {
	labels, err := ValidateHunt(id, labels)
	if err != nil {
		return 0, err
	}
	data, err := json.Marshal(record{Labels: labels, Fragment: fragment})
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, etcdTimeout)
	defer cancel()
	resp, err := e.client.Put(ctx, etcdPrefix+id, string(data))
	if err != nil {
		return 0, unavailable("putting hunt "+id, err)
	}
	return uint64(resp.Header.Revision), nil
}

func (e *Etcd) Delete(ctx context.Context, id string) error {
	ctx, cancel := context.WithTimeout(ctx, etcdTimeout)
	defer cancel()
	resp, err := e.client.Delete(ctx, etcdPrefix+id)
	if err != nil {
		return unavailable("deleting hunt "+id, err)
	}
	if resp.Deleted == 0 {
		return fmt.Errorf("store: deleting hunt %s: %w", id, ErrNotFound)
	}
	return nil
}

func (e *Etcd) Get(ctx context.Context, id string) (Hunt, error) {
	ctx, cancel := context.WithTimeout(ctx, etcdTimeout)
	defer cancel()
	resp, err := e.client.Get(ctx, etcdPrefix+id)
	if err != nil {
		return Hunt{}, unavailable("getting hunt "+id, err)
	}
	if len(resp.Kvs) == 0 {
		return Hunt{}, fmt.Errorf("store: getting hunt %s: %w", id, ErrNotFound)
	}
	return decodeEtcd(resp.Kvs[0])
}

func (e *Etcd) Sync(ctx context.Context) ([]Hunt, <-chan Event, error) {
	getCtx, cancel := context.WithTimeout(ctx, etcdTimeout)
	resp, err := e.client.Get(getCtx, etcdPrefix, clientv3.WithPrefix())
	cancel()
	if err != nil {
		return nil, nil, unavailable("listing hunts", err)
	}
	hunts := make([]Hunt, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		h, err := decodeEtcd(kv)
		if err != nil {
			return nil, nil, err
		}
		hunts = append(hunts, h)
	}
	watchCtx, stopWatch := context.WithCancel(clientv3.WithRequireLeader(ctx))
	watch := e.client.Watch(watchCtx, etcdPrefix, clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision+1))
	events := make(chan Event, subscriberBuffer)
	go func() {
		defer close(events)
		defer stopWatch()
		for wr := range watch {
			if wr.Err() != nil {
				return // compacted, lost its leader, or canceled: the caller resyncs
			}
			for _, ev := range wr.Events {
				out, err := etcdEvent(ev)
				if err != nil {
					return
				}
				select {
				case events <- out:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return hunts, events, nil
}

// Ping reads one key linearizably, which needs a leader and a quorum.
func (e *Etcd) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, etcdTimeout)
	defer cancel()
	if _, err := e.client.Get(ctx, etcdPrefix, clientv3.WithCountOnly()); err != nil {
		return unavailable("pinging etcd", err)
	}
	return nil
}

func (e *Etcd) Close() error { return e.client.Close() }

func etcdEvent(ev *clientv3.Event) (Event, error) {
	if ev.Type == mvccpb.DELETE {
		return Event{Hunt: Hunt{ID: strings.TrimPrefix(string(ev.Kv.Key), etcdPrefix), Version: uint64(ev.Kv.ModRevision)}, Deleted: true}, nil
	}
	h, err := decodeEtcd(ev.Kv)
	return Event{Hunt: h}, err
}

func decodeEtcd(kv *mvccpb.KeyValue) (Hunt, error) {
	id := strings.TrimPrefix(string(kv.Key), etcdPrefix)
	var r record
	if err := json.Unmarshal(kv.Value, &r); err != nil {
		return Hunt{}, fmt.Errorf("store: hunt %s is corrupt: %w", id, err)
	}
	return Hunt{ID: id, Labels: r.Labels, Fragment: r.Fragment, Version: uint64(kv.ModRevision)}, nil
}
