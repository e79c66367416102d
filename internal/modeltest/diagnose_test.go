package modeltest

import (
	"context"
	"go/ast"
	"go/parser"
	"go/token"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "citadel.dev/citadel/api/v1"
)

// The facts below copy the message formats of internal/agent, internal/pull, internal/hub,
// internal/daemon, internal/selection, internal/placement, internal/serving,
// internal/supervisor and internal/gateway.

var dgT0 = time.Date(2025, 12, 3, 12, 54, 12, 0, time.UTC)

func dgStr(s string) *string { return &s }

// dgSpec is the seed model's spec: hf://XiaomiMiMo/MiMo-VL-7B-RL with secret hf-token.
func dgSpec() *v1.BaseModelSpec {
	return &v1.BaseModelSpec{Storage: &v1.StorageSpec{
		StorageURI: dgStr("hf://XiaomiMiMo/MiMo-VL-7B-RL"),
		Path:       dgStr("/raid/models/XiaomiMiMo/MiMo-VL-7B-RL"),
		StorageKey: dgStr("hf-token"),
	}}
}

func dgInt32(n int32) *int32 { return &n }

// dgFacts are the facts of a model whose download did not finish.
func dgFacts(phase, reason, msg string) Facts {
	return Facts{Model: "mimo-vl-7b-rl", ModelKind: v1.KindClusterBaseModel, ModelPhase: phase, ModelReason: reason,
		ModelMessage: msg, ModelSpec: dgSpec()}
}

// dgEvent is an event as the agent records it: reason, "Phase: message".
func dgEvent(typ, reason, msg string, count int32, at time.Duration) v1.Event {
	return v1.Event{Type: typ, Reason: reason, Message: msg, Kind: v1.KindClusterBaseModel, Name: "mimo-vl-7b-rl",
		Count: count, LastTimestamp: v1.NewTime(dgT0.Add(at))}
}

// dgReport is a report that failed at step failed with summary; the steps after it did not run.
func dgReport(failed, summary string, f Facts) *Report {
	r := &Report{Model: f.Model, Namespace: "default", Started: dgT0, Result: ResultFailed, Facts: f}
	blocked := ""
	for _, s := range Steps {
		st := Step{Name: s.Name, Title: s.Title, Status: Passed, Started: dgT0, Duration: time.Second}
		switch {
		case s.Name == StepCleanup:
		case blocked != "":
			st.Status, st.BlockedBy = NotRun, blocked
		case s.Name == failed:
			st.Status, st.Summary, blocked = Failed, summary, s.Name
		}
		r.Steps = append(r.Steps, st)
	}
	return r
}

func dgStep(r *Report, name string) *Step {
	for i := range r.Steps {
		if r.Steps[i].Name == name {
			return &r.Steps[i]
		}
	}
	panic(name)
}

// dgService are the facts of a model that is Ready and a service that did not become Ready.
func dgService(phase, reason, msg string) Facts {
	f := dgFacts(v1.ModelReady, "Ready", "4 files, 16.61 GB, verified; at /raid/models/XiaomiMiMo/MiMo-VL-7B-RL")
	f.BytesDone, f.BytesTotal = 16612434432, 16612434432
	f.Service, f.Runtime = "default/test-mimo-vl-7b-rl", "vllm-vl"
	f.ServicePhase, f.ServiceReason, f.ServiceMessage = phase, reason, msg
	return f
}

const dgPlacementLine = "tensor parallel 1 over GPUs 0: mimo-vl-7b bf16 on 1× rtx-4070-ti-super (15.99 GiB): weights 15.46 GiB + activations and runtime 1.48 GiB + KV for 4096 tokens 0.56 GiB = 17.50 GiB > 14.39 GiB (0.9 × 15.99 GiB)"

type dgCase struct {
	name         string
	report       *Report
	wantCode     string
	wantEvidence []string // each a substring of some evidence line
	wantSummary  []string // substrings of the summary
	wantNext     []string // substrings of some next step
}

