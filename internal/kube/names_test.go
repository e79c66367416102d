package kube

import (
	"strings"
	"testing"
	"unicode/utf8"

	v1 "citadel.dev/citadel/api/v1"
)

func TestModelLabel(t *testing.T) {
	for _, c := range []struct{ kind, ns, name, want string }{
		{v1.KindClusterBaseModel, "", "mimo-vl-7b-rl", "models.ome.io/clusterbasemodel.mimo-vl-7b-rl"},
		{v1.KindBaseModel, "team-a", "qwen3-4b", "models.ome.io/team-a.basemodel.qwen3-4b"},
	} {
		if got := ModelLabel(c.kind, c.ns, c.name); got != c.want {
			t.Errorf("ModelLabel(%s, %s, %s) = %s, want %s", c.kind, c.ns, c.name, got, c.want)
		}
	}
	long := strings.Repeat("a", 40) + "-tail"
	for _, l := range []string{ModelLabel(v1.KindClusterBaseModel, "", long), ModelLabel(v1.KindBaseModel, "a-very-long-namespace-name", long)} {
		name := l[strings.Index(l, "/")+1:]
		if len(name) > 49 || !strings.HasSuffix(name, "-tail") {
			t.Errorf("label %s: name part %d bytes (max 49), should keep the tail", l, len(name))
		}
	}
	if ModelLabel(v1.KindClusterBaseModel, "", long) == ModelLabel(v1.KindClusterBaseModel, "", "b"+long[1:]) {
		t.Error("two long names shortened to the same label")
	}
}

func TestEncodeDecode(t *testing.T) {
	m := &v1.ClusterBaseModel{}
	m.Kind, m.Name = v1.KindClusterBaseModel, "m"
	m.Status.Phase = "Ready"
	u, err := Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	if u.GetAPIVersion() != v1.OMEGroupVersion {
		t.Errorf("apiVersion %q", u.GetAPIVersion())
	}
	o, err := Decode(u)
	if err != nil {
		t.Fatal(err)
	}
	if got := o.(*v1.ClusterBaseModel); got.Name != "m" || got.Status.Phase != "Ready" {
		t.Errorf("round trip: %+v", got)
	}
}

func TestEngineName(t *testing.T) {
	if got := EngineName("mimo-vl-7b-rl"); got != "mimo-vl-7b-rl-engine" {
		t.Errorf("EngineName = %s", got)
	}
	long := strings.Repeat("qwen3-", 12) + "x"
	n := EngineName(long)
	if len(n) > 63 || !strings.HasPrefix(n, "qwen3-qwen3") || !strings.HasSuffix(n, "-engine") || n == EngineName(long+"y") {
		t.Errorf("EngineName(%d chars) = %s (%d): want at most 63, the name's head, unique", len(long), n, len(n))
	}
}

// An event's note fits the API server's 1 kB and stays valid UTF-8.
func TestEventNote(t *testing.T) {
	long := strings.Repeat("é", 600) // 1200 bytes
	n := EventNote(long)
	if len(n) > 1024 || !utf8.ValidString(n) || !strings.HasSuffix(n, "…") {
		t.Errorf("note of %d bytes: %d bytes, valid %v", len(long), len(n), utf8.ValidString(n))
	}
	if EventNote("short") != "short" {
		t.Error("a short note was changed")
	}
}
