package cache

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestL1EvictsLeastRecentlyUsed(t *testing.T) {
	c := NewL1(2, 1000)
	a, b, d := Key{"a", 1}, Key{"b", 1}, Key{"d", 1}
	c.Put(a, []byte("A"))
	c.Put(b, []byte("B"))
	c.Get(a) // a is now newer than b
	c.Put(d, []byte("D"))
	if _, ok := c.Get(b); ok {
		t.Error("b survived; it was the least recently used")
	}
	if _, ok := c.Get(a); !ok {
		t.Error("a was evicted though used more recently than b")
	}
	entries, _, hits, misses := c.Stats()
	if entries != 2 || hits != 2 || misses != 1 {
		t.Errorf("entries=%d hits=%d misses=%d, want 2, 2, 1", entries, hits, misses)
	}
}

func TestL1BoundsBytes(t *testing.T) {
	c := NewL1(1000, 512*3) // R5: 512-byte entries
	for i := range 5 {
		c.Put(Key{"h", uint64(i)}, make([]byte, 512))
	}
	entries, size, _, _ := c.Stats()
	if entries != 3 || size != 1536 {
		t.Errorf("entries=%d bytes=%d, want 3 and 1536", entries, size)
	}
	c.Put(Key{"big", 1}, make([]byte, 2000))
	if _, ok := c.Get(Key{"big", 1}); ok {
		t.Error("a fragment over the byte bound was cached")
	}
	c.Put(Key{"h", 4}, make([]byte, 100)) // replacing an entry adjusts the byte count
	if _, size, _, _ := c.Stats(); size != 1536-512+100 {
		t.Errorf("bytes=%d after replacing an entry, want %d", size, 1536-512+100)
	}
}

func TestL2RoundTripAndCorruption(t *testing.T) {
	dir := t.TempDir()
	c, err := OpenL2(dir)
	if err != nil {
		t.Fatal(err)
	}
	k := Key{"h-17", 42}
	if _, err := c.Get(k); !errors.Is(err, ErrMiss) {
		t.Fatalf("empty cache: %v, want ErrMiss", err)
	}
	if err := c.Put(k, []byte("config")); err != nil {
		t.Fatal(err)
	}
	got, err := c.Get(k)
	if err != nil || !bytes.Equal(got, []byte("config")) {
		t.Fatalf("Get = %q, %v", got, err)
	}
	if v, ok := c.Latest("h-17"); !ok || v != 42 {
		t.Errorf("Latest = %d, %v; want 42", v, ok)
	}
	// Flip a byte of the stored file: the checksum catches it.
	p := filepath.Join(dir, "h-17", "42")
	data, _ := os.ReadFile(p)
	data[len(data)-1] ^= 0xff
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(k); !errors.Is(err, ErrCorrupt) {
		t.Errorf("corrupt file: %v, want ErrCorrupt", err)
	}
	if _, err := os.Stat(p); !os.IsNotExist(err) {
		t.Error("the corrupt file was left in place")
	}
	// A truncated file too.
	if err := os.WriteFile(p, []byte("short"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Get(k); !errors.Is(err, ErrCorrupt) {
		t.Errorf("truncated file: %v, want ErrCorrupt", err)
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "h-17"))
	for _, e := range entries {
		if e.Name() != "42" {
			t.Errorf("left a temporary file: %s", e.Name())
		}
	}
}

func TestL2RefusesPathEscapes(t *testing.T) {
	c, err := OpenL2(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, hunt := range []string{"", ".", "..", "../etc", "a/b", "a\x00b"} {
		if err := c.Put(Key{hunt, 1}, []byte("x")); err == nil {
			t.Errorf("Put accepted hunt id %q", hunt)
		}
	}
}
