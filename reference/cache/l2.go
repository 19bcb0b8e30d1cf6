package cache

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Sentinel errors of L2.Get. Test with errors.Is.
var (
	// ErrMiss: L2 holds no fragment for that key.
	ErrMiss = errors.New("cache: miss")
	// ErrCorrupt: the file for that key failed its checksum and was removed.
	ErrCorrupt = errors.New("cache: corrupt entry")
)

// L2 is a node-local directory of fragments, one file per hunt version:
// <dir>/<hunt>/<version>. Each file is a SHA-256 of the fragment followed
// by the fragment. Safe for concurrent use by several processes: writes
// land by rename, so a reader sees a whole file or none.
type L2 struct {
	dir string
}

// OpenL2 uses dir, creating it if needed.
func OpenL2(dir string) (*L2, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	return &L2{dir: dir}, nil
}

func (c *L2) path(k Key) (string, error) {
	// Hunt ids are label values: letters, digits, '-', '_' and '.'. Refuse
	// anything that could leave the directory.
	if k.Hunt == "" || k.Hunt == "." || k.Hunt == ".." || strings.ContainsAny(k.Hunt, "/\\\x00") {
		return "", fmt.Errorf("cache: bad hunt id %q", k.Hunt)
	}
	return filepath.Join(c.dir, k.Hunt, strconv.FormatUint(k.Version, 10)), nil
}

// Put writes fragment for k atomically: a temporary file in the same
// directory, synced, then renamed over the final name.
func (c *L2) Put(k Key, fragment []byte) error {
	p, err := c.path(k)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(p), ".tmp-*")
	if err != nil {
		return fmt.Errorf("cache: %w", err)
	}
	sum := sha256.Sum256(fragment)
	_, werr := tmp.Write(append(sum[:], fragment...))
	if werr == nil {
		werr = tmp.Sync()
	}
	if err := errors.Join(werr, tmp.Close()); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("cache: writing %s: %w", p, err)
	}
	if err := os.Rename(tmp.Name(), p); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("cache: %w", err)
	}
	return nil
}

// Get returns the fragment for k. A file that fails its checksum is
// removed and reported as ErrCorrupt, so that the caller refetches.
func (c *L2) Get(k Key) ([]byte, error) {
	p, err := c.path(k)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrMiss
	}
	if err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	if len(data) < sha256.Size {
		os.Remove(p)
		return nil, fmt.Errorf("%w: %s is truncated", ErrCorrupt, p)
	}
	fragment := data[sha256.Size:]
	if sum := sha256.Sum256(fragment); !bytes.Equal(sum[:], data[:sha256.Size]) {
		os.Remove(p)
		return nil, fmt.Errorf("%w: %s fails its checksum", ErrCorrupt, p)
	}
	return fragment, nil
}

// Latest returns the newest version of hunt held, and whether there is one.
func (c *L2) Latest(hunt string) (uint64, bool) {
	if _, err := c.path(Key{Hunt: hunt}); err != nil {
		return 0, false
	}
	entries, err := os.ReadDir(filepath.Join(c.dir, hunt))
	if err != nil {
		return 0, false
	}
	var best uint64
	found := false
	for _, e := range entries {
		if v, err := strconv.ParseUint(e.Name(), 10, 64); err == nil && (!found || v > best) {
			best, found = v, true
		}
	}
	return best, found
}