func dgCases() []dgCase {
	var cs []dgCase
	add := func(c dgCase) { cs = append(cs, c) }

	// ---- the model agent ----
	{
		msg := "spec.storage.key names secret ome/hf-token, which does not exist; nothing is downloaded anonymously in its place: citadel secret create hf-token -n ome --from-env token=HF_TOKEN"
		f := dgFacts(v1.ModelFailed, "SecretNotFound", msg)
		f.ModelEvents = []v1.Event{dgEvent(v1.EventWarning, "SecretNotFound", "Failed: "+msg, 1, 0)}
		add(dgCase{name: "secret not found", report: dgReport(StepDownload, "SecretNotFound: "+msg, f), wantCode: "SecretNotFound",
			wantEvidence: []string{"(SecretNotFound): spec.storage.key names secret ome/hf-token", "event Warning SecretNotFound"},
			wantSummary:  []string{"ome/hf-token"},
			wantNext:     []string{"citadel secret create hf-token -n ome --from-env token=HF_TOKEN"}})
	}
	{
		msg := `secret ome/hf-token has no key "token": add it, or set spec.storage.parameters.secretKey to the key that holds the token`
		f := dgFacts(v1.ModelFailed, "SecretNotFound", msg) // the agent words a missing key so
		f.ModelFailure = &v1.DownloadFailure{Reason: "SecretNotFound", Secret: &v1.FailureSecret{Namespace: "ome", Name: "hf-token", Key: "token", Found: true, Keys: []string{"hf"}}}
		add(dgCase{name: "secret key missing", report: dgReport(StepDownload, "SecretNotFound: "+msg, f), wantCode: "SecretKeyMissing",
			wantEvidence: []string{`has no key "token"`},
			wantSummary:  []string{`no key "token"`},
			wantNext:     []string{"citadel secret create hf-token -n ome --from-env token=HF_TOKEN", "spec.storage.parameters.secretKey"}})
	}
	{
		msg := `Unauthorized: https://huggingface.co rejected the token (server said "Invalid credentials in Authorization header"): it is missing, invalid or expired; create one at https://huggingface.co/settings/tokens and set HF_TOKEN or storage.key (not retried automatically: fix the cause, then re-apply the model or update its secret)`
		add(dgCase{name: "unauthorized", report: dgReport(StepDownload, "Unauthorized: "+msg, dgFacts(v1.ModelFailed, "Unauthorized", msg)), wantCode: "Unauthorized",
			wantEvidence: []string{"rejected the token", "Invalid credentials in Authorization header"},
			wantNext:     []string{"https://huggingface.co/api/whoami-v2", "citadel secret create hf-token -n ome"}})
	}
	{
		msg := `GatedRepo: repository "XiaomiMiMo/MiMo-VL-7B-RL" on https://huggingface.co is gated (server said "Access to model XiaomiMiMo/MiMo-VL-7B-RL is restricted. You must have access to it and be authenticated to access it."): accept the conditions at https://huggingface.co/XiaomiMiMo/MiMo-VL-7B-RL with the token's account (not retried automatically: fix the cause, then re-apply the model or update its secret)`
		f := dgFacts(v1.ModelFailed, "GatedRepo", msg)
		f.ModelFailure = &v1.DownloadFailure{Reason: "GatedRepo", Endpoint: "https://hf-mirror.example", AcceptURL: "https://hf-mirror.example/XiaomiMiMo/MiMo-VL-7B-RL"}
		add(dgCase{name: "gated repo", report: dgReport(StepDownload, msg, f), wantCode: "GatedRepo",
			wantEvidence: []string{"is gated"},
			wantSummary:  []string{"XiaomiMiMo/MiMo-VL-7B-RL", "license"},
			wantNext:     []string{"open https://hf-mirror.example/XiaomiMiMo/MiMo-VL-7B-RL", "accept the license"}})
	}
	{
		msg := `RepoNotFound: repository "XiaomiMiMo/MiMo-VL-7B-RL" not found on https://huggingface.co (server said "Repository not found"): check the name, and that the token's account can read the repository (not retried automatically: fix the cause, then re-apply the model or update its secret)`
		add(dgCase{name: "repo not found", report: dgReport(StepDownload, msg, dgFacts(v1.ModelFailed, "RepoNotFound", msg)), wantCode: "RepoNotFound",
			wantEvidence: []string{"not found on https://huggingface.co"},
			wantNext:     []string{"hf://XiaomiMiMo/MiMo-VL-7B-RL"}})
	}
	{
		msg := `RevisionNotFound: revision "v2" not found in repository "XiaomiMiMo/MiMo-VL-7B-RL" on https://huggingface.co (server said "Invalid rev id: v2"): check the branch, tag or commit (not retried automatically: fix the cause, then re-apply the model or update its secret)`
		f := dgFacts(v1.ModelFailed, "RevisionNotFound", msg)
		f.ModelSpec.Storage.StorageURI = dgStr("hf://XiaomiMiMo/MiMo-VL-7B-RL@v2")
		add(dgCase{name: "revision not found", report: dgReport(StepDownload, msg, f), wantCode: "RevisionNotFound",
			wantEvidence: []string{`revision "v2" not found`},
			wantSummary:  []string{"hf://XiaomiMiMo/MiMo-VL-7B-RL@v2"},
			wantNext:     []string{"@revision"}})
	}
	{
		msg := "DownloadStalled: no bytes of model-00003-of-00004.safetensors for 1m0s (received 1073741824 of 4976698672 bytes); the source stopped sending: check the network path to the hub or mirror, or raise --stall-timeout for a slow link (attempt 1; retrying in 10s; partial files are kept and resumed)"
		f := dgFacts(v1.ModelFailed, "DownloadStalled", msg)
		f.ModelFailure = &v1.DownloadFailure{Reason: "DownloadStalled", File: "model-00003-of-00004.safetensors", FileBytesReceived: 1073741824, FileBytesTotal: 4976698672, IdleSeconds: 60, Attempt: 1}
		f.BytesDone, f.BytesTotal, f.NoProgressFor = 9234567890, 16612434432, 62*time.Second
		f.ModelEvents = []v1.Event{
			dgEvent(v1.EventNormal, "Resolving", "Downloading: resolving hf://XiaomiMiMo/MiMo-VL-7B-RL", 1, 0),
			dgEvent(v1.EventWarning, "DownloadStalled", "Failed: "+msg, 1, 5*time.Minute),
		}
		add(dgCase{name: "download stalled (agent)", report: dgReport(StepDownload, msg, f), wantCode: "DownloadStalled",
			wantEvidence: []string{"file: model-00003-of-00004.safetensors; received 1073741824 of 4976698672 bytes; no progress for 62 s", "event Warning DownloadStalled"},
			wantSummary:  []string{"model-00003-of-00004.safetensors", "1073741824 of 4976698672", "62 s"},
			wantNext:     []string{"--stall-timeout", "resolve/main/model-00003-of-00004.safetensors", "-r 1073741824-"}})
	}
	{
		// pull's message for a file whose requests go silent between a few bytes; the hub is
		// the configured mirror (the message names none).
		msg := "DownloadStalled: model.safetensors keeps going silent: its requests were abandoned after 2s without a byte, 12s in all, and the few bytes between did not complete a range (received 28784 of 524400 bytes, the last 3s ago); the source stopped sending"
		f := dgFacts(v1.ModelFailed, "DownloadStalled", msg)
		f.ModelFailure = &v1.DownloadFailure{Reason: "DownloadStalled", File: "model.safetensors", FileBytesReceived: 28784, FileBytesTotal: 524400, IdleSeconds: 3}
		f.HubEndpoint = "http://mirror.internal:8080"
		add(dgCase{name: "download stalled (going silent)", report: dgReport(StepDownload, msg, f), wantCode: "DownloadStalled",
			wantEvidence: []string{"file: model.safetensors; received 28784 of 524400 bytes"},
			wantSummary:  []string{"model.safetensors", "28784 of 524400"},
			wantNext:     []string{"-r 28784- http://mirror.internal:8080/XiaomiMiMo/MiMo-VL-7B-RL/resolve/main/model.safetensors"}})
	}
	{
		// The agent failed the file, retried, and the status says Downloading again; the test's
		// own stall check ended the wait. The status's last failure keeps the file (its event
		// says it too).
		stall := "DownloadStalled: no bytes of model-00001-of-00004.safetensors for 1m0s (received 0 of 4968243304 bytes); the source stopped sending: check the network path to the hub or mirror, or raise --stall-timeout for a slow link (attempt 2; retrying in 20s; partial files are kept and resumed)"
		f := dgFacts(v1.ModelDownloading, "Downloading", "0/4 files, 0 B of 16.61 GB")
		f.ModelFailure = &v1.DownloadFailure{Reason: "DownloadStalled", File: "model-00001-of-00004.safetensors", FileBytesTotal: 4968243304, IdleSeconds: 60, Attempt: 2}
		f.BytesTotal, f.NoProgressFor = 16612434432, 60*time.Second
		f.ModelEvents = []v1.Event{dgEvent(v1.EventWarning, "DownloadStalled", "Failed: "+stall, 2, 3*time.Minute)}
		add(dgCase{name: "download stalled (event, retrying)", report: dgReport(StepDownload, "DownloadStalled: no bytes for 1m0s at 0 B of 16.6 GB", f), wantCode: "DownloadStalled",
			wantEvidence: []string{"file: model-00001-of-00004.safetensors; received 0 of 4968243304 bytes", "(×2)"},
			wantSummary:  []string{"model-00001-of-00004.safetensors", "0 of 4968243304", "60 s"}})
	}
	{
		// No agent reason at all: the test saw the bytes stand still.
		f := dgFacts(v1.ModelDownloading, "Downloading", "1/4 files, 4.97 GB of 16.61 GB")
		f.BytesDone, f.BytesTotal, f.NoProgressFor = 4968243304, 16612434432, 75*time.Second
		f.LastProgress = dgT0.Add(10 * time.Minute)
		add(dgCase{name: "download stalled (observed)", report: dgReport(StepDownload, "DownloadStalled: no bytes for 1m15s at 5.0 GB of 16.6 GB", f), wantCode: "DownloadStalled",
			wantEvidence: []string{"received 4968243304 of 16612434432 bytes; no progress for 75 s", "last progress at 2025-12-03T13:04:12Z"},
			wantSummary:  []string{"4968243304 of 16612434432", "75 s"}})
	}
	{
		msg := "InsufficientStorage: need 16.6 GB, 2.1 GB free on /var/lib/citadel/hf/hub: free space, or move the cache (--data-dir / HF_HUB_CACHE) to a larger disk (not retried automatically: fix the cause, then re-apply the model or update its secret)"
		f := dgFacts(v1.ModelFailed, "InsufficientStorage", msg)
		f.ModelFailure = &v1.DownloadFailure{Reason: "InsufficientStorage", BytesNeeded: 16_600_000_000, BytesFree: 2_100_000_000, Directory: "/var/lib/citadel/hf/hub"}
		add(dgCase{name: "insufficient storage", report: dgReport(StepDownload, msg, f), wantCode: "InsufficientStorage",
			wantEvidence: []string{"need 16.6 GB, free 2.1 GB on /var/lib/citadel/hf/hub"},
			wantSummary:  []string{"16.6 GB", "2.1 GB", "/var/lib/citadel/hf/hub"},
			wantNext:     []string{"df -h /raid/models/XiaomiMiMo/MiMo-VL-7B-RL", "--data-dir"}})
	}
	{
		msg := "ChecksumMismatch: model-00002-of-00004.safetensors was downloaded twice and both times its content did not match the expected hash 5f1d4ab0e2c6 (modelstore: checksum mismatch: model-00002-of-00004.safetensors hashes to 9ac0, want 5f1d4ab0e2c6); the source serves corrupt data: report it to the repository owner or mirror operator (not retried automatically: fix the cause, then re-apply the model or update its secret)"
		f := dgFacts(v1.ModelFailed, "ChecksumMismatch", msg)
		f.ModelFailure = &v1.DownloadFailure{Reason: "ChecksumMismatch", File: "model-00002-of-00004.safetensors"}
		add(dgCase{name: "checksum mismatch", report: dgReport(StepDownload, msg, f), wantCode: "ChecksumMismatch",
			wantEvidence: []string{"did not match the expected hash"},
			wantSummary:  []string{"model-00002-of-00004.safetensors"},
			wantNext:     []string{"mirror"}})
	}
	{
		msg := `DNSFailure: cannot resolve "huggingface.co": lookup huggingface.co on 127.0.0.53:53: no such host; check HF_ENDPOINT / the registry host and this host's DNS (attempt 3; retrying in 40s; partial files are kept and resumed)`
		add(dgCase{name: "hub unreachable (dns)", report: dgReport(StepDownload, msg, dgFacts(v1.ModelFailed, "DNSFailure", msg)), wantCode: "HubUnreachable",
			wantEvidence: []string{"no such host"},
			wantNext:     []string{"curl", "HTTPS_PROXY"}})
	}
	{
		msg := "UpstreamError: GET https://huggingface.co/api/models/XiaomiMiMo/MiMo-VL-7B-RL/revision/main: 503 Service Unavailable: the server failed; try again later (attempt 1; retrying in 10s; partial files are kept and resumed)"
		f := dgFacts(v1.ModelFailed, "UpstreamError", msg)
		f.ModelFailure = &v1.DownloadFailure{Reason: "UpstreamError", Endpoint: "https://huggingface.co", HTTPStatus: 503, Attempt: 1}
		add(dgCase{name: "hub unreachable (503)", report: dgReport(StepDownload, msg, f), wantCode: "HubUnreachable",
			wantEvidence: []string{"503 Service Unavailable"}})
	}
	{
		msg := "RateLimited: rate limited by https://huggingface.co/api/models/XiaomiMiMo/MiMo-VL-7B-RL/revision/main: wait 5m0s, or pass a token (HF_TOKEN or storage.key) for a higher limit (attempt 2; retrying in 5m0s; partial files are kept and resumed)"
		f := dgFacts(v1.ModelFailed, "RateLimited", msg)
		f.DownloadTimedOut = true // a model reason beats the test's own timeout
		add(dgCase{name: "rate limited", report: dgReport(StepDownload, "not Ready after 30m0s (phase Failed, 0 B of 0 B)", f), wantCode: "RateLimited",
			wantEvidence: []string{"rate limited by https://huggingface.co"},
			wantNext:     []string{"--max-downloads"}})
	}
	{
		msg := "downloaded and verified, but unusable: config.json: invalid character '}' looking for beginning of object key string; the repository's files are damaged or hostile: report it to the repository owner"
		add(dgCase{name: "invalid model files", report: dgReport(StepDownload, "InvalidModelFiles: "+msg, dgFacts(v1.ModelFailed, "InvalidModelFiles", msg)), wantCode: "InvalidModelFiles",
			wantEvidence: []string{"config.json: invalid character"},
			wantNext:     []string{"@revision"}})
	}
	{
		f := dgFacts(v1.ModelDownloading, "Downloading", "3/4 files, 9.80 GB of 16.61 GB at 5.2 MB/s")
		f.BytesDone, f.BytesTotal, f.NoProgressFor, f.DownloadTimedOut = 9800000000, 16610000000, 2*time.Second, true
		f.BytesPerSecond = 5200000 // the status's rate, which the message renders
		r := dgReport(StepDownload, "not Ready after 30m0s (phase Downloading, 9.8 GB of 16.6 GB)", f)
		dgStep(r, StepDownload).Duration = 30 * time.Minute
		add(dgCase{name: "download timeout", report: r, wantCode: "DownloadTimeout",
			wantEvidence: []string{"rate 5.2 MB/s (reported by the agent)", "ETA 21m50s"},
			wantSummary:  []string{"30m0s", "5.2 MB/s", "21m50s"},
			wantNext:     []string{"--download-timeout"}})
	}
	{
		msg := "waiting for a model agent to download hf://XiaomiMiMo/MiMo-VL-7B-RL: this server runs none yet (model download is not part of this build), so the model stays Pending"
		f := dgFacts(v1.ModelPending, "AwaitingAgent", msg)
		f.NoProgressFor = 60 * time.Second
		add(dgCase{name: "no model agent", report: dgReport(StepDownload, "still Pending after 1m0s: AwaitingAgent", f), wantCode: "NoModelAgent",
			wantEvidence: []string{"(AwaitingAgent): waiting for a model agent"},
			wantNext:     []string{"--agent=true"}})
	}
	{
		msg := "spec.disabled is true: the model is not downloaded; set it to false to enable it"
		add(dgCase{name: "model disabled", report: dgReport(StepDownload, "still Pending after 1m0s: ModelDisabled", dgFacts(v1.ModelPending, "ModelDisabled", msg)), wantCode: "ModelDisabled",
			wantEvidence: []string{"spec.disabled is true"},
			wantNext:     []string{"spec.disabled: false"}})
	}

	// ---- runtime selection ----
	{
		f := dgService("", "NoSupportingRuntime", "no runtime can serve model mimo-vl-7b-rl: llama-rt: modelArchitecture LlamaForCausalLM ≠ Qwen2_5_VLForConditionalGeneration; sglang-vl: modelFramework transformers version 4.43.1 < 4.41.2: operator GreaterThanOrEqual needs the runtime's version to be at least the model's")
		f.Runtime = ""
		f.Runtimes = []v1.RuntimeCandidate{
			{Name: "llama-rt", Reason: "modelArchitecture LlamaForCausalLM ≠ Qwen2_5_VLForConditionalGeneration"},
			{Name: "sglang-vl", Reason: "modelFramework transformers version 4.43.1 < 4.41.2: operator GreaterThanOrEqual needs the runtime's version to be at least the model's"},
		}
		add(dgCase{name: "no supporting runtime", report: dgReport(StepRuntime, f.ServiceMessage, f), wantCode: "NoSupportingRuntime",
			wantEvidence: []string{"runtime llama-rt rejected: modelArchitecture LlamaForCausalLM ≠ Qwen2_5_VLForConditionalGeneration", "runtime sglang-vl rejected: modelFramework transformers"},
			wantSummary:  []string{"2 runtime(s) rejected"},
			wantNext:     []string{"citadel get runtimes"}})
	}
	{
		f := dgService("", "RuntimeIncompatible", "runtime llama-rt cannot serve model text-a: modelArchitecture LlamaForCausalLM ≠ Qwen2ForCausalLM")
		f.Runtimes = []v1.RuntimeCandidate{{Name: "llama-rt", Reason: "modelArchitecture LlamaForCausalLM ≠ Qwen2ForCausalLM"}}
		add(dgCase{name: "runtime incompatible", report: dgReport(StepRuntime, f.ServiceMessage, f), wantCode: "RuntimeIncompatible",
			wantEvidence: []string{"runtime llama-rt rejected: modelArchitecture LlamaForCausalLM ≠ Qwen2ForCausalLM"}})
	}

	{
		// The model is Ready but its metadata stays unset: the selection's "wait for the model
		// to be Ready" is stale, and the summary does not repeat it.
		why := "model metadata not yet known (modelFramework unset): wait for the model to be Ready, or set it in the model's spec"
		f := dgService("", "NoSupportingRuntime", "no runtime can serve model mimo-vl-7b-rl: vllm-vl: "+why)
		f.Runtime = ""
		f.Runtimes = []v1.RuntimeCandidate{{Name: "vllm-vl", Reason: why}}
		add(dgCase{name: "metadata missing on a Ready model", report: dgReport(StepRuntime, f.ServiceMessage, f), wantCode: "NoSupportingRuntime",
			wantSummary: []string{"although it is Ready", "set it in the model's spec"}})
	}

	// ---- placement ----
	{
		lines := []string{
			"mimo-vl-7b bf16: weights 15.46 GiB; KV cache 144 KiB per token × 32768 tokens (max-model-len 32768 × 1 sequence) = 4.50 GiB",
			"tensor parallel 1 does not fit: mimo-vl-7b bf16 on 1× rtx-4070-ti-super (15.99 GiB): weights 15.46 GiB + activations and runtime 1.48 GiB + KV for 32768 tokens 4.50 GiB = 21.44 GiB > 14.39 GiB (0.9 × 15.99 GiB); the weights alone do not fit in 15.99 GiB",
			"tensor parallel 2 would fit (mimo-vl-7b bf16 on 2× rtx-4070-ti-super (15.99 GiB each): per GPU weights 7.73 GiB + activations and runtime 1.31 GiB + KV for 32768 tokens 2.25 GiB = 11.29 GiB ≤ 14.39 GiB (0.9 × 15.99 GiB)), but no GPU has room: GPU 0 has 1.31 GiB free of 15.99 GiB: 14.68 GiB for shared models (citadel/mixtral-8x7b)",
		}
		alt := "if citadel/mixtral-8x7b did not hold the GPUs, it would fit with tensor parallel 2 over GPUs 0,1"
		msg := "default/test-mimo-vl-7b-rl does not fit:\n  " + strings.Join(lines, "\n  ") + "\nit would fit with one of:\n  - " + alt
		f := dgService(v1.ServiceScheduling, "Unschedulable", msg)
		f.Placement = append(append([]string{}, lines...), alt)
		add(dgCase{name: "unschedulable", report: dgReport(StepReady, "Unschedulable: "+msg, f), wantCode: "Unschedulable",
			wantEvidence: []string{"placement: tensor parallel 1 does not fit", "= 21.44 GiB > 14.39 GiB", "would fit with: " + alt},
			wantSummary:  []string{"21.44 GiB > 14.39 GiB"},
			wantNext:     []string{"apply one change: " + alt}})
	}

	// ---- the engine ----
	{
		msg := `engine vllm not found: install vllm or set runtime command (looked for "vllm" on PATH)`
		add(dgCase{name: "engine not found", report: dgReport(StepReady, "EngineNotFound: "+msg, dgService(v1.ServiceFailed, "EngineNotFound", msg)), wantCode: "EngineNotFound",
			wantEvidence: []string{`looked for "vllm" on PATH`},
			wantNext:     []string{"--simulate-engines"}})
	}
	{
		tail := []string{
			"INFO 12-03 13:01:02 [core.py:75] Initializing a V1 LLM engine (v0.10.1) with config: model='/raid/models/XiaomiMiMo/MiMo-VL-7B-RL'",
			"ERROR 12-03 13:01:09 [core.py:700] EngineCore failed to start.",
			"ValueError: Model architectures ['Qwen2_5_VLForConditionalGeneration'] failed to be inspected. Please check the logs for more details.",
		}
		msg := "the engine exited (exit status 1) after 8.412s; back-off 40s before restarting, after 3 failures in a row without becoming ready; its last output:\n  " + strings.Join(tail, "\n  ")
		f := dgService(v1.ServiceDegraded, "Exited", "0 of 1 replicas ready; replica not ready: "+msg)
		f.Endpoints = []v1.Endpoint{{Replica: 0, Address: "127.0.0.1:41234", Engine: "vllm", Phase: "CrashLoopBackOff", Restarts: 3, LastExit: "exit status 1", LastExitReason: "Exited", ExitCode: dgInt32(1)}}
		f.LogTail = tail
		f.ServiceEvents = []v1.Event{{Type: v1.EventWarning, Reason: "EngineExited", Message: "replica 0: CrashLoopBackOff: " + msg, Count: 3}}
		add(dgCase{name: "engine crashed", report: dgReport(StepReady, "Exited: "+f.ServiceMessage, f), wantCode: "EngineCrashed",
			wantEvidence: []string{"exit: exit code 1", "log: ValueError: Model architectures", "replica 0: CrashLoopBackOff, 3 restart(s), last exit: exit status 1"},
			wantSummary:  []string{"exit code 1", "ValueError: Model architectures"},
			wantNext:     []string{"citadel logs isvc/test-mimo-vl-7b-rl -n default"}})
	}
	{
		// Only the supervisor's message carries the tail (the run could not read the logs).
		msg := "the engine exited (exit status 1) after 41.3s; restarting in 10s; its last output:\n  Loading safetensors checkpoint shards: 100% Completed | 4/4\n  torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 1.02 GiB. GPU 0 has a total capacity of 15.99 GiB of which 312.00 MiB is free."
		f := dgService(v1.ServiceStarting, "Exited", msg)
		f.Placement = []string{dgPlacementLine}
		f.Endpoints = []v1.Endpoint{{Replica: 0, Address: "127.0.0.1:41234", Engine: "vllm", Phase: "Restarting", Restarts: 1, LastExit: "exit status 1", LastExitReason: "Exited", ExitCode: dgInt32(1)}}
		add(dgCase{name: "out of memory at load", report: dgReport(StepReady, "Exited: "+msg, f), wantCode: "OutOfMemoryAtLoad",
			wantEvidence: []string{"out of memory: torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 1.02 GiB", "placement: " + dgPlacementLine, "exit: exit code 1"},
			wantSummary:  []string{"CUDA out of memory"},
			wantNext:     []string{"--max-model-len", "nvidia-smi"}})
	}
	{
		msg := "the engine did not pass its startup probe within 10m0.512s: it failed 60 times in a row (Get \"http://127.0.0.1:41234/health\": dial tcp 127.0.0.1:41234: connect: connection refused); it ended with signal: killed; restarting in 10s; its last output:\n  Loading safetensors checkpoint shards:  50% Completed | 2/4 [09:12<09:12, 276.1s/it]"
		f := dgService(v1.ServiceStarting, "StartupTimeout", msg)
		add(dgCase{name: "startup timeout", report: dgReport(StepReady, "StartupTimeout: "+msg, f), wantCode: "StartupTimeout",
			wantEvidence: []string{"did not pass its startup probe within 10m0.512s", "log: Loading safetensors checkpoint shards:  50% Completed"},
			wantNext:     []string{"startupProbe", "citadel logs isvc/test-mimo-vl-7b-rl"}})
	}
	{
		f := dgService(v1.ServiceStarting, "Started", "process 4242 started; waiting for its startup probe (GET http://127.0.0.1:41234/health)")
		f.ReadyTimedOut = true
		f.LogTail = []string{
			"INFO 12-03 13:02:11 [default_loader.py:262] Loading weights took 38.21 seconds",
			"INFO 12-03 13:02:14 [gpu_model_runner.py:2007] Model loading took 15.47 GiB and 39.90 seconds",
			"INFO 12-03 13:02:40 [backends.py:548] Compiling a graph for dynamic shape takes 24.16 s",
		}
		r := dgReport(StepReady, "not Ready after 2m30s (the runtime's start-up budget): phase Starting (Started)", f)
		dgStep(r, StepReady).Duration = 150 * time.Second
		add(dgCase{name: "readiness timeout", report: r, wantCode: "ReadinessTimeout",
			wantEvidence: []string{"(Started): process 4242 started", "log: INFO 12-03 13:02:40 [backends.py:548] Compiling a graph"},
			wantSummary:  []string{"Starting", "2m30s", "Compiling a graph"},
			wantNext:     []string{"--ready-timeout"}})
	}

	// ---- inference ----
	inferenceReport := func(checks []Check) *Report {
		f := dgService(v1.ServiceReady, "EngineReady", "1 of 1 replicas ready at 127.0.0.1:41234")
		f.Endpoints = []v1.Endpoint{{Replica: 0, Address: "127.0.0.1:41234", Engine: "vllm", Ready: true, Phase: "Ready", Served: []string{"mimo-vl-7b-rl"}}}
		var failed []string
		for _, c := range checks {
			if c.Status == Failed {
				failed = append(failed, c.Path+" "+c.Name+": "+c.Detail)
			}
		}
		r := dgReport(StepInference, "checks failed: "+failed[0], f)
		dgStep(r, StepInference).Checks = checks
		dgStep(r, StepInference).Evidence = failed
		return r
	}
	{
		checks := []Check{
			{Name: "models", Path: "engine", Status: Passed, Detail: `lists "mimo-vl-7b-rl"`},
			{Name: "chat", Path: "engine", Status: Failed, Detail: "HTTP 400 BadRequestError: As of transformers v4.44, default chat template is no longer allowed, so you must provide a chat template if the tokenizer does not define one."},
			{Name: "stream", Path: "engine", Status: Failed, Detail: "HTTP 400 BadRequestError: As of transformers v4.44, default chat template is no longer allowed"},
		}
		add(dgCase{name: "engine failed inference", report: inferenceReport(checks), wantCode: "EngineFailedInference",
			wantEvidence: []string{"engine chat: failed: HTTP 400 BadRequestError: As of transformers v4.44", "engine: 1 check(s) passed, 2 failed at 127.0.0.1:41234"},
			wantSummary:  []string{"chat, stream"},
			wantNext:     []string{"curl -s http://127.0.0.1:41234/v1/models"}})
	}
	{
		checks := []Check{
			{Name: "models", Path: "engine", Status: Passed},
			{Name: "chat", Path: "engine", Status: Passed},
			{Name: "models", Path: "gateway", Status: Failed, Detail: `model_not_found: /v1/models does not list "default/test-mimo-vl-7b-rl" (it lists )`},
			{Name: "chat", Path: "gateway", Status: Failed, Detail: "HTTP 404 model_not_found: The model `default/test-mimo-vl-7b-rl` does not exist or you do not have access to it. No models are available: apply a Route or an InferenceService and wait for it to be Ready."},
		}
		add(dgCase{name: "gateway route missing", report: inferenceReport(checks), wantCode: "GatewayRouteMissing",
			wantEvidence: []string{"gateway chat: failed: HTTP 404 model_not_found", "engine: all 2 direct check(s) passed"},
			wantSummary:  []string{"default/test-mimo-vl-7b-rl"},
			wantNext:     []string{"/v1/models"}})
	}
	{
		checks := []Check{
			{Name: "models", Path: "engine", Status: Passed},
			{Name: "chat", Path: "engine", Status: Passed},
			{Name: "chat", Path: "gateway", Status: Failed, Detail: `HTTP 503 upstream_unavailable: model default/test-mimo-vl-7b-rl: 1 attempt(s) failed; last: no ready replica for model "default/test-mimo-vl-7b-rl" (every target and fallback is down, ejected or not ready)`},
		}
		add(dgCase{name: "gateway failed", report: inferenceReport(checks), wantCode: "GatewayFailed",
			wantEvidence: []string{"upstream_unavailable"},
			wantSummary:  []string{"upstream_unavailable"}})
	}

	{
		// Requests through the gateway reach the model; only its list lacks the name.
		checks := []Check{
			{Name: "models", Path: "engine", Status: Passed},
			{Name: "chat", Path: "engine", Status: Passed},
			{Name: "models", Path: "gateway", Status: Failed, Detail: `model_not_found: /v1/models does not list "default/test-mimo-vl-7b-rl" (it lists mimo-vl-7b-rl, test-mimo-vl-7b-rl)`},
			{Name: "chat", Path: "gateway", Status: Passed},
		}
		add(dgCase{name: "gateway list incomplete", report: inferenceReport(checks), wantCode: "GatewayFailed",
			wantEvidence: []string{"gateway models: failed"},
			wantSummary:  []string{"/v1/models list"}})
	}

	// ---- nothing specific ----
	{
		f := dgFacts(v1.ModelPending, "", "")
		f.DownloadTimedOut, f.NoProgressFor = true, 30*time.Minute
		r := dgReport(StepDownload, "not Ready after 30m0s (phase Pending, 0 B of 0 B)", f)
		dgStep(r, StepDownload).Evidence = []string{"phase Pending"}
		add(dgCase{name: "unknown", report: r, wantCode: "Unknown",
			wantEvidence: []string{"step download failed: not Ready after 30m0s", "phase Pending", "model mimo-vl-7b-rl: Pending"},
			wantSummary:  []string{"Pending"},
			wantNext:     []string{"citadel describe model mimo-vl-7b-rl", "citadel events --for model/mimo-vl-7b-rl"}})
	}
	{
		// A stall the model cannot explain, and the report's systemic probe found the hub down.
		f := dgFacts(v1.ModelDownloading, "Resolving", "resolving the revision and listing files")
		f.NoProgressFor = 61 * time.Second
		r := dgReport(StepDownload, "DownloadStalled: no bytes for 1m1s at 0 B of 0 B", f)
		r.Systemic = []SystemicCheck{{Name: CheckHub, Detail: "unreachable: GET https://huggingface.co/api/models?limit=1: dial tcp 18.239.50.3:443: i/o timeout"}}
		add(dgCase{name: "systemic (one report)", report: r, wantCode: "SystemicHubUnreachable",
			wantEvidence: []string{"systemic check hub: FAILED", "i/o timeout", "stuck mimo-vl-7b-rl: Downloading (Resolving)"},
			wantSummary:  []string{"hub is unreachable"}})
	}

	// ---- the test's own steps ----
	{
		r := dgReport(StepApply, `BaseModel "mimo-vl-7b-rl" is invalid: spec.storage.storageUri: Required value`, dgFacts("", "", ""))
		dgStep(r, StepApply).Evidence = []string{"spec.storage.storageUri: Required value"}
		add(dgCase{name: "apply refused", report: r, wantCode: "ApplyFailed",
			wantEvidence: []string{"storageUri: Required value"},
			wantNext:     []string{"--dry-run"}})
	}
	{
		r := dgReport(StepApply, "dial tcp 127.0.0.1:8081: connect: connection refused", dgFacts("", "", ""))
		r.Result = ResultError
		dgStep(r, StepApply).Evidence = []string{"GET http://127.0.0.1:8081/api/v1/version: connection refused"}
		add(dgCase{name: "could not run", report: r, wantCode: "TestCouldNotRun",
			wantEvidence: []string{"connection refused"},
			wantNext:     []string{"citadel version"}})
	}
	{
		f := dgService(v1.ServiceReady, "EngineReady", "1 of 1 replicas ready at 127.0.0.1:41234")
		r := dgReport(StepCleanup, "deleting inferenceservice default/test-mimo-vl-7b-rl: context deadline exceeded", f)
		dgStep(r, StepCleanup).Status, dgStep(r, StepCleanup).Summary = Failed, "deleting inferenceservice default/test-mimo-vl-7b-rl: context deadline exceeded"
		dgStep(r, StepCleanup).Evidence = []string{"context deadline exceeded"}
		add(dgCase{name: "cleanup failed", report: r, wantCode: "CleanupFailed",
			wantEvidence: []string{"context deadline exceeded"},
			wantNext:     []string{"citadel delete isvc test-mimo-vl-7b-rl -n default"}})
	}
	return cs
}

