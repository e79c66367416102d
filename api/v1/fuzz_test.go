package v1

import (
	"math"
	"path"
	"strings"
	"testing"
)

func FuzzParseStorageURI(f *testing.F) {
	for _, s := range []string{
		"hf://XiaomiMiMo/MiMo-VL-7B-RL", "hf://XiaomiMiMo/MiMo-VL-7B-RL@v1.1", "hf://gpt2", "hf://a/b/c", "hf://@",
		"ollama://qwen2.5:7b", "ollama://registry.example.com:5000/team/model:q4", "ollama://:", "ollama:///",
		"file:///srv/models/x", "local:///", "file://relative", "s3://bucket/x", "pvc://x", "s4://x", "://", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ParseStorageURI(s)
		if err != nil {
			if u != (StorageURI{}) {
				t.Errorf("ParseStorageURI(%q) returned %+v with error %v", s, u, err)
			}
			return
		}
		switch u.Scheme {
		case "hf":
			if u.Repo == "" || u.Revision == "" {
				t.Errorf("ParseStorageURI(%q) = %+v: empty repo or revision", s, u)
			}
			if n := strings.Count(u.Repo, "/"); n > 1 || strings.Contains(u.Repo, "..") {
				t.Errorf("ParseStorageURI(%q) = %+v: repo is not org/name", s, u)
			}
		case "ollama":
			if u.Name == "" || u.Tag == "" || strings.Count(u.Name, "/") != 1 {
				t.Errorf("ParseStorageURI(%q) = %+v: want namespace/name and a tag", s, u)
			}
		case "file", "local":
			if !path.IsAbs(u.Path) || path.Clean(u.Path) != u.Path {
				t.Errorf("ParseStorageURI(%q) = %+v: path is not clean and absolute", s, u)
			}
		default:
			t.Errorf("ParseStorageURI(%q) accepted scheme %q", s, u.Scheme)
		}
	})
}

func FuzzQuantity(f *testing.F) {
	for _, s := range []string{"10", "500m", "30Gi", "1.5G", "1e3", "-1e3", "30GB", "0x1p4", "NaN", ".5", "1E"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if v, err := Quantity(s).Value(); err == nil && (v < 0 || math.IsNaN(v) || math.IsInf(v, 0)) {
			t.Errorf("Quantity(%q).Value() = %v with no error", s, v)
		}
		if v, err := ParameterSize(s).Count(); err == nil && (v <= 0 || math.IsNaN(v) || math.IsInf(v, 0)) {
			t.Errorf("ParameterSize(%q).Count() = %v with no error", s, v)
		}
	})
}
