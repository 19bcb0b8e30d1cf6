package store

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/churnlab/churnlab/experiments/controlplane"
)

// stores opens each implementation for a conformance test.
func stores(t *testing.T) map[string]Store {
	t.Helper()
	bolt, err := OpenBolt(filepath.Join(t.TempDir(), "configd.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bolt.Close() })
	out := map[string]Store{"bolt": bolt}
	if testing.Short() {
		return out
	}
	e := startEtcd(t)
	etcd, err := OpenEtcd([]string{e.Endpoint})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { etcd.Close() })
	out["etcd"] = etcd
	return out
}

func startEtcd(t *testing.T) *controlplane.Etcd {
	t.Helper()
	bin, err := controlplane.EnsureBuilt(context.Background(), os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	e, err := controlplane.StartEtcd(context.Background(), bin)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Stop)
	return e
}

func TestStoreConformance(t *testing.T) {
	ctx := context.Background()
	for name, s := range stores(t) {
		t.Run(name, func(t *testing.T) {
			v1, err := s.Put(ctx, "h-1", map[string]string{"region": "eu"}, []byte("one"))
			if err != nil {
				t.Fatal(err)
			}
			h, err := s.Get(ctx, "h-1")
			if err != nil {
				t.Fatal(err)
			}
			if h.Version != v1 || string(h.Fragment) != "one" || h.Labels["region"] != "eu" || h.Labels[HuntLabel] != "h-1" {
				t.Errorf("Get = %+v; want version %d, fragment one, labels region=eu and hunt=h-1", h, v1)
			}
			again, _ := s.Get(ctx, "h-1")
			if again.Version != v1 {
				t.Errorf("version changed from %d to %d without a write", v1, again.Version)
			}

			snapshot, events, err := s.Sync(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(snapshot) != 1 || snapshot[0].ID != "h-1" || snapshot[0].Version != v1 {
				t.Fatalf("snapshot %+v, want h-1 at %d", snapshot, v1)
			}
			v2, err := s.Put(ctx, "h-2", nil, []byte("two"))
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Delete(ctx, "h-1"); err != nil {
				t.Fatal(err)
			}
			got := []Event{next(t, events), next(t, events)}
			if got[0].Hunt.ID != "h-2" || got[0].Hunt.Version != v2 || got[0].Deleted || string(got[0].Hunt.Fragment) != "two" {
				t.Errorf("first event %+v, want h-2 put at %d", got[0], v2)
			}
			if got[1].Hunt.ID != "h-1" || !got[1].Deleted || got[1].Hunt.Version <= v2 {
				t.Errorf("second event %+v, want h-1 deleted after %d", got[1], v2)
			}
			if _, err := s.Get(ctx, "h-1"); !errors.Is(err, ErrNotFound) {
				t.Errorf("Get after Delete: %v, want ErrNotFound", err)
			}
			if err := s.Delete(ctx, "h-1"); !errors.Is(err, ErrNotFound) {
				t.Errorf("second Delete: %v, want ErrNotFound", err)
			}
			if _, err := s.Put(ctx, "Not A Hunt!", nil, nil); err == nil {
				t.Error("Put accepted an id that is not a label value")
			}
			if _, err := s.Put(ctx, "h-3", map[string]string{HuntLabel: "h-4"}, nil); err == nil {
				t.Error("Put accepted a hunt label that contradicts the id")
			}
		})
	}
}

func next(t *testing.T, events <-chan Event) Event {
	t.Helper()
	select {
	case e, ok := <-events:
		if !ok {
			t.Fatal("event channel closed")
		}
		return e
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10 s")
	}
	return Event{}
}

// TestEtcdOutage: with etcd gone, writes fail with ErrUnavailable; once it
// is back, the store works again and a Sync's watch resumes where it
// stopped, missing nothing.
func TestEtcdOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd")
	}
	ctx := context.Background()
	e := startEtcd(t)
	s, err := OpenEtcd([]string{e.Endpoint})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Put(ctx, "h-1", nil, []byte("x")); err != nil {
		t.Fatal(err)
	}
	_, events, err := s.Sync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	e.Kill()
	if _, err := s.Put(ctx, "h-1", nil, []byte("y")); !errors.Is(err, ErrUnavailable) {
		t.Errorf("Put with etcd down: %v, want ErrUnavailable", err)
	}
	if err := e.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	h, err := s.Get(ctx, "h-1")
	if err != nil || string(h.Fragment) != "x" {
		t.Errorf("after restart: %+v, %v; want the data written before", h, err)
	}
	v, err := s.Put(ctx, "h-1", nil, []byte("z"))
	if err != nil {
		t.Fatal(err)
	}
	if ev := next(t, events); ev.Hunt.Version != v || string(ev.Hunt.Fragment) != "z" {
		t.Errorf("watch after the restart delivered %+v, want h-1 at %d", ev, v)
	}
}