func TestDiagnoseCodes(t *testing.T) {
	for _, tc := range dgCases() {
		t.Run(tc.name, func(t *testing.T) {
			c := Diagnose(tc.report)
			if c == nil {
				t.Fatal("no cause")
			}
			dump := func() string {
				return "summary: " + c.Summary + "\nevidence:\n  " + strings.Join(c.Evidence, "\n  ") + "\nnext:\n  " + strings.Join(c.NextSteps, "\n  ")
			}
			if c.Code != tc.wantCode {
				t.Fatalf("code %s, want %s\n%s", c.Code, tc.wantCode, dump())
			}
			if c.Summary == "" || strings.Contains(c.Summary, "\n") {
				t.Errorf("summary must be one line: %q", c.Summary)
			}
			if len(c.Evidence) == 0 || len(c.NextSteps) == 0 {
				t.Errorf("evidence and next steps must not be empty\n%s", dump())
			}
			if c.Step == "" {
				t.Error("no step")
			}
			for _, want := range tc.wantEvidence {
				if !containsLine(c.Evidence, want) {
					t.Errorf("no evidence line contains %q\n%s", want, dump())
				}
			}
			for _, want := range tc.wantSummary {
				if !strings.Contains(c.Summary, want) {
					t.Errorf("summary lacks %q\n%s", want, dump())
				}
			}
			for _, want := range tc.wantNext {
				if !containsLine(c.NextSteps, want) {
					t.Errorf("no next step contains %q\n%s", want, dump())
				}
			}
		})
	}
}

