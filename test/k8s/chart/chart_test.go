package chart

import (
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
)

// The node selection the agents get by default: nodes labelled by NVIDIA's GPU
// feature discovery or by OME, either.
var defaultAgentAffinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
	RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{
		{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "nvidia.com/gpu.present", Operator: corev1.NodeSelectorOpIn, Values: []string{"true"}}}},
		{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "nvidia.com/gpu", Operator: corev1.NodeSelectorOpIn, Values: []string{"true"}}}},
	}},
}}

// TestDefaults renders the chart with its own values and checks what each
// process is started with.
func TestDefaults(t *testing.T) {
	r := render(t)
	want := []string{
		"ClusterRole/citadel-agent", "ClusterRole/citadel-agent-secrets", "ClusterRole/citadel-controller", "ClusterRole/citadel-gateway",
		"ClusterRoleBinding/citadel-agent", "ClusterRoleBinding/citadel-agent-secrets", "ClusterRoleBinding/citadel-controller", "ClusterRoleBinding/citadel-gateway",
		"DaemonSet/citadel-agent", "Deployment/citadel-controller", "Deployment/citadel-gateway",
		"Role/citadel-agent", "Role/citadel-controller", "RoleBinding/citadel-agent", "RoleBinding/citadel-controller",
		"Service/citadel-gateway",
		"ServiceAccount/citadel-agent", "ServiceAccount/citadel-controller", "ServiceAccount/citadel-gateway",
	}
	if diff := cmp.Diff(want, r.names()); diff != "" {
		t.Errorf("objects (-want +got):\n%s", diff)
	}
	for _, o := range r.objs {
		l := o.GetLabels()
		if l["app.kubernetes.io/name"] != "citadel" || l["app.kubernetes.io/instance"] != "citadel" || l["app.kubernetes.io/part-of"] != "citadel" || l["app.kubernetes.io/component"] == "" {
			t.Errorf("%s/%s: labels %v lack app.kubernetes.io/name, instance, part-of or component", o.GetKind(), o.GetName(), l)
		}
		if o.GetKind() != "ClusterRole" && o.GetKind() != "ClusterRoleBinding" && o.GetNamespace() != "citadel" {
			t.Errorf("%s/%s: namespace %q, want the release's (citadel)", o.GetKind(), o.GetName(), o.GetNamespace())
		}
	}

	t.Run("controller", func(t *testing.T) {
		d := r.deployment(t, "citadel-controller")
		c := only(t, d.Spec.Template.Spec)
		if *d.Spec.Replicas != 2 || d.Spec.Template.Spec.ServiceAccountName != "citadel-controller" {
			t.Errorf("replicas %d, service account %q; want 2 and citadel-controller", *d.Spec.Replicas, d.Spec.Template.Spec.ServiceAccountName)
		}
		wantArgs := []string{"controller", "--namespace=citadel", "--leader-elect=true", "--metrics-addr=:9090", "--health-addr=:9091"}
		if diff := cmp.Diff(wantArgs, c.Args); diff != "" {
			t.Errorf("args (-want +got):\n%s", diff)
		}
		checkPodEnv(t, c)
		checkNonRoot(t, d.Spec.Template.Spec, c)
		if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
			t.Errorf("readiness probe %+v, want GET /readyz on the health port", c.ReadinessProbe)
		}
	})

	t.Run("agent", func(t *testing.T) {
		ds := r.agent(t)
		spec := ds.Spec.Template.Spec
		c := only(t, spec)
		if diff := cmp.Diff(defaultAgentAffinity, spec.Affinity); diff != "" {
			t.Errorf("affinity (-want +got):\n%s", diff)
		}
		if len(spec.NodeSelector) != 0 {
			t.Errorf("nodeSelector %v, want none by default", spec.NodeSelector)
		}
		if !slices.ContainsFunc(spec.Tolerations, func(tl corev1.Toleration) bool {
			return tl.Key == "nvidia.com/gpu" && tl.Effect == corev1.TaintEffectNoSchedule && tl.Operator == corev1.TolerationOpExists
		}) {
			t.Errorf("tolerations %+v: none for the nvidia.com/gpu NoSchedule taint", spec.Tolerations)
		}
		wantArgs := []string{"agent", "--node=$(NODE_NAME)", "--namespace=citadel", "--models-root=/raid/models", "--data-dir=/raid/models/.citadel"}
		if diff := cmp.Diff(wantArgs, c.Args); diff != "" {
			t.Errorf("args (-want +got):\n%s", diff)
		}
		if e := env(c); e["NODE_NAME"] != "<-spec.nodeName" {
			t.Errorf("NODE_NAME = %q, want the downward API's spec.nodeName", e["NODE_NAME"])
		} else if _, ok := e["HF_ENDPOINT"]; ok {
			t.Errorf("HF_ENDPOINT = %q without a mirror or agent.hfEndpoint", e["HF_ENDPOINT"])
		}
		checkPodEnv(t, c)
		checkHostPath(t, spec, c, "/raid/models")
		if sc := spec.SecurityContext; sc == nil || sc.RunAsUser == nil || *sc.RunAsUser != 0 {
			t.Errorf("pod securityContext %+v: the agent writes the hostPath as root", sc)
		}
		if sc := c.SecurityContext; sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || sc.Privileged != nil && *sc.Privileged {
			t.Errorf("container securityContext %+v: want a read-only root, no privilege escalation, not privileged", sc)
		}
	})

	t.Run("gateway", func(t *testing.T) {
		d := r.deployment(t, "citadel-gateway")
		c := only(t, d.Spec.Template.Spec)
		if *d.Spec.Replicas != 2 {
			t.Errorf("replicas %d, want 2", *d.Spec.Replicas)
		}
		if v, _ := flag(c.Args, "limit-share"); v != "2" {
			t.Errorf("args %q: --limit-share=%s, want the replica count 2", c.Args, v)
		}
		if _, ok := flag(c.Args, "in-cluster"); !ok || c.Args[0] != "gateway" {
			t.Errorf("args %q, want gateway --in-cluster", c.Args)
		}
		checkPodEnv(t, c)
		checkNonRoot(t, d.Spec.Template.Spec, c)
		var svc corev1.Service
		r.get(t, "Service", "citadel-gateway", &svc)
		if diff := cmp.Diff(d.Spec.Selector.MatchLabels, svc.Spec.Selector); diff != "" {
			t.Errorf("the Service selects other pods than the Deployment's (-deployment +service):\n%s", diff)
		}
		if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].TargetPort.String() != "http" || c.Ports[0].Name != "http" {
			t.Errorf("service ports %+v, container ports %+v: want the container's port http", svc.Spec.Ports, c.Ports)
		}
	})
}

