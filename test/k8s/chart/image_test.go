package chart

import (
	"bufio"
	"bytes"
	"debug/elf"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"citadel.dev/citadel/test/k8s"
)

// TestDockerfile checks what can be checked of the image without a container
// engine: the build stage's Go is go.mod's, and .dockerignore lets in every
// file that building cmd/citadel reads.
func TestDockerfile(t *testing.T) {
	root := k8s.RepoRoot(t)
	df, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	gomod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	want := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(gomod)
	got := regexp.MustCompile(`(?m)^ARG GO_VERSION=(\S+)$`).FindSubmatch(df)
	if want == nil || got == nil {
		t.Fatalf("no go directive in go.mod (%q) or no ARG GO_VERSION= line in the Dockerfile (%q)", want, got)
	}
	if string(got[1]) != string(want[1]) {
		t.Errorf("the Dockerfile builds with Go %s, go.mod says go %s: change ARG GO_VERSION", got[1], want[1])
	}
	if !bytes.Contains(df, []byte("FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build")) || !bytes.Contains(df, []byte("CGO_ENABLED=0")) ||
		!bytes.Contains(df, []byte("-X citadel.dev/citadel/internal/version.Version=")) {
		t.Error("the Dockerfile's build stage is not golang:${GO_VERSION} with CGO_ENABLED=0 and the version's -X flag")
	}

	// The build context: .dockerignore leaves out everything but the "!" lines.
	allowed := map[string]bool{}
	f, err := os.Open(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if p, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "!"); ok {
			allowed[p] = true
		}
	}
	cmd := exec.Command("go", "list", "-deps", "-json=Dir,GoFiles,EmbedFiles,Module", "./cmd/citadel")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	files := []string{"go.mod", "go.sum"}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p struct {
			Dir                 string
			GoFiles, EmbedFiles []string
			Module              *struct{ Path string }
		}
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if p.Module == nil || p.Module.Path != "citadel.dev/citadel" {
			continue
		}
		for _, name := range append(p.GoFiles, p.EmbedFiles...) {
			rel, err := filepath.Rel(root, filepath.Join(p.Dir, name))
			if err != nil {
				t.Fatal(err)
			}
			files = append(files, filepath.ToSlash(rel))
		}
	}
	missing := 0
	for _, f := range files {
		top, _, _ := strings.Cut(f, "/")
		if !allowed[top] && missing < 5 {
			t.Errorf(".dockerignore leaves out %s, which building cmd/citadel reads: add !%s", f, top)
			missing++
		}
	}
	t.Logf("%d files of cmd/citadel are in the build context", len(files))
}

// TestStaticBinary builds cmd/citadel as the Dockerfile does and checks that
// the binary runs on distroless/static: no dynamic loader, no shared
// libraries, and the version it was given.
func TestStaticBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds cmd/citadel without cgo: a full build the first time")
	}
	t.Parallel() // mostly waits on the compiler, as TestInstall waits on the API server
	bin := filepath.Join(t.TempDir(), "citadel")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w -X citadel.dev/citadel/internal/version.Version=v0.0.0-chart-test", "-o", bin, "./cmd/citadel")
	cmd.Dir = k8s.RepoRoot(t)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("CGO_ENABLED=0 go build ./cmd/citadel: %v\n%s", err, out)
	}
	ef, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer ef.Close()
	for _, p := range ef.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("the binary has a %v program header: it is dynamically linked and would not run on distroless/static", p.Type)
		}
	}
	if libs, _ := ef.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("the binary needs shared libraries %v", libs)
	}
	out, err := exec.Command(bin, "version", "--client").Output()
	if err != nil || !strings.Contains(string(out), "citadel v0.0.0-chart-test") {
		t.Errorf("citadel version --client: %q, %v; want the -X version", out, err)
	}

	t.Run("the chart's flags", func(t *testing.T) { checkFlags(t, bin) })
}

// checkFlags checks that every flag the chart passes to a citadel command is
// one that command has, by its --help.
func checkFlags(t *testing.T, bin string) {
	helm(t)
	help := map[string]string{}
	reported := map[string]bool{}
	checked := 0
	for _, set := range [][]string{nil, {"mirror.enabled=true", "gateway.namespace=team-a"}, {"agent.ollamaRegistry=registry.lan:5000"}} {
		r := render(t, set...)
		for _, o := range r.objs {
			if o.GetKind() != "Deployment" && o.GetKind() != "DaemonSet" {
				continue
			}
			containers, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
			for _, c := range containers {
				args, _, _ := unstructured.NestedStringSlice(c.(map[string]any), "args")
				i := 0
				for i < len(args) && !strings.HasPrefix(args[i], "-") {
					i++
				}
				cmd := strings.Join(args[:i], " ")
				if _, ok := help[cmd]; !ok {
					out, err := exec.Command(bin, append(args[:i:i], "--help")...).CombinedOutput()
					if err != nil {
						t.Errorf("%s/%s runs citadel %s: citadel %s --help: %v\n%s", o.GetKind(), o.GetName(), cmd, cmd, err, out)
					}
					help[cmd] = string(out)
				}
				for _, a := range args[i:] {
					name, _, _ := strings.Cut(a, "=")
					if !regexp.MustCompile(`(?m)^\s+(-\w, )?`+regexp.QuoteMeta(name)+`\b`).MatchString(help[cmd]) && !reported[cmd+" "+name] {
						reported[cmd+" "+name] = true
						t.Errorf("%s/%s passes %s, which citadel %s does not have (see citadel %s --help)", o.GetKind(), o.GetName(), name, cmd, cmd)
					}
					checked++
				}
			}
		}
	}
	t.Logf("%d flags of %d commands checked", checked, len(help))
}