func containsLine(lines []string, sub string) bool {
	for _, l := range lines {
		if strings.Contains(l, sub) {
			return true
		}
	}
	return false
}

// diagnosedKinds are the kinds whose status a report's facts carry.
var diagnosedKinds = map[string]bool{v1.KindBaseModel: true, v1.KindClusterBaseModel: true, v1.KindInferenceService: true}

// catalogueCase is a report whose model (or service) stopped at reason, as its writer would
// leave it, with a message that names the reason and nothing more: what the diagnosis says
// comes from the catalogue, not from the words of a message.
func catalogueCase(ri v1.ReasonInfo, kind string) *Report {
	msg := ri.Name + ": the message of " + ri.Writers[0]
	if kind != v1.KindInferenceService {
		return dgReport(StepDownload, msg, dgFacts(v1.ModelFailed, ri.Name, msg))
	}
	return dgReport(StepReady, msg, dgService(v1.ServiceFailed, ri.Name, msg))
}

// Every reason of api/v1 that says a model or a service is failed or stuck has a diagnosis:
// a row of the cause catalogue (modelCauses, serviceCauses) and, from a report stopped at
// it, a cause of its own (not Unknown, not the test's own timeout) with a summary,
// evidence and next steps. A new reason in api/v1 fails here until its row is written.
func TestEveryReasonHasADiagnosis(t *testing.T) {
	n := 0
	for _, ri := range v1.Reasons() {
		if !ri.Problem || ri.Event {
			continue
		}
		for _, kind := range ri.Kinds {
			if !diagnosedKinds[kind] {
				continue
			}
			isvc := kind == v1.KindInferenceService
			if isvc && ri.Name == v1.ReasonModelDisabled {
				// the classifier's own: read before any step, for the model and the service alike
			} else if _, ok := serviceCauses[ri.Name]; isvc && !ok {
				t.Errorf("%s (written by %s on %s): no row in serviceCauses", ri.Name, strings.Join(ri.Writers, ", "), kind)
				continue
			} else if _, ok := modelCauses[ri.Name]; !isvc && !ok && ri.Name != v1.ReasonModelDisabled {
				t.Errorf("%s (written by %s on %s): no row in modelCauses", ri.Name, strings.Join(ri.Writers, ", "), kind)
				continue
			}
			n++
			c := Diagnose(catalogueCase(ri, kind))
			switch {
			case c == nil:
				t.Errorf("%s on %s: no cause", ri.Name, kind)
			case c.Code == CodeUnknown || c.Code == CodeReadinessTimeout:
				t.Errorf("%s on %s: the generic cause %s: %s", ri.Name, kind, c.Code, c.Summary)
			case c.Summary == "" || len(c.Evidence) == 0 || len(c.NextSteps) == 0:
				t.Errorf("%s on %s: cause %s lacks a summary, evidence or next steps: %+v", ri.Name, kind, c.Code, c)
			}
			if isvc {
				break // one kind of model is enough
			}
		}
	}
	if n < 40 {
		t.Errorf("only %d reasons walked: is the catalogue empty?", n)
	}
}

