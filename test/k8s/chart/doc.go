// Package chart tests the Helm chart charts/citadel and the container image's
// build files: the chart is rendered with helm (built by hack/helm.sh) under
// several sets of values and checked object by object, installed with helm
// into a real API server (test/k8s), and each process's service account is
// checked by impersonation to be allowed what docs/design/0007-kubernetes.md
// says the process does, and refused what it must not do.
//
// The tests skip without helm on PATH, and fail instead when
// CITADEL_REQUIRE_HELM=1 (as in CI):
//
//	PATH="$(hack/helm.sh):$PATH" KUBEBUILDER_ASSETS="$(hack/envtest.sh)" go test ./test/k8s/chart
package chart
