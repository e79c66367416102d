package chart

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	yamlutil "k8s.io/apimachinery/pkg/util/yaml"

	"citadel.dev/citadel/test/k8s"
)

const helmHint = `build helm from its Go module (about 4 minutes once; then cached) and put it on PATH: PATH="$(hack/helm.sh):$PATH"`

// helm returns the path of the helm binary on PATH; without one it skips the
// test, or fails it when CITADEL_REQUIRE_HELM=1.
func helm(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("helm")
	if err != nil {
		if os.Getenv("CITADEL_REQUIRE_HELM") == "1" {
			t.Fatalf("CITADEL_REQUIRE_HELM=1 but helm is not on PATH: %s", helmHint)
		}
		t.Skipf("needs helm: %s", helmHint)
	}
	return p
}

// runHelm runs helm with its caches and configuration in a temporary
// directory, never the user's, and returns its standard output.
func runHelm(t testing.TB, env []string, args ...string) (string, error) {
	t.Helper()
	bin := helm(t)
	home := t.TempDir()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "HOME="+home, "HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"), "HELM_DATA_HOME="+filepath.Join(home, "data"))
	cmd.Env = append(cmd.Env, env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("helm %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

func chartDir(t testing.TB) string { return filepath.Join(k8s.RepoRoot(t), "charts", "citadel") }

// rendered is the output of helm template: the YAML and its objects.
type rendered struct {
	yaml []byte
	objs []*unstructured.Unstructured
}

// render runs helm template on the chart, in namespace citadel, with these
// --set values.
func render(t testing.TB, set ...string) rendered {
	t.Helper()
	args := []string{"template", "citadel", chartDir(t), "--namespace", "citadel"}
	for _, s := range set {
		args = append(args, "--set", s)
	}
	out, err := runHelm(t, nil, args...)
	if err != nil {
		t.Fatal(err)
	}
	r := rendered{yaml: []byte(out)}
	dec := yamlutil.NewYAMLOrJSONDecoder(strings.NewReader(out), 4096)
	for {
		var m map[string]any
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("helm template's output: %v", err)
		}
		if m != nil {
			r.objs = append(r.objs, &unstructured.Unstructured{Object: m})
		}
	}
	return r
}

// names lists the objects as Kind/name, sorted.
func (r rendered) names() []string {
	var s []string
	for _, o := range r.objs {
		s = append(s, o.GetKind()+"/"+o.GetName())
	}
	slices.Sort(s)
	return s
}

// get converts the object of this kind and name into out; it fails the test
// when there is none.
func (r rendered) get(t testing.TB, kind, name string, out any) {
	t.Helper()
	for _, o := range r.objs {
		if o.GetKind() == kind && o.GetName() == name {
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, out); err != nil {
				t.Fatalf("%s/%s: %v", kind, name, err)
			}
			return
		}
	}
	t.Fatalf("helm template rendered no %s/%s; it rendered %v", kind, name, r.names())
}

func (r rendered) has(kind, name string) bool {
	return slices.Contains(r.names(), kind+"/"+name)
}

func (r rendered) deployment(t testing.TB, name string) *appsv1.Deployment {
	t.Helper()
	var d appsv1.Deployment
	r.get(t, "Deployment", name, &d)
	return &d
}

func (r rendered) agent(t testing.TB) *appsv1.DaemonSet {
	t.Helper()
	var d appsv1.DaemonSet
	r.get(t, "DaemonSet", "citadel-agent", &d)
	return &d
}

// env is a container's environment as name=value, or name<-fieldPath for the
// downward API.
func env(c corev1.Container) map[string]string {
	m := map[string]string{}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom != nil && e.ValueFrom.FieldRef != nil:
			m[e.Name] = "<-" + e.ValueFrom.FieldRef.FieldPath
		default:
			m[e.Name] = e.Value
		}
	}
	return m
}

// flag returns the value of --name=value in args, and whether it is there.
func flag(args []string, name string) (string, bool) {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v, true
		}
		if a == "--"+name {
			return "true", true
		}
	}
	return "", false
}