// Every cause code Diagnose gives is reached by a case: a hand-written one (with the real
// message formats of its writer), or the catalogue's. The codes are the Code constants of
// diagnose.go and the codes of the catalogue's rows.
func TestDiagnoseCoversEveryCode(t *testing.T) {
	got := map[string]bool{}
	for _, tc := range dgCases() {
		got[tc.wantCode] = true
	}
	for _, ri := range v1.Reasons() {
		for _, kind := range ri.Kinds {
			if diagnosedKinds[kind] {
				if c := Diagnose(catalogueCase(ri, kind)); c != nil {
					got[c.Code] = true
				}
			}
		}
	}
	codes := map[string]bool{} // the service's rows name their codes in code: the catalogue's cases reach them
	for reason, row := range modelCauses {
		codes[orDefault(row.code, reason)] = true
	}
	f, err := parser.ParseFile(token.NewFileSet(), "diagnose.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	ast.Inspect(f, func(n ast.Node) bool {
		if vs, ok := n.(*ast.ValueSpec); ok {
			for i, id := range vs.Names {
				if strings.HasPrefix(id.Name, "Code") && i < len(vs.Values) {
					if lit, ok := vs.Values[i].(*ast.BasicLit); ok {
						v, _ := strconv.Unquote(lit.Value)
						codes[v] = true
					}
				}
			}
		}
		return true
	})
	delete(codes, CodeSystemic) // a prefix: TestDiagnoseSystemic* cover Systemic + each check's code
	for code := range codes {
		// AgentStalled is only ever a systemic check's code: TestDiagnoseSystemicRules.
		if !got[code] && !got[CodeSystemic+code] && code != CodeAgentStalled {
			t.Errorf("no case gives %s", code)
		}
	}
}

