package sim

import (
	"strings"
	"testing"
)

func TestPrefixCache(t *testing.T) {
	doc := strings.Repeat("shared document words ", 40) // 120 words: 7 whole blocks
	c := newPrefixCache(100)
	if got := c.hit(doc + " question one"); got != 0 {
		t.Errorf("first prompt: %d cached tokens, want 0", got)
	}
	got := c.hit(doc + " question two")
	if want := countTokens(strings.Join(strings.Fields(doc)[:112], " ")); got != want {
		t.Errorf("same prefix: %d cached tokens, want the 7 shared blocks' %d", got, want)
	}
	if got := c.hit("different start " + doc); got != 0 {
		t.Errorf("a different first block shares no prefix: %d cached", got)
	}
	small := newPrefixCache(2)
	small.hit(doc)
	if got := small.hit(doc); got != 0 || len(small.index) > 2 {
		t.Errorf("with room for 2 blocks: %d cached tokens and %d kept; want the leading blocks evicted and at most 2 kept", got, len(small.index))
	}
	var off *prefixCache
	if got := off.hit(doc); got != 0 {
		t.Errorf("no cache: %d", got)
	}
}
