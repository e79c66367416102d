package sim

import (
	"container/list"
	"hash/fnv"
	"strings"
	"sync"
)

// prefixCache imitates automatic prefix caching (vLLM's default in V1, SGLang's radix cache):
// a prompt's leading blocks that an earlier prompt already computed are not prefilled again.
// A block is prefixBlockWords whitespace-separated words of the prompt text; its key hashes
// it together with every block before it, so only a shared prefix hits. Blocks are evicted
// least recently used beyond the KV cache's capacity.
type prefixCache struct {
	mu    sync.Mutex
	cap   int
	lru   *list.List // of uint64, most recent at the front
	index map[uint64]*list.Element
}

const prefixBlockWords = 16

func newPrefixCache(blocks int) *prefixCache {
	return &prefixCache{cap: max(blocks, 1), lru: list.New(), index: map[uint64]*list.Element{}}
}

// hit returns how many of text's prompt tokens are cached, and caches all of its blocks.
func (c *prefixCache) hit(text string) int {
	if c == nil {
		return 0
	}
	words := strings.Fields(text)
	c.mu.Lock()
	defer c.mu.Unlock()
	cached, prefix := 0, true
	h := fnv.New64a()
	for i := 0; i+prefixBlockWords <= len(words); i += prefixBlockWords {
		block := words[i : i+prefixBlockWords]
		for _, w := range block {
			h.Write([]byte(w))
			h.Write([]byte{0})
		}
		key := h.Sum64()
		if e, ok := c.index[key]; ok {
			c.lru.MoveToFront(e)
			if prefix {
				for _, w := range block {
					cached += countTokens(w)
				}
			}
			continue
		}
		prefix = false
		c.index[key] = c.lru.PushFront(key)
		if c.lru.Len() > c.cap {
			old := c.lru.Back()
			c.lru.Remove(old)
			delete(c.index, old.Value.(uint64))
		}
	}
	return cached
}

// reset forgets every cached block (vLLM's /reset_prefix_cache; a sleep discards the KV cache).
func (c *prefixCache) reset() {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lru.Init()
	clear(c.index)
}