func TestDiagnosePassedIsNil(t *testing.T) {
	r := dgReport("", "", dgService(v1.ServiceReady, "EngineReady", "1 of 1 replicas ready at 127.0.0.1:41234"))
	r.Result = ResultPassed
	if c := Diagnose(r); c != nil {
		t.Fatalf("cause %+v for a passed report", c)
	}
	if Diagnose(nil) != nil {
		t.Fatal("cause for nil")
	}
}

// Diagnose is pure: the same report gives the same cause, and the report is not changed.
func TestDiagnoseDeterministic(t *testing.T) {
	for _, tc := range dgCases() {
		before := dgClone(tc.report)
		a, b := Diagnose(tc.report), Diagnose(tc.report)
		if !reflect.DeepEqual(a, b) {
			t.Errorf("%s: two runs differ:\n%+v\n%+v", tc.name, a, b)
		}
		if !reflect.DeepEqual(before, dgClone(tc.report)) {
			t.Errorf("%s: Diagnose changed the report", tc.name)
		}
	}
}

func dgClone(r *Report) Report {
	c := *r
	c.Steps = nil
	for _, s := range r.Steps {
		s.Evidence = append([]string(nil), s.Evidence...)
		s.Checks = append([]Check(nil), s.Checks...)
		c.Steps = append(c.Steps, s)
	}
	c.Facts.ModelEvents = append([]v1.Event(nil), r.Facts.ModelEvents...)
	c.Facts.LogTail = append([]string(nil), r.Facts.LogTail...)
	c.Facts.Placement = append([]string(nil), r.Facts.Placement...)
	return c
}