// TestOpenBoltInUse: a file another process (here, another open) holds
// fails at once with ErrInUse and names the file, instead of waiting on
// bbolt's lock for ever; bad options are refused.
func TestOpenBoltInUse(t *testing.T) {
	path := filepath.Join(t.TempDir(), "configd.db")
	first, err := OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	cases := []struct {
		name  string
		opts  []BoltOption
		is    error // nil: any error
		want  string
		under time.Duration
	}{
		// sad: the lock is held
		{"default timeout", nil, ErrInUse, path + " is locked by another process", DefaultLockTimeout + 5*time.Second},
		{"short timeout", []BoltOption{WithLockTimeout(50 * time.Millisecond)}, ErrInUse, "gave up waiting after 50ms", 5 * time.Second},
		// sad: a timeout of 0 would wait for ever
		{"zero timeout", []BoltOption{WithLockTimeout(0)}, nil, "lock timeout must be above 0", time.Second},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			start := time.Now()
			s, err := OpenBolt(path, c.opts...)
			if err == nil {
				s.Close()
				t.Fatal("opened a file another open holds")
			}
			if took := time.Since(start); took > c.under {
				t.Errorf("took %s, want under %s", took, c.under)
			}
			if (c.is != nil && !errors.Is(err, c.is)) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("err = %v; want %v saying %q", err, c.is, c.want)
			}
		})
	}
	// happy: once the holder closes, the file opens.
	first.Close()
	again, err := OpenBolt(path, WithLockTimeout(50*time.Millisecond))
	if err != nil {
		t.Fatalf("after the holder closed: %v", err)
	}
	again.Close()
}

// TestValidateHunt: what a hunt's id and labels must be, and what each
// mistake is told; no message prints an empty list ([]).
func TestValidateHunt(t *testing.T) {
	cases := []struct {
		name   string
		id     string
		labels map[string]string
		is     error
		want   string // "" for a valid hunt
	}{
		// happy
		{"plain", "h-17", nil, nil, ""},
		{"with labels", "h-17", map[string]string{"region": "eu", "example.com/tier": "gold"}, nil, ""},
		{"hunt label agrees", "h-17", map[string]string{HuntLabel: "h-17"}, nil, ""},
		// sad
		{"no id", "", nil, ErrNoHuntID, "a hunt id is required"},
		{"id with spaces", "no spaces please", nil, nil, `hunt id "no spaces please" is not a valid label value: a valid label must be`},
		{"bad label key", "h-1", map[string]string{"a b": "x"}, nil, `label key "a b": name part must consist of`},
		{"bad label value", "h-1", map[string]string{"region": "e u"}, nil, `label region="e u": a valid label must be`},
		{"hunt label contradicts", "h-1", map[string]string{HuntLabel: "h-2"}, nil, "contradicts the hunt id"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, err := ValidateHunt(c.id, c.labels)
			if c.want == "" {
				if err != nil || out[HuntLabel] != c.id {
					t.Errorf("ValidateHunt(%q, %v) = %v, %v; want the labels with hunt=%s", c.id, c.labels, out, err, c.id)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) || (c.is != nil && !errors.Is(err, c.is)) {
				t.Errorf("ValidateHunt(%q, %v) = %v; want an error saying %q", c.id, c.labels, err, c.want)
			}
			if err != nil && strings.Contains(err.Error(), "[]") {
				t.Errorf("%v prints an empty list instead of what is wrong", err)
			}
		})
	}
}
