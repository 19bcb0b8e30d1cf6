package cache

import (
	"container/list"
	"sync"
)

// Key names one version of one hunt's fragment.
type Key struct {
	Hunt    string
	Version uint64
}

// L1 is an LRU of fragments bounded in entries and bytes. It is safe for
// concurrent use.
type L1 struct {
	mu                   sync.Mutex
	maxEntries, maxBytes int
	bytes                int
	order                *list.List // front = most recently used
	items                map[Key]*list.Element
	hits, misses         uint64
}

type l1Entry struct {
	key      Key
	fragment []byte
}

// NewL1 returns an empty LRU holding at most maxEntries fragments and
// maxBytes bytes of them. A fragment larger than maxBytes is never cached.
func NewL1(maxEntries, maxBytes int) *L1 {
	return &L1{maxEntries: maxEntries, maxBytes: maxBytes, order: list.New(), items: map[Key]*list.Element{}}
}

// Get returns the fragment for k and marks it used.
func (c *L1) Get(k Key) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[k]; ok {
		c.order.MoveToFront(el)
		c.hits++
		return el.Value.(*l1Entry).fragment, true
	}
	c.misses++
	return nil, false
}

// Put stores fragment under k, evicting the least recently used entries
// until both bounds hold.
func (c *L1) Put(k Key, fragment []byte) {
	if len(fragment) > c.maxBytes || c.maxEntries < 1 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[k]; ok {
		c.bytes -= len(el.Value.(*l1Entry).fragment)
		c.order.Remove(el)
		delete(c.items, k)
	}
	c.items[k] = c.order.PushFront(&l1Entry{key: k, fragment: fragment})
	c.bytes += len(fragment)
	for len(c.items) > c.maxEntries || c.bytes > c.maxBytes {
		oldest := c.order.Back()
		e := oldest.Value.(*l1Entry)
		c.order.Remove(oldest)
		delete(c.items, e.key)
		c.bytes -= len(e.fragment)
	}
}

// Stats returns the entries and bytes held, and the hits and misses so far.
func (c *L1) Stats() (entries, bytes int, hits, misses uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.items), c.bytes, c.hits, c.misses
}
