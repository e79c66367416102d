package chart

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"citadel.dev/citadel/test/k8s"
)

// A permission: kubectl auth can-i VERB RESOURCE [--subresource S] [-n NS].
type perm struct {
	verb, resource, sub, ns, name string
}

func (p perm) String() string {
	s := p.verb + " " + p.resource
	if p.name != "" {
		s += "/" + p.name
	}
	if p.sub != "" {
		s += " --subresource=" + p.sub
	}
	if p.ns != "" {
		s += " -n " + p.ns
	}
	return s
}

// verbs expands to one perm per verb.
func verbs(vs, resource, sub, ns string) []perm {
	var ps []perm
	for _, v := range strings.Fields(vs) {
		ps = append(ps, perm{verb: v, resource: resource, sub: sub, ns: ns})
	}
	return ps
}

func join(pss ...[]perm) []perm {
	var all []perm
	for _, ps := range pss {
		all = append(all, ps...)
	}
	return all
}

// The release namespace, and another one (a team's, where InferenceServices,
// their engines and BaseModels live).
const (
	ns    = "citadel"
	other = "team-a"
)

// What each process does, from docs/design/0007-kubernetes.md's table
// "Processes", as the API server must allow it...
var allowed = map[string][]perm{
	"citadel-controller": join(
		verbs("get list watch patch", "clusterbasemodels.ome.io", "", ""),
		verbs("get list watch patch", "basemodels.ome.io", "", other),
		verbs("get update patch", "clusterbasemodels.ome.io", "status", ""),
		verbs("get update patch", "basemodels.ome.io", "status", other),
		verbs("get list watch", "clusterservingruntimes.ome.io", "", ""),
		verbs("get list watch", "servingruntimes.ome.io", "", other),
		verbs("get list watch", "inferenceservices.ome.io", "", other),
		verbs("get update patch", "inferenceservices.ome.io", "status", other),
		verbs("update", "inferenceservices.ome.io", "finalizers", other),
		verbs("get list watch", "routes.citadel.dev", "", other),
		verbs("get list watch create update patch delete", "deployments.apps", "", other),
		verbs("get list watch create update patch delete", "services", "", other),
		verbs("get list watch", "pods", "", other),
		verbs("get list watch", "endpointslices.discovery.k8s.io", "", other),
		verbs("get list watch", "nodes", "", ""),
		verbs("get list watch", "configmaps", "", ns),
		verbs("get list watch create", "leases.coordination.k8s.io", "", ns),
		[]perm{{verb: "update", resource: "leases.coordination.k8s.io", ns: ns, name: "citadel-controller"}},
		verbs("create patch", "events", "", other),
		verbs("create patch", "events.events.k8s.io", "", other),
	),
	"citadel-agent": join(
		verbs("get list watch", "clusterbasemodels.ome.io", "", ""),
		verbs("get list watch", "basemodels.ome.io", "", other),
		verbs("get list watch patch", "nodes", "", ""),
		verbs("get create update patch", "configmaps", "", ns),
		verbs("get create update patch", "leases.coordination.k8s.io", "", ns),
		verbs("get", "secrets", "", ns),
		verbs("get", "secrets", "", other),
		verbs("create patch", "events", "", other),
	),
	"citadel-gateway": join(
		verbs("get list watch", "routes.citadel.dev", "", other),
		verbs("update patch", "routes.citadel.dev", "status", other),
		verbs("get list watch", "inferenceservices.ome.io", "", other),
		verbs("get list watch", "apikeys.citadel.dev", "", ""),
		verbs("get list watch", "endpointslices.discovery.k8s.io", "", other),
		verbs("create patch", "events", "", other),
	),
}

