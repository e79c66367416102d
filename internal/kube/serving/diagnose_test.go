package serving

import (
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	v1 "citadel.dev/citadel/api/v1"
)

// TestDiagnose: the one cause a user reads when the engine is not ready, for each way a
// pod or a Deployment fails, as the kubelet and the Deployment controller report them.
func TestDiagnose(t *testing.T) {
	d := &desiredState{modelKey: "ClusterBaseModel m", label: "models.ome.io/clusterbasemodel.m", nodes: []string{"gpu-a"}, engine: "vllm"}
	dep := func(ready int32, conds ...appsv1.DeploymentCondition) *appsv1.Deployment {
		return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "m-engine", Namespace: "ns"},
			Spec: appsv1.DeploymentSpec{Replicas: ptr(int32(2))}, Status: appsv1.DeploymentStatus{ReadyReplicas: ready, Conditions: conds}}
	}
	pod := func(name string, cs ...corev1.ContainerStatus) corev1.Pod {
		return corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns"},
			Spec: corev1.PodSpec{NodeName: "gpu-a", Containers: []corev1.Container{{Name: "engine", Resources: corev1.ResourceRequirements{
				Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("30Gi"), "nvidia.com/gpu": resource.MustParse("1")}}}}},
			Status: corev1.PodStatus{ContainerStatuses: cs}}
	}
	waiting := func(reason, msg string) corev1.ContainerState {
		return corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: msg}}
	}
	unsched := pod("p-unsched")
	unsched.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: "Unschedulable",
		Message: "0/3 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 2 Insufficient nvidia.com/gpu."}}
	for _, tc := range []struct {
		name          string
		dep           *appsv1.Deployment
		pods          []corev1.Pod
		phase, reason string
		want          []string
	}{
		{"image pull", dep(0), []corev1.Pod{pod("p1", corev1.ContainerStatus{Name: "engine", Image: "docker.io/vllm/vllm-openai:v9",
			State: waiting("ImagePullBackOff", `Back-off pulling image "docker.io/vllm/vllm-openai:v9": not found`)})},
			v1.ServiceFailed, "ImagePullBackOff", []string{"p1 cannot pull image docker.io/vllm/vllm-openai:v9", "not found", "spec.engine.runner.image"}},
		{"OOMKilled", dep(0), []corev1.Pod{pod("p1", corev1.ContainerStatus{Name: "engine", RestartCount: 2, State: waiting("CrashLoopBackOff", ""),
			LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 137, Reason: "OOMKilled"}}})},
			v1.ServiceFailed, ReasonOOMKilled, []string{"exited with code 137 (OOMKilled)", "resources.limits.memory 30Gi", "not GPU memory"}},
		{"unschedulable beats starting", dep(0), []corev1.Pod{pod("p0", corev1.ContainerStatus{Name: "engine", State: corev1.ContainerState{
			Running: &corev1.ContainerStateRunning{}}}), unsched},
			v1.ServicePending, v1.ReasonUnschedulable, []string{"p-unsched cannot be scheduled", "2 Insufficient nvidia.com/gpu", "asks for 1 nvidia.com/gpu", "Ready (label models.ome.io/clusterbasemodel.m=Ready: gpu-a)"}},
		{"one of two ready", dep(1), []corev1.Pod{unsched},
			v1.ServiceDegraded, v1.ReasonUnschedulable, []string{"1 of 2 replicas ready", "p-unsched"}},
		{"starting", dep(0), []corev1.Pod{pod("p0", corev1.ContainerStatus{Name: "engine", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}})},
			v1.ServiceStarting, v1.ReasonStarted, []string{"p0 on node gpu-a", "has not passed its probes", "vllm answers once the model is loaded", "kubectl logs p0 -n ns"}},
		{"progress deadline", dep(0, appsv1.DeploymentCondition{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionFalse,
			Reason: "ProgressDeadlineExceeded", Message: `ReplicaSet "m-engine-5d8" has timed out progressing.`}), nil,
			v1.ServiceFailed, ReasonProgressDeadlineExceeded, []string{"has timed out progressing", "progressDeadlineSeconds"}},
		{"ready", dep(2), nil, v1.ServiceReady, v1.ReasonEngineReady, []string{"2 of 2 replicas ready"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			phase, reason, msg := diagnose(tc.dep, tc.pods, d, &v1.InferenceServiceStatus{})
			if phase != tc.phase || reason != tc.reason {
				t.Errorf("got %s %s, want %s %s: %s", phase, reason, tc.phase, tc.reason, msg)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("message lacks %q: %s", w, msg)
				}
			}
		})
	}
}