// The seed report's failure, diagnosed from one report: not five guesses, one cause.
func TestDiagnoseNeverLists(t *testing.T) {
	for _, tc := range dgCases() {
		c := Diagnose(tc.report)
		for _, bad := range []string{"Possible causes", "may be", "might be"} {
			if strings.Contains(c.Summary, bad) {
				t.Errorf("%s: summary guesses: %q", tc.name, c.Summary)
			}
		}
	}
}

// ---- the systemic probe ----

func deadEndpoint(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

func findCheck(t *testing.T, checks []SystemicCheck, name string) SystemicCheck {
	t.Helper()
	for _, c := range checks {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no %s check in %+v", name, checks)
	return SystemicCheck{}
}

// fakeHub answers /api/models and /api/whoami-v2; good is the one token it accepts.
func fakeHub(t *testing.T, good string) *httptest.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/models", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("limit") != "1" {
			t.Errorf("query %q, want limit=1", r.URL.RawQuery)
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`[{"id":"openai-community/gpt2"}]`))
	})
	mux.HandleFunc("GET /api/whoami-v2", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.Header.Get("Authorization") != "Bearer "+good {
			w.WriteHeader(http.StatusUnauthorized)
			w.Write([]byte(`{"error":"Invalid credentials in Authorization header"}`))
			return
		}
		w.Write([]byte(`{"type":"user","name":"citadel-bot"}`))
	})
	s := httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

func TestSystemicProbeHubDown(t *testing.T) {
	checks := SystemicProbe(t.Context(), ProbeInput{HubEndpoint: deadEndpoint(t), Token: "hf_secret_value"})
	hub := findCheck(t, checks, CheckHub)
	if hub.Passed || !strings.Contains(hub.Detail, "/api/models?limit=1") || !strings.Contains(hub.Detail, "refused") {
		t.Errorf("hub check %+v, want a failure naming the request and the error", hub)
	}
	if tok := findCheck(t, checks, CheckToken); tok.Passed || !strings.HasPrefix(tok.Detail, "not checked") {
		t.Errorf("token check %+v, want not checked", tok)
	}
}

func TestSystemicProbeHub5xx(t *testing.T) {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.Error(w, "bad gateway", http.StatusBadGateway) }))
	defer s.Close()
	hub := findCheck(t, SystemicProbe(t.Context(), ProbeInput{HubEndpoint: s.URL}), CheckHub)
	if hub.Passed || !strings.Contains(hub.Detail, "502") {
		t.Errorf("hub check %+v, want a failure with 502", hub)
	}
}

// A mirror without /api/models: HEAD on the endpoint decides.
func TestSystemicProbeMirrorHead(t *testing.T) {
	var head bool
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodHead && r.URL.Path == "/" {
			head = true
			return
		}
		http.NotFound(w, r)
	}))
	defer s.Close()
	hub := findCheck(t, SystemicProbe(t.Context(), ProbeInput{HubEndpoint: s.URL + "/"}), CheckHub)
	if !hub.Passed || !head {
		t.Errorf("hub check %+v (HEAD sent: %v), want passed by HEAD", hub, head)
	}
}

func TestSystemicProbeToken(t *testing.T) {
	hub := fakeHub(t, "hf_good")
	bad := SystemicProbe(t.Context(), ProbeInput{HubEndpoint: hub.URL, Token: "hf_bad_secret", Client: hub.Client()})
	if h := findCheck(t, bad, CheckHub); !h.Passed {
		t.Fatalf("hub check %+v, want passed", h)
	}
	tok := findCheck(t, bad, CheckToken)
	if tok.Passed || !strings.Contains(tok.Detail, "401") || !strings.Contains(tok.Detail, "Invalid credentials") {
		t.Errorf("token check %+v, want a 401 failure", tok)
	}
	for _, c := range bad {
		if strings.Contains(c.Detail, "hf_bad_secret") {
			t.Errorf("check %s shows the token: %s", c.Name, c.Detail)
		}
	}
	good := findCheck(t, SystemicProbe(t.Context(), ProbeInput{HubEndpoint: hub.URL, Token: "hf_good"}), CheckToken)
	if !good.Passed || !strings.Contains(good.Detail, "citadel-bot") {
		t.Errorf("token check %+v, want passed with the account", good)
	}
	// Without a token there is nothing to check.
	for _, c := range SystemicProbe(t.Context(), ProbeInput{HubEndpoint: hub.URL}) {
		if c.Name == CheckToken {
			t.Errorf("token check without a token: %+v", c)
		}
	}
}

func TestSystemicProbeStorage(t *testing.T) {
	dir := t.TempDir()
	ok := findCheck(t, SystemicProbe(t.Context(), ProbeInput{HubEndpoint: deadEndpoint(t), StoragePath: dir, NeedBytes: 1 << 20}), CheckStorage)
	if !ok.Passed || !strings.Contains(ok.Detail, "writable") {
		t.Errorf("storage check %+v, want passed", ok)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("the probe left %d file(s) behind", len(left))
	}
	// A path that does not exist yet: its nearest parent is checked.
	sub := findCheck(t, SystemicProbe(t.Context(), ProbeInput{HubEndpoint: deadEndpoint(t), StoragePath: filepath.Join(dir, "models", "org", "repo")}), CheckStorage)
	if !sub.Passed || !strings.Contains(sub.Detail, "does not exist yet") {
		t.Errorf("storage check %+v, want passed on the parent", sub)
	}
	full := findCheck(t, SystemicProbe(t.Context(), ProbeInput{HubEndpoint: deadEndpoint(t), StoragePath: dir, NeedBytes: 1 << 62}), CheckStorage)
	if full.Passed || !strings.HasPrefix(full.Detail, "not enough space: need") {
		t.Errorf("storage check %+v, want not enough space", full)
	}
	if got := checkCode(full); got != "InsufficientStorage" {
		t.Errorf("code %s, want InsufficientStorage", got)
	}
	if os.Geteuid() != 0 {
		ro := filepath.Join(dir, "ro")
		if err := os.Mkdir(ro, 0o500); err != nil {
			t.Fatal(err)
		}
		c := findCheck(t, SystemicProbe(t.Context(), ProbeInput{HubEndpoint: deadEndpoint(t), StoragePath: ro}), CheckStorage)
		if c.Passed || checkCode(c) != "StorageNotWritable" {
			t.Errorf("storage check %+v, want not writable", c)
		}
	}
}