// ... and what it must not be able to do.
var refused = map[string][]perm{
	"citadel-controller": join(
		verbs("get list watch", "secrets", "", ns),
		verbs("get list", "secrets", "", other),
		verbs("update patch delete", "nodes", "", ""),
		verbs("create update delete", "configmaps", "", ns),
		[]perm{{verb: "update", resource: "leases.coordination.k8s.io", ns: ns, name: "citadel-agent-gpu-a"}},
		verbs("create update delete", "clusterbasemodels.ome.io", "", ""),
		verbs("update", "clusterbasemodels.ome.io", "finalizers", ""),
		verbs("update patch", "routes.citadel.dev", "", other),
		verbs("get list", "apikeys.citadel.dev", "", ""),
		verbs("create delete", "pods", "", other),
		verbs("create", "clusterrolebindings.rbac.authorization.k8s.io", "", ""),
	),
	"citadel-agent": join(
		verbs("list watch", "secrets", "", ns),
		verbs("list watch create update", "secrets", "", other),
		verbs("create delete", "deployments.apps", "", other),
		verbs("update patch", "clusterbasemodels.ome.io", "status", ""),
		verbs("update patch delete", "clusterbasemodels.ome.io", "", ""),
		verbs("create delete", "nodes", "", ""),
		verbs("get create update", "configmaps", "", other),
		verbs("get create update", "leases.coordination.k8s.io", "", other),
		verbs("delete", "configmaps", "", ns),
		verbs("get list", "pods", "", other),
		verbs("get", "apikeys.citadel.dev", "", ""),
	),
	"citadel-gateway": join(
		verbs("get list", "secrets", "", ns),
		verbs("get", "secrets", "", other),
		verbs("patch update", "nodes", "", ""),
		verbs("get", "nodes", "", ""),
		verbs("create update delete", "routes.citadel.dev", "", other),
		verbs("update patch", "inferenceservices.ome.io", "status", other),
		verbs("create update delete", "apikeys.citadel.dev", "", ""),
		verbs("create delete", "deployments.apps", "", other),
		verbs("get", "configmaps", "", ns),
	),
}

// TestInstall installs the chart with helm into a real API server (CRDs from
// the chart's crds/, then its templates), checks what helm prints, applies
// the other values' renders with server-side validation, and checks each
// service account's permissions by impersonation.
func TestInstall(t *testing.T) {
	helm(t)
	t.Parallel() // beside TestStaticBinary: both mostly wait
	e := k8s.Start(t)
	kube := []string{"KUBECONFIG=" + e.Kubeconfig}
	e.MustKubectl(nil, "create", "namespace", other)

	start := time.Now()
	out, err := runHelm(t, kube, "install", "citadel", chartDir(t), "--namespace", ns, "--create-namespace")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("helm install: %v", time.Since(start).Round(time.Millisecond))
	// The notes say how to see where agents run, and what a model with none says.
	for _, want := range []string{
		"kubectl get pods -n citadel -l app.kubernetes.io/name=citadel,app.kubernetes.io/component=agent -o wide",
		"NoAgentOnMatchingNodes", "nvidia.com/gpu.present=true", "/raid/models",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("helm install's notes do not say %q:\n%s", want, out)
		}
	}
	crds := e.MustKubectl(nil, "get", "crd", "-l", "app.kubernetes.io/part-of=citadel", "-o", "name")
	if n := len(strings.Fields(crds)); n != 7 {
		t.Errorf("helm installed %d CRDs from crds/, want 7: %s", n, crds)
	}
	got := e.MustKubectl(nil, "get", "deployments,daemonsets,services,serviceaccounts,roles,rolebindings", "-n", ns, "-l", "app.kubernetes.io/part-of=citadel", "-o", "name")
	for _, want := range []string{"deployment.apps/citadel-controller", "deployment.apps/citadel-gateway", "daemonset.apps/citadel-agent", "service/citadel-gateway"} {
		if !strings.Contains(got, want) {
			t.Errorf("after helm install, no %s in namespace %s:\n%s", want, ns, got)
		}
	}

	t.Run("other values validate", func(t *testing.T) {
		for _, set := range [][]string{
			{"mirror.enabled=true"},
			{"agent.nodeSelector.gpu=yes", "models.root=/mnt/llm", "gateway.replicas=3"},
			{"agent.secrets.clusterWide=false", "agent.secrets.namespaces={" + other + "}"},
		} {
			f := filepath.Join(t.TempDir(), "rendered.yaml")
			if err := os.WriteFile(f, render(t, set...).yaml, 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := e.Kubectl(nil, "apply", "--server-side", "--dry-run=server", "--field-manager=test", "--force-conflicts", "-f", f); err != nil {
				t.Errorf("values %v: %v", set, err)
			}
		}
	})

	t.Run("permissions", func(t *testing.T) {
		checked := 0
		for _, sa := range []string{"citadel-controller", "citadel-agent", "citadel-gateway"} {
			for _, p := range allowed[sa] {
				if !can(t, e, sa, p) {
					t.Errorf("%s may not %s; docs/design/0007-kubernetes.md says it needs to", sa, p)
				}
				checked++
			}
			for _, p := range refused[sa] {
				if can(t, e, sa, p) {
					t.Errorf("%s may %s; it must not", sa, p)
				}
				checked++
			}
		}
		t.Logf("%d permissions checked", checked)

		// The same answers from kubectl auth can-i, for the ones a user asks first.
		for _, c := range []struct {
			sa   string
			p    perm
			want bool
		}{
			{"citadel-agent", perm{verb: "get", resource: "secrets", ns: other}, true},
			{"citadel-agent", perm{verb: "list", resource: "secrets", ns: other}, false},
			{"citadel-agent", perm{verb: "delete", resource: "deployments.apps", ns: other}, false},
			{"citadel-gateway", perm{verb: "get", resource: "secrets", ns: ns}, false},
			{"citadel-gateway", perm{verb: "patch", resource: "nodes"}, false},
			{"citadel-controller", perm{verb: "get", resource: "secrets", ns: other}, false},
			{"citadel-controller", perm{verb: "update", resource: "leases.coordination.k8s.io", ns: ns, name: "citadel-controller"}, true},
		} {
			if got := canKubectl(t, e, c.sa, c.p); got != c.want {
				t.Errorf("kubectl auth can-i %s --as %s: %v, want %v", c.p, serviceAccount(c.sa), got, c.want)
			}
		}
	})

	// With agent.secrets.clusterWide=false the agent reads Secrets only in the
	// release namespace and the namespaces listed.
	t.Run("secrets in listed namespaces only", func(t *testing.T) {
		e.MustKubectl(nil, "create", "namespace", "team-b")
		if _, err := runHelm(t, kube, "upgrade", "citadel", chartDir(t), "--namespace", ns, "--set", "agent.secrets.clusterWide=false", "--set", "agent.secrets.namespaces={"+other+"}"); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			p    perm
			want bool
		}{
			{perm{verb: "get", resource: "secrets", ns: ns}, true},
			{perm{verb: "get", resource: "secrets", ns: other}, true},
			{perm{verb: "get", resource: "secrets", ns: "team-b"}, false},
			{perm{verb: "list", resource: "secrets", ns: other}, false},
		} {
			if got := can(t, e, "citadel-agent", c.p); got != c.want {
				t.Errorf("citadel-agent may %s: %v, want %v", c.p, got, c.want)
			}
		}
	})
}

