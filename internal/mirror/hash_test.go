package mirror

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestHashCacheReuse(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, fixtureFiles())
	cachePath := filepath.Join(dir, ".mirror-cache.json")

	f1 := serveDir(t, dir, Options{})
	if n := f1.srv.hashes.computed.Load(); n != 0 {
		t.Fatalf("New hashed %d files; hashing must be lazy", n)
	}
	main1, v1 := f1.commit(t, "acme/tiny", "main", ""), f1.commit(t, "acme/tiny", "v1.0", "")
	if n := f1.srv.hashes.computed.Load(); n != 6 { // 4 in main, 2 in v1.0
		t.Errorf("hashed %d files, want 6", n)
	}
	f1.commit(t, "acme/tiny", "main", "")
	if n := f1.srv.hashes.computed.Load(); n != 6 {
		t.Errorf("second request rehashed: %d hashes", n)
	}
	var cf cacheFile
	b, err := os.ReadFile(cachePath)
	if err != nil {
		t.Fatalf("cache file not written: %v", err)
	}
	if err := json.Unmarshal(b, &cf); err != nil {
		t.Fatal(err)
	}
	if got := cf.Files["hf/acme/tiny/model.safetensors"]; got.SHA256 != sha256hex(bigWeights) || got.Size != int64(len(bigWeights)) {
		t.Errorf("cache entry %+v", got)
	}

	// A restart reuses the cache: no hashing, same commits.
	f2 := serveDir(t, dir, Options{})
	if got := []string{f2.commit(t, "acme/tiny", "main", ""), f2.commit(t, "acme/tiny", "v1.0", "")}; !cmp.Equal(got, []string{main1, v1}) {
		t.Errorf("commits after restart %v, want %v", got, []string{main1, v1})
	}
	if n := f2.srv.hashes.computed.Load(); n != 0 {
		t.Errorf("restart rehashed %d files", n)
	}

	// A changed file (same size, new mtime) is rehashed, alone.
	p := filepath.Join(dir, "hf/acme/tiny/hello.txt")
	if err := os.WriteFile(p, []byte("HELLO\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(p, later, later); err != nil {
		t.Fatal(err)
	}
	if c := f2.commit(t, "acme/tiny", "main", ""); c == main1 {
		t.Error("commit unchanged after a file changed")
	}
	if n := f2.srv.hashes.computed.Load(); n != 1 {
		t.Errorf("rehashed %d files, want 1", n)
	}

	// A corrupt cache file only costs a rehash.
	if err := os.WriteFile(cachePath, []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	f3 := serveDir(t, dir, Options{})
	if c := f3.commit(t, "acme/tiny", "v1.0", ""); c != v1 {
		t.Errorf("commit %s, want %s", c, v1)
	}
}

func TestHashAll(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, fixtureFiles())
	writeTree(t, dir, map[string][]byte{"hf/gone/repo/x.txt": helloTxt})
	srv, err := New(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	st, err := srv.Hash(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// tiny: main 4 + v1.0 2 + old 1; secret 2; gated 1; private-any 1; gone 1.
	want := HashStats{Repos: 5, Revisions: 7, Files: 12, Hashed: 12}
	st.Bytes = 0
	if diff := cmp.Diff(want, st); diff != "" {
		t.Errorf("(-want +got)\n%s", diff)
	}
	// Hash forgets files that are gone.
	if err := os.RemoveAll(filepath.Join(dir, "hf/gone")); err != nil {
		t.Fatal(err)
	}
	if st, err = srv.Hash(context.Background()); err != nil || st.Hashed != 0 || st.Files != 11 {
		t.Errorf("second Hash: %+v %v", st, err)
	}
	var cf cacheFile
	b, _ := os.ReadFile(filepath.Join(dir, ".mirror-cache.json"))
	json.Unmarshal(b, &cf)
	if _, ok := cf.Files["hf/gone/repo/x.txt"]; ok || len(cf.Files) != 11 {
		t.Errorf("cache holds %d entries (gone: %v), want 11", len(cf.Files), ok)
	}
}

// gitTrees gives the ids git write-tree gives (git sorts a directory "a" as
// "a/", after "a-b" and "a.txt", before "a0").
func TestGitTrees(t *testing.T) {
	var files []*entry
	for p, content := range map[string]string{"a-b": "1", "a.txt": "2", "a/x": "3", "a/b/y": "4", "a0": "5"} {
		files = append(files, &entry{path: p, size: 1, digests: digests{SHA1: gitBlob([]byte(content))}})
	}
	got := gitTrees([]string{"", "a", "a/b"}, files)
	want := map[string]string{ // git write-tree; git ls-tree -r -t
		"":    "9c146807ceabfd79a212cc18f23901028c3b728d",
		"a":   "e76b20c5cba86a4165e212a111b9a81d8bbc11eb",
		"a/b": "02a28185af93e42fe7a51bf747007680b20087a6",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got)\n%s", diff)
	}
}