// dgStuck are the seed report's three models, stuck In_Transit at once.
func dgStuck() []Facts {
	var out []Facts
	for _, name := range []string{"internlm2-7b-reward", "mimo-vl-7b-rl", "minicpm-v-2-6"} {
		out = append(out, Facts{Model: name, ModelKind: v1.KindClusterBaseModel, ModelPhase: v1.ModelDownloading, ModelReason: "Resolving",
			ModelMessage: "resolving the revision and listing files", NoProgressFor: 31 * time.Minute, DownloadTimedOut: true})
	}
	return out
}

func TestSystemicProbeAgent(t *testing.T) {
	stuck := dgStuck()
	c := findCheck(t, SystemicProbe(t.Context(), ProbeInput{HubEndpoint: deadEndpoint(t), Stuck: stuck}), CheckAgent)
	if c.Passed || !strings.Contains(c.Detail, "no bytes moved in the last minute for any of 3") {
		t.Errorf("agent check %+v, want failed", c)
	}
	for _, f := range stuck {
		if !strings.Contains(c.Detail, f.Model) {
			t.Errorf("agent check does not name %s: %s", f.Model, c.Detail)
		}
	}
	stuck[1].BytesDone, stuck[1].BytesTotal, stuck[1].NoProgressFor = 1e9, 16e9, 5*time.Second
	if c := findCheck(t, SystemicProbe(t.Context(), ProbeInput{HubEndpoint: deadEndpoint(t), Stuck: stuck}), CheckAgent); !c.Passed {
		t.Errorf("agent check %+v, want passed: one model moves", c)
	}
	waiting := dgStuck()
	for i := range waiting {
		waiting[i].ModelPhase, waiting[i].ModelReason = v1.ModelPending, "AwaitingAgent"
	}
	c = findCheck(t, SystemicProbe(t.Context(), ProbeInput{HubEndpoint: deadEndpoint(t), Stuck: waiting}), CheckAgent)
	if c.Passed || checkCode(c) != "NoModelAgent" {
		t.Errorf("agent check %+v, want no model agent", c)
	}
}

// The seed: three models stuck at once on an unreachable hub get one systemic cause.
func TestDiagnoseSystemicHubUnreachable(t *testing.T) {
	stuck := dgStuck()
	checks := SystemicProbe(t.Context(), ProbeInput{HubEndpoint: deadEndpoint(t), Token: "hf_x", StoragePath: t.TempDir(), NeedBytes: 1 << 20, Stuck: stuck})
	c := DiagnoseSystemic(stuck, checks)
	if c == nil {
		t.Fatalf("no cause from %+v", checks)
	}
	if c.Code != "SystemicHubUnreachable" || !c.Systemic || c.Step != StepDownload {
		t.Errorf("cause %s systemic=%v step=%s, want SystemicHubUnreachable, systemic, download", c.Code, c.Systemic, c.Step)
	}
	for _, f := range stuck {
		if !strings.Contains(c.Summary, f.Model) {
			t.Errorf("summary does not name %s: %s", f.Model, c.Summary)
		}
		if !containsLine(c.Evidence, "stuck "+f.Model) {
			t.Errorf("evidence does not show %s: %v", f.Model, c.Evidence)
		}
	}
	if !strings.HasPrefix(c.Evidence[0], "systemic check hub: FAILED") {
		t.Errorf("first evidence %q, want the failing hub check", c.Evidence[0])
	}
	if !containsLine(c.Evidence, "systemic check storage: ok") || !containsLine(c.Evidence, "systemic check agent: FAILED") {
		t.Errorf("evidence lacks the other checks: %v", c.Evidence)
	}
	if len(c.NextSteps) == 0 || !containsLine(c.NextSteps, "citadel test model minicpm-v-2-6") {
		t.Errorf("next steps %v, want commands that include rerunning each model", c.NextSteps)
	}
	// The agent's own words for a dead hub: every model Failed with ConnectionFailed.
	refused := dgStuck()
	for i := range refused {
		refused[i].ModelPhase, refused[i].ModelReason = v1.ModelFailed, "ConnectionFailed"
		refused[i].ModelMessage = `ConnectionFailed: Get "http://127.0.0.1:9/api/models/org/` + refused[i].Model + `/revision/main?…": dial tcp 127.0.0.1:9: connect: connection refused (attempt 1; retrying in 10s; partial files are kept and resumed)`
	}
	if c := DiagnoseSystemic(refused, SystemicProbe(t.Context(), ProbeInput{HubEndpoint: deadEndpoint(t), Stuck: refused})); c == nil || c.Code != "SystemicHubUnreachable" {
		t.Errorf("cause %+v, want SystemicHubUnreachable", c)
	} else if !containsLine(c.Evidence, "connection refused (attempt 1") {
		t.Errorf("evidence lacks the agent's message: %v", c.Evidence)
	}
}

func TestDiagnoseSystemicRules(t *testing.T) {
	stuck := dgStuck()
	hubDown := []SystemicCheck{{Name: CheckHub, Detail: "unreachable: GET x: connection refused"}, {Name: CheckAgent, Detail: "no bytes moved"}}
	if c := DiagnoseSystemic(stuck[:1], hubDown); c != nil {
		t.Errorf("one stuck model: %+v, want nil (not systemic)", c)
	}
	allOK := []SystemicCheck{{Name: CheckHub, Passed: true}, {Name: CheckToken, Passed: true}, {Name: CheckStorage, Passed: true}, {Name: CheckAgent, Passed: true}}
	if c := DiagnoseSystemic(stuck, allOK); c != nil {
		t.Errorf("every check passed: %+v, want nil", c)
	}
	// The token comes before the agent: a stalled agent is the symptom.
	tokenBad := []SystemicCheck{{Name: CheckAgent, Detail: "no bytes moved"}, {Name: CheckHub, Passed: true}, {Name: CheckToken, Detail: "token rejected: GET https://huggingface.co/api/whoami-v2: 401 Unauthorized"}}
	if c := DiagnoseSystemic(stuck, tokenBad); c == nil || c.Code != "SystemicUnauthorized" {
		t.Errorf("cause %+v, want SystemicUnauthorized", c)
	}
	agentOnly := []SystemicCheck{{Name: CheckHub, Passed: true}, {Name: CheckAgent, Detail: "no bytes moved in the last minute for any of 3 stuck models"}}
	if c := DiagnoseSystemic(stuck, agentOnly); c == nil || c.Code != "SystemicAgentStalled" {
		t.Errorf("cause %+v, want SystemicAgentStalled", c)
	}
}

// The probe's requests end within their timeout even when the hub never answers.
func TestSystemicProbeContext(t *testing.T) {
	block := make(chan struct{})
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	}))
	defer s.Close()
	defer close(block)
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	hub := findCheck(t, SystemicProbe(ctx, ProbeInput{HubEndpoint: s.URL}), CheckHub)
	if hub.Passed || time.Since(start) > 3*time.Second {
		t.Errorf("hub check %+v after %s, want a prompt failure", hub, time.Since(start))
	}
}