// can asks the API server whether the service account sa of the release
// namespace may do p, as kubectl auth can-i --as does: a
// SelfSubjectAccessReview sent as the impersonated service account.
func can(t testing.TB, e *k8s.Env, sa string, p perm) bool {
	t.Helper()
	cfg := rest.CopyConfig(e.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: serviceAccount(sa)}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	resource, group, _ := strings.Cut(p.resource, ".")
	r, err := cs.AuthorizationV1().SelfSubjectAccessReviews().Create(context.Background(), &authorizationv1.SelfSubjectAccessReview{
		Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authorizationv1.ResourceAttributes{
			Namespace: p.ns, Verb: p.verb, Group: group, Resource: resource, Subresource: p.sub, Name: p.name,
		}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("can %s %s: %v", sa, p, err)
	}
	return r.Status.Allowed
}

// canKubectl is can by kubectl auth can-i, as a user checks it.
func canKubectl(t testing.TB, e *k8s.Env, sa string, p perm) bool {
	t.Helper()
	args := []string{"auth", "can-i", p.verb, p.resource, "--as", serviceAccount(sa)}
	if p.name != "" {
		args[3] = p.resource + "/" + p.name
	}
	if p.sub != "" {
		args = append(args, "--subresource", p.sub)
	}
	if p.ns != "" {
		args = append(args, "-n", p.ns)
	}
	out, err := e.Kubectl(nil, args...)
	switch ans := strings.TrimSpace(out); {
	case ans == "yes" && err == nil:
		return true
	case ans == "no":
		return false
	default:
		t.Fatalf("kubectl %s: %q, %v", strings.Join(args, " "), ans, err)
		return false
	}
}

func serviceAccount(sa string) string { return fmt.Sprintf("system:serviceaccount:%s:%s", ns, sa) }
