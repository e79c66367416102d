package modelstore

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestHFCacheLayout(t *testing.T) {
	c := HFCache{Root: t.TempDir()}
	const repo, commit = "XiaomiMiMo/MiMo-VL-7B-RL", "0123456789abcdef0123456789abcdef01234567"
	etag := "a7a17d6d844b5de815ccab5f42cad6d24496db3850a2a43d8258221018ce87d2"
	if got, want := c.RepoDir(repo), filepath.Join(c.Root, "models--XiaomiMiMo--MiMo-VL-7B-RL"); got != want {
		t.Fatalf("RepoDir = %s, want %s", got, want)
	}
	if err := os.MkdirAll(filepath.Dir(c.BlobPath(repo, etag)), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(c.BlobPath(repo, etag), []byte("weights"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"model.safetensors", "sub/dir/file.bin"} {
		if err := c.LinkSnapshot(repo, commit, p, etag); err != nil {
			t.Fatal(err)
		}
		link := filepath.Join(c.SnapshotDir(repo, commit), filepath.FromSlash(p))
		target, err := os.Readlink(link)
		if err != nil {
			t.Fatal(err)
		}
		if filepath.IsAbs(target) {
			t.Errorf("%s links to an absolute path %s; huggingface_hub uses relative links", p, target)
		}
		if b, err := os.ReadFile(link); err != nil || string(b) != "weights" {
			t.Errorf("%s does not resolve to the blob: %q %v", p, b, err)
		}
	}
	if err := c.WriteRef(repo, "main", commit); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(c.RepoDir(repo), "refs", "main"))
	if string(b) != commit {
		t.Errorf("refs/main = %q, want the commit without a newline", b)
	}
	if err := c.LinkSnapshot(repo, commit, "../escape", etag); err == nil {
		t.Error("a path leaving the snapshot was linked")
	}
	// storage.path view.
	view := filepath.Join(t.TempDir(), "model")
	if err := Materialize(view, c.SnapshotDir(repo, commit), []string{"model.safetensors", "sub/dir/file.bin"}); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(view, "sub", "dir", "file.bin")); err != nil || string(b) != "weights" {
		t.Errorf("view: %q %v", b, err)
	}
	if err := os.WriteFile(filepath.Join(view, "user-file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Materialize(view, c.SnapshotDir(repo, commit), []string{"user-file"}); err == nil {
		t.Error("a user's file was replaced by a link")
	}
}

func TestVerifyFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := os.WriteFile(p, []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	const sha256Hello = "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"
	const gitSHA1Hello = "ce013625030ba8dba906f756967f9e9ca394464a" // git hash-object of "hello\n"
	for _, tc := range []struct {
		etag    string
		size    int64
		wantErr error
	}{
		{sha256Hello, 6, nil},
		{gitSHA1Hello, 6, nil},
		{sha256Hello, 7, ErrChecksum},
		{"0" + sha256Hello[1:], 6, ErrChecksum},
	} {
		err := VerifyFile(p, tc.etag, tc.size)
		if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
			t.Errorf("VerifyFile(%s, %d) = %v, want %v", tc.etag, tc.size, err, tc.wantErr)
		}
	}
	if err := VerifyFile(p, "not-a-hash", 6); err == nil {
		t.Error("an unknown etag form verified")
	}
}
