package main

// fixes say what to do about the problem reasons internal/modeltest has no cause for: it
// tests models and services, and these belong to routes and runtimes. Every problem reason
// on the page has a cause there or a fix here (reasonsMarkdown refuses a page without).
// NAME and NAMESPACE stand for the route's or the runtime's.
var fixes = map[string][]string{
	"NoGateway": {
		"citadel serve runs with the gateway off (--gateway-addr off, or gatewayAddr: off in its --config file): give it an address, e.g. --gateway-addr 127.0.0.1:8080, and restart it",
	},
	"ServiceNotFound": {
		"citadel describe route NAME -n NAMESPACE: the message names the missing InferenceService",
		"create it (citadel apply -f SERVICE.yaml), or fix the target's service (name or namespace/name) in the route and re-apply it; citadel get isvc -A lists the services",
	},
	"RouteProblems": {
		"citadel describe route NAME -n NAMESPACE: the message lists each problem with its field",
		"fix them in the route's file and re-apply it",
	},
	"NoReadyTargets": {
		"citadel describe route NAME -n NAMESPACE: the message names the targets with no ready replica",
		"citadel describe isvc SERVICE -n NAMESPACE for each: its reason says why it is not Ready (this page, InferenceServices); the route recovers by itself once it is, and meanwhile requests go to the name's fallback",
	},
	"RuntimeDisabled": {
		"the runtime has spec.disabled: true; to use it, re-apply it without disabled (or with disabled: false)",
		"or name another runtime in the services that use it (spec.runtime.name), or remove spec.runtime to select one automatically",
	},
}