// TestValues renders the chart with values a user sets and checks that they
// take effect.
func TestValues(t *testing.T) {
	t.Run("mirror", func(t *testing.T) {
		r := render(t, "mirror.enabled=true", "mirror.upstream=https://hub.example.com", "mirror.cache.storageClassName=fast",
			"mirror.extraEnv[0].name=HTTPS_PROXY", "mirror.extraEnv[0].value=http://proxy.lan:3128")
		for _, o := range []string{"Deployment/citadel-mirror", "Service/citadel-mirror", "PersistentVolumeClaim/citadel-mirror-cache", "ServiceAccount/citadel-mirror"} {
			if !slices.Contains(r.names(), o) {
				t.Errorf("no %s in %v", o, r.names())
			}
		}
		d := r.deployment(t, "citadel-mirror")
		spec := d.Spec.Template.Spec
		c := only(t, spec)
		want := []string{"mirror", "serve", "--cache=/var/cache/citadel-mirror", "--addr=0.0.0.0:8090",
			"--upstream=https://hub.example.com", "--ollama-upstream=https://registry.ollama.ai", "--redirect-host=citadel-mirror.citadel:8090"}
		if diff := cmp.Diff(want, c.Args); diff != "" {
			t.Errorf("mirror args (-want +got):\n%s", diff)
		}
		if e := env(c); e["HTTPS_PROXY"] != "http://proxy.lan:3128" || e["POD_NAMESPACE"] == "" {
			t.Errorf("mirror env %v: want POD_NAMESPACE and mirror.extraEnv's HTTPS_PROXY", e)
		}
		var pvc corev1.PersistentVolumeClaim
		r.get(t, "PersistentVolumeClaim", "citadel-mirror-cache", &pvc)
		if pvc.Spec.StorageClassName == nil || *pvc.Spec.StorageClassName != "fast" || pvc.Spec.Resources.Requests.Storage().String() != "500Gi" {
			t.Errorf("cache claim %+v: want 500Gi of storage class fast", pvc.Spec)
		}
		if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
			t.Error("the mirror's pods get a service account token; the mirror does not use the API")
		}
		if !slices.ContainsFunc(spec.Volumes, func(v corev1.Volume) bool {
			return v.Name == "cache" && v.PersistentVolumeClaim != nil && v.PersistentVolumeClaim.ClaimName == "citadel-mirror-cache"
		}) {
			t.Errorf("volumes %+v: the cache is not the claim citadel-mirror-cache", spec.Volumes)
		}
		checkNonRoot(t, spec, c)

		a := only(t, r.agent(t).Spec.Template.Spec)
		if e := env(a); e["HF_ENDPOINT"] != "http://citadel-mirror.citadel.svc:8090" {
			t.Errorf("agent HF_ENDPOINT = %q, want the mirror's Service", e["HF_ENDPOINT"])
		}
		if v, _ := flag(a.Args, "ollama-registry"); v != "http://citadel-mirror.citadel.svc:8090" {
			t.Errorf("agent --ollama-registry=%q, want the mirror's Service", v)
		}
	})

	t.Run("mirror without a claim", func(t *testing.T) {
		r := render(t, "mirror.enabled=true", "mirror.cache.size=")
		if r.has("PersistentVolumeClaim", "citadel-mirror-cache") {
			t.Error("a PersistentVolumeClaim with mirror.cache.size empty")
		}
		spec := r.deployment(t, "citadel-mirror").Spec.Template.Spec
		if !slices.ContainsFunc(spec.Volumes, func(v corev1.Volume) bool { return v.Name == "cache" && v.EmptyDir != nil }) {
			t.Errorf("volumes %+v: want the cache in an emptyDir", spec.Volumes)
		}
	})

	t.Run("agent.nodeSelector replaces the default affinity", func(t *testing.T) {
		spec := render(t, "agent.nodeSelector.node-role\\.example\\.com/gpu=yes").agent(t).Spec.Template.Spec
		if diff := cmp.Diff(map[string]string{"node-role.example.com/gpu": "yes"}, spec.NodeSelector); diff != "" {
			t.Errorf("nodeSelector (-want +got):\n%s", diff)
		}
		if spec.Affinity != nil && spec.Affinity.NodeAffinity != nil {
			t.Errorf("affinity %+v: the default GPU affinity is still there, so agents run only where both match", spec.Affinity)
		}
	})

	t.Run("agent.affinity null runs agents everywhere", func(t *testing.T) {
		spec := render(t, "agent.affinity=null").agent(t).Spec.Template.Spec
		if spec.Affinity != nil || len(spec.NodeSelector) != 0 {
			t.Errorf("affinity %+v, nodeSelector %v: want none", spec.Affinity, spec.NodeSelector)
		}
	})

	t.Run("models.root, endpoints and replicas", func(t *testing.T) {
		r := render(t, "models.root=/mnt/llm/", "agent.dataDir=/var/lib/citadel", "agent.hfEndpoint=http://hub.lan:8090",
			"agent.ollamaRegistry=registry.lan:5000", "gateway.replicas=5")
		spec := r.agent(t).Spec.Template.Spec
		c := only(t, spec)
		for name, want := range map[string]string{"models-root": "/mnt/llm", "data-dir": "/var/lib/citadel", "ollama-registry": "registry.lan:5000"} {
			if v, _ := flag(c.Args, name); v != want {
				t.Errorf("agent --%s=%q, want %q", name, v, want)
			}
		}
		if e := env(c); e["HF_ENDPOINT"] != "http://hub.lan:8090" {
			t.Errorf("HF_ENDPOINT = %q", e["HF_ENDPOINT"])
		}
		checkHostPath(t, spec, c, "/mnt/llm")
		checkHostPath(t, spec, c, "/var/lib/citadel")
		d := r.deployment(t, "citadel-gateway")
		if v, _ := flag(only(t, d.Spec.Template.Spec).Args, "limit-share"); *d.Spec.Replicas != 5 || v != "5" {
			t.Errorf("replicas %d, --limit-share=%s: want 5 and 5", *d.Spec.Replicas, v)
		}
	})

	t.Run("secrets in listed namespaces only", func(t *testing.T) {
		r := render(t, "agent.secrets.clusterWide=false", "agent.secrets.namespaces={team-a,team-b}")
		if r.has("ClusterRoleBinding", "citadel-agent-secrets") {
			t.Error("a ClusterRoleBinding of citadel-agent-secrets with agent.secrets.clusterWide=false")
		}
		var got []string
		for _, o := range r.objs {
			if o.GetKind() == "RoleBinding" && o.GetName() == "citadel-agent-secrets" {
				got = append(got, o.GetNamespace())
			}
		}
		if diff := cmp.Diff([]string{"citadel", "team-a", "team-b"}, got); diff != "" {
			t.Errorf("namespaces of the RoleBindings of citadel-agent-secrets (-want +got):\n%s", diff)
		}
	})

	t.Run("relative models.root", func(t *testing.T) {
		_, err := runHelm(t, nil, "template", "citadel", chartDir(t), "--set", "models.root=models")
		if err == nil || !strings.Contains(err.Error(), "models.root must be an absolute host path") {
			t.Errorf("helm template with models.root=models: %v, want a message naming models.root", err)
		}
	})
}

func only(t testing.TB, spec corev1.PodSpec) corev1.Container {
	t.Helper()
	if len(spec.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(spec.Containers))
	}
	return spec.Containers[0]
}

// checkPodEnv checks the downward-API variables every process reads.
func checkPodEnv(t testing.TB, c corev1.Container) {
	t.Helper()
	e := env(c)
	if e["POD_NAMESPACE"] != "<-metadata.namespace" || e["POD_NAME"] != "<-metadata.name" {
		t.Errorf("container %s: POD_NAMESPACE %q, POD_NAME %q; want metadata.namespace and metadata.name from the downward API", c.Name, e["POD_NAMESPACE"], e["POD_NAME"])
	}
}

// checkNonRoot checks that a pod runs as a user other than root, with a
// read-only root filesystem and no capabilities.
func checkNonRoot(t testing.TB, spec corev1.PodSpec, c corev1.Container) {
	t.Helper()
	ps, cs := spec.SecurityContext, c.SecurityContext
	if ps == nil || ps.RunAsNonRoot == nil || !*ps.RunAsNonRoot || ps.RunAsUser == nil || *ps.RunAsUser == 0 {
		t.Errorf("container %s: pod securityContext %+v, want runAsNonRoot and a non-zero runAsUser", c.Name, ps)
	}
	if cs == nil || cs.ReadOnlyRootFilesystem == nil || !*cs.ReadOnlyRootFilesystem || cs.AllowPrivilegeEscalation == nil || *cs.AllowPrivilegeEscalation ||
		cs.Capabilities == nil || !slices.Equal(cs.Capabilities.Drop, []corev1.Capability{"ALL"}) || cs.RunAsUser != nil && *cs.RunAsUser == 0 {
		t.Errorf("container %s: securityContext %+v, want readOnlyRootFilesystem, no privilege escalation, all capabilities dropped", c.Name, cs)
	}
}

// checkHostPath checks that the host directory path is mounted at the same
// path in the container.
func checkHostPath(t testing.TB, spec corev1.PodSpec, c corev1.Container, path string) {
	t.Helper()
	for _, v := range spec.Volumes {
		if v.HostPath == nil || v.HostPath.Path != path {
			continue
		}
		for _, m := range c.VolumeMounts {
			if m.Name == v.Name && m.MountPath == path && !m.ReadOnly {
				return
			}
		}
		t.Errorf("hostPath %s is not mounted read-write at %s: mounts %+v", path, path, c.VolumeMounts)
		return
	}
	t.Errorf("no hostPath volume of %s in %+v", path, spec.Volumes)
}

// TestLint runs helm lint --strict on the chart with its values and with the
// mirror on.
func TestLint(t *testing.T) {
	for _, set := range []string{"mirror.enabled=false", "mirror.enabled=true"} {
		if out, err := runHelm(t, nil, "lint", "--strict", chartDir(t), "--set", set); err != nil {
			t.Errorf("helm lint --set %s: %v\n%s", set, err, out)
		}
	}
}
