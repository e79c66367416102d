package selection

import (
	"errors"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/internal/config"
)

const omeFixtures = "../config/testdata/good/ome"

// fixtures loads the MiMo-VL ClusterServingRuntime and ClusterBaseModel
// exactly as shipped by OME (the model as written, before the agent ran).
func fixtures(t *testing.T) (Runtime, Model) {
	t.Helper()
	items, errs := config.Load([]string{
		filepath.Join(omeFixtures, "runtimes/srt/XiaomiMiMo/mimo-vl-7b-rl-rt.yaml"),
		filepath.Join(omeFixtures, "models/XiaomiMiMo/MiMo-VL-7B-RL.yaml"),
	}, config.LoadOptions{})
	if errs.Err() != nil {
		t.Fatal(errs)
	}
	rt := items[0].Object.(*v1.ClusterServingRuntime)
	m := items[1].Object.(*v1.ClusterBaseModel)
	return Runtime{Name: rt.Name, Spec: rt.Spec}, Model{Name: m.Name, Spec: m.Spec}
}

func ptr[T any](v T) *T { return &v }

// filled is the MiMo model as the agent fills it.
func filled(m Model, edits ...func(*v1.BaseModelSpec)) Model {
	m.Spec.ModelArchitecture = ptr("Qwen2_5_VLForConditionalGeneration")
	m.Spec.ModelFormat = v1.ModelFormat{Name: "safetensors", Version: ptr("1.0.0"), Weight: 1}
	m.Spec.ModelFramework = &v1.ModelFrameworkSpec{Name: "transformers", Version: ptr("4.41.2"), Weight: 1}
	m.Spec.ModelParameterSize = ptr(v1.ParameterSize("7B"))
	for _, e := range edits {
		e(&m.Spec)
	}
	return m
}

// entry is the MiMo runtime's format with autoSelect on, then edits.
func entry(edits ...func(*v1.SupportedModelFormat)) v1.SupportedModelFormat {
	f := v1.SupportedModelFormat{
		ModelFormat:       &v1.ModelFormat{Name: "safetensors", Version: ptr("1.0.0")},
		ModelFramework:    &v1.ModelFrameworkSpec{Name: "transformers", Version: ptr("4.41.2")},
		ModelArchitecture: ptr("Qwen2_5_VLForConditionalGeneration"),
		AutoSelect:        ptr(true),
	}
	for _, e := range edits {
		e(&f)
	}
	return f
}

func rt(name string, namespaced bool, formats ...v1.SupportedModelFormat) Runtime {
	return Runtime{Name: name, Namespaced: namespaced, Spec: v1.ServingRuntimeSpec{SupportedModelFormats: formats}}
}

func sized(r Runtime, lo, hi string) Runtime {
	r.Spec.ModelSizeRange = &v1.ModelSizeRange{Min: ptr(v1.ParameterSize(lo)), Max: ptr(v1.ParameterSize(hi))}
	return r
}

func disabled(r Runtime) Runtime { r.Spec.Disabled = ptr(true); return r }

func arch(a string) func(*v1.SupportedModelFormat) {
	return func(f *v1.SupportedModelFormat) { f.ModelArchitecture = &a }
}
func framework(version, op string) func(*v1.SupportedModelFormat) {
	return func(f *v1.SupportedModelFormat) {
		f.ModelFramework.Version = &version
		if op != "" {
			f.ModelFramework.Operator = &op
		}
	}
}
func priority(p int32) func(*v1.SupportedModelFormat) {
	return func(f *v1.SupportedModelFormat) { f.Priority = &p }
}
func manual(f *v1.SupportedModelFormat) { f.AutoSelect = ptr(false) }

func TestSelect(t *testing.T) {
	mimoRT, raw := fixtures(t)
	mimo := filled(raw)
	cluster, ns := false, true
	tests := []struct {
		name     string
		model    Model
		runtimes []Runtime
		explicit string
		want     string // the selected runtime, "" when Select fails
		format   int    // index of the selected format
		err      string // the Error's Reason
		msg      string // the Error's message, exactly when it starts with "=", else a substring
		order    []string
		reasons  []string // substrings of the candidates' reasons, in order ("" = compatible)
		scores   []int64
	}{{
		name: "mimo fixture named explicitly", model: mimo, runtimes: []Runtime{mimoRT}, explicit: "srt-mimo-vl-7b-rl",
		want: "srt-mimo-vl-7b-rl", order: []string{"srt-mimo-vl-7b-rl"}, reasons: []string{""}, scores: []int64{2},
	}, {
		name: "mimo fixture is not auto-selected", model: mimo, runtimes: []Runtime{mimoRT},
		err: ReasonNoSupportingRuntime,
		msg: "=no runtime can serve model mimo-vl-7b-rl: srt-mimo-vl-7b-rl: autoSelect is false on every supported format (name it in spec.runtime.name) — fix: name it in the InferenceService, `spec: {runtime: {name: srt-mimo-vl-7b-rl}}`",
	}, {
		name: "message names every rejection", model: mimo,
		runtimes: []Runtime{rt("srt-llama", cluster, entry(arch("LlamaForCausalLM"))), rt("srt-qwen", cluster, entry(manual))},
		err:      ReasonNoSupportingRuntime,
		msg:      "=no runtime can serve model mimo-vl-7b-rl: srt-llama: modelArchitecture LlamaForCausalLM ≠ Qwen2_5_VLForConditionalGeneration; srt-qwen: autoSelect is false on every supported format (name it in spec.runtime.name) — fix: name it in the InferenceService, `spec: {runtime: {name: srt-qwen}}`",
	}, {
		name: "metadata not yet filled", model: raw, runtimes: []Runtime{mimoRT}, explicit: "srt-mimo-vl-7b-rl",
		err: ReasonRuntimeIncompatible,
		msg: "=runtime srt-mimo-vl-7b-rl cannot serve model mimo-vl-7b-rl: model metadata not yet known (modelArchitecture, modelFormat, modelFramework unset): wait for the model to be Ready, or set them in the model's spec",
	}, {
		name: "newer model than runtime, Equal", model: filled(raw, func(s *v1.BaseModelSpec) { s.ModelFramework.Version = ptr("4.45.0") }),
		runtimes: []Runtime{mimoRT}, explicit: "srt-mimo-vl-7b-rl", err: ReasonRuntimeIncompatible,
		msg: "modelFramework transformers version 4.41.2 ≠ 4.45.0 (OME compares versions for equality; operator: GreaterThanOrEqual would not help, as it needs the runtime's version to be at least the model's: this model needs a newer runtime)",
	}, {
		name: "older model than runtime, Equal", model: mimo, runtimes: []Runtime{rt("srt", cluster, entry(framework("4.45.0", "")))},
		err: ReasonNoSupportingRuntime,
		msg: "srt: modelFramework transformers version 4.45.0 ≠ 4.41.2 (OME compares versions for equality unless the runtime sets operator: GreaterThanOrEqual)",
	}, {
		name: "GreaterThanOrEqual accepts an older model", model: mimo,
		runtimes: []Runtime{rt("srt", cluster, entry(framework("4.45.0", "GreaterThanOrEqual")))},
		want:     "srt", order: []string{"srt"}, reasons: []string{""},
	}, {
		name: "GreaterThanOrEqual rejects a newer model", model: mimo,
		runtimes: []Runtime{rt("srt", cluster, entry(framework("4.40.0", "GreaterThanOrEqual")))},
		err:      ReasonNoSupportingRuntime,
		msg:      "srt: modelFramework transformers version 4.40.0 < 4.41.2: operator GreaterThanOrEqual needs the runtime's version to be at least the model's",
	}, {
		name: "GreaterThanOrEqual needs versions written alike", model: mimo,
		runtimes: []Runtime{rt("srt", cluster, entry(framework("4.45", "GreaterThanOrEqual")))},
		err:      ReasonNoSupportingRuntime, msg: "version 4.45 vs 4.41.2: with operator GreaterThanOrEqual OME compares only versions written alike",
	}, {
		name: "dev version forces equality", model: mimo,
		runtimes: []Runtime{rt("srt", cluster, entry(framework("4.41.2.dev0", "GreaterThanOrEqual")))},
		err:      ReasonNoSupportingRuntime, msg: "version 4.41.2.dev0 ≠ 4.41.2 (a pre-release, dev or build version is compared for equality whatever the operator)",
	}, {
		name: "an unparsable version never matches, even itself", model: filled(raw, func(s *v1.BaseModelSpec) { s.ModelFramework.Version = ptr("latest") }),
		runtimes: []Runtime{rt("srt", cluster, entry(framework("latest", "")))}, explicit: "srt", err: ReasonRuntimeIncompatible,
		msg: `modelFramework transformers version latest ≠ latest ("latest" is not a version OME can compare, so it never matches)`,
	}, {
		name: "size out of range", model: filled(raw, func(s *v1.BaseModelSpec) { s.ModelParameterSize = ptr(v1.ParameterSize("8.29B")) }),
		runtimes: []Runtime{mimoRT}, explicit: "srt-mimo-vl-7b-rl", err: ReasonRuntimeIncompatible,
		msg: "=runtime srt-mimo-vl-7b-rl cannot serve model mimo-vl-7b-rl: modelSizeRange.max 8B < model's modelParameterSize 8.29B (OME compares the exact parameter count, embeddings and any vision tower included, not the size in the model's name) — fix: in ClusterServingRuntime srt-mimo-vl-7b-rl set `spec: {modelSizeRange: {min: 6B, max: 8.29B}}`",
	}, {
		name: "closest size range wins a tie", model: mimo,
		runtimes: []Runtime{sized(rt("wide", cluster, entry()), "1B", "70B"), sized(rt("narrow", cluster, entry()), "6B", "8B"), sized(rt("small", cluster, entry()), "1B", "3B")},
		want:     "narrow", order: []string{"narrow", "wide", "small"}, reasons: []string{"", "", "=modelSizeRange.max 3B < model's modelParameterSize 7B"},
	}, {
		name: "namespaced before cluster whatever the score", model: mimo,
		runtimes: []Runtime{rt("cluster-high", cluster, entry(priority(5))), rt("ns-low", ns, entry()), rt("ns-off", ns, entry(arch("Other")))},
		want:     "ns-low", order: []string{"ns-low", "cluster-high", "ns-off"}, reasons: []string{"", "", "modelArchitecture Other ≠"}, scores: []int64{2, 10, 0},
	}, {
		name: "score orders by weight × priority", model: mimo,
		runtimes: []Runtime{
			rt("plain", cluster, entry()),
			rt("prio", cluster, entry(priority(3))),
			rt("weighted", cluster, entry(func(f *v1.SupportedModelFormat) { f.ModelFormat.Weight = 4 })),
			rt("no-framework", cluster, entry(func(f *v1.SupportedModelFormat) { f.ModelFramework = nil })),
		},
		want: "prio", order: []string{"prio", "weighted", "plain", "no-framework"}, scores: []int64{6, 5, 2, 0},
		reasons: []string{"", "", "", "the model's modelFramework is transformers but the runtime's format names none"},
	}, {
		name: "best-scoring format of a named runtime, autoSelect not required", model: mimo,
		runtimes: []Runtime{rt("multi", ns, entry(manual, arch("Other")), entry(manual), entry(manual, priority(2)))},
		explicit: "multi", want: "multi", format: 2, scores: []int64{4},
	}, {
		name: "only autoSelect formats count", model: mimo,
		runtimes: []Runtime{rt("multi", cluster, entry(arch("Other")), entry(manual))},
		err:      ReasonNoSupportingRuntime, msg: "multi: supportedModelFormats[1] matches but its autoSelect is false, and no autoSelect format matches (name the runtime in spec.runtime.name)",
	}, {
		name: "formats are listed when none matches", model: mimo,
		runtimes: []Runtime{rt("multi", cluster, entry(arch("A")), entry(func(f *v1.SupportedModelFormat) { f.Quantization = ptr("fp8") }))},
		err:      ReasonNoSupportingRuntime,
		msg:      "multi: no supported format matches: [0] modelArchitecture A ≠ Qwen2_5_VLForConditionalGeneration; [1] quantization fp8 required, the model sets none",
	}, {
		name: "formats that fail alike are worded once", model: raw,
		runtimes: []Runtime{rt("multi", cluster, entry(), entry(priority(2)))},
		err:      ReasonNoSupportingRuntime,
		msg:      "=no runtime can serve model mimo-vl-7b-rl: multi: model metadata not yet known (modelArchitecture, modelFormat, modelFramework unset): wait for the model to be Ready, or set them in the model's spec",
	}, {
		name: "disabled runtime named", model: mimo, runtimes: []Runtime{disabled(mimoRT)}, explicit: "srt-mimo-vl-7b-rl",
		err: ReasonRuntimeDisabled, msg: "=runtime srt-mimo-vl-7b-rl is disabled (spec.disabled: true) — fix: in ClusterServingRuntime srt-mimo-vl-7b-rl set `spec: {disabled: false}`",
	}, {
		name: "disabled runtime skipped", model: mimo, runtimes: []Runtime{disabled(rt("off", ns, entry())), rt("on", cluster, entry())},
		want: "on", order: []string{"on", "off"}, reasons: []string{"", "disabled (spec.disabled: true)"},
	}, {
		name: "explicit not found", model: mimo, runtimes: []Runtime{rt("a", ns, entry()), rt("b", cluster, entry())}, explicit: "srt-mimo",
		err: ReasonRuntimeNotFound,
		msg: "=runtime srt-mimo not found: no ServingRuntime srt-mimo in the service's namespace and no ClusterServingRuntime srt-mimo (runtimes: a, b) — fix: name one that exists in the InferenceService, `spec: {runtime: {name: a}}`, or remove spec.runtime (a is then selected automatically)",
	}, {
		name: "namespaced runtime hides the cluster one", model: mimo, runtimes: []Runtime{rt("x", cluster, entry()), rt("x", ns, entry(manual))}, explicit: "x",
		want: "x", order: []string{"x", "x"}, reasons: []string{"", "hidden by the ServingRuntime of the same name"},
	}, {
		name: "no supported formats", model: mimo, runtimes: []Runtime{rt("empty", cluster)},
		err: ReasonNoSupportingRuntime, msg: "=no runtime can serve model mimo-vl-7b-rl: empty: lists no supportedModelFormats, so it serves no model — fix: in ClusterServingRuntime empty set `spec: {supportedModelFormats: [{modelFormat: {name: safetensors, version: \"1.0.0\"}, modelFramework: {name: transformers, version: \"4.41.2\"}, modelArchitecture: Qwen2_5_VLForConditionalGeneration, autoSelect: true}]}`",
	}, {
		name: "no runtimes at all", model: mimo, err: ReasonNoSupportingRuntime, msg: "there are no runtimes",
	}, {
		name: "model disabled", model: filled(raw, func(s *v1.BaseModelSpec) { s.Disabled = ptr(true) }), runtimes: []Runtime{mimoRT}, explicit: "srt-mimo-vl-7b-rl",
		err: ReasonModelDisabled, msg: "=model mimo-vl-7b-rl is disabled (spec.disabled: true)",
	}, {
		name: "engine shortcut matches like any runtime", model: mimo,
		runtimes: []Runtime{func() Runtime {
			r := rt("vllm", cluster, entry())
			r.Spec.Engine = &v1.EngineRef{Name: "vllm"}
			return r
		}()},
		want: "vllm",
	}, {
		name: "quantized model needs a quantized format", model: filled(raw, func(s *v1.BaseModelSpec) { s.Quantization = ptr("fp8") }),
		runtimes: []Runtime{rt("srt", cluster, entry())}, err: ReasonNoSupportingRuntime,
		msg: "srt: the model's quantization is fp8 but the runtime's format names none (OME matches only when both or neither set it)",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := Select(tt.model, tt.runtimes, tt.explicit)
			cands := res.Candidates
			if tt.err != "" {
				var se *Error
				if !errors.As(err, &se) {
					t.Fatalf("Select = %s, %v; want an *Error %s", res.Runtime.Name, err, tt.err)
				}
				if se.Reason != tt.err {
					t.Errorf("Reason = %s, want %s", se.Reason, tt.err)
				}
				if want, exact := strings.CutPrefix(tt.msg, "="); exact && se.Message != want || !strings.Contains(se.Message, want) {
					t.Errorf("Message =\n  %s\nwant (exact: %v)\n  %s", se.Message, exact, want)
				}
				cands = se.Candidates
			} else {
				if err != nil {
					t.Fatalf("Select: %v", err)
				}
				if res.Runtime.Name != tt.want {
					t.Errorf("selected %s, want %s", res.Runtime.Name, tt.want)
				}
				if want := &res.Runtime.Spec.SupportedModelFormats[tt.format]; !reflect.DeepEqual(res.Format, *want) {
					t.Errorf("Format = %+v, want supportedModelFormats[%d]", res.Format, tt.format)
				}
				if len(cands) == 0 || !cands[0].Selected || cands[0].Runtime != tt.want {
					t.Errorf("first candidate is not the selected runtime: %+v", cands)
				}
			}
			for i, c := range cands {
				if i > 0 && c.Selected {
					t.Errorf("candidate %d also selected: %+v", i, c)
				}
				if i < len(tt.order) && c.Runtime != tt.order[i] {
					t.Errorf("candidate %d = %s, want %s (%+v)", i, c.Runtime, tt.order[i], cands)
				}
				if i < len(tt.reasons) {
					if want, exact := strings.CutPrefix(tt.reasons[i], "="); want == "" && c.Reason != "" || exact && c.Reason != want || !strings.Contains(c.Reason, want) {
						t.Errorf("candidate %s reason = %q, want %q", c.Runtime, c.Reason, tt.reasons[i])
					}
				}
				if i < len(tt.scores) && c.Score != tt.scores[i] {
					t.Errorf("candidate %s score = %d, want %d", c.Runtime, c.Score, tt.scores[i])
				}
			}
			if tt.order != nil && len(cands) != len(tt.order) {
				t.Errorf("%d candidates, want %d: %+v", len(cands), len(tt.order), cands)
			}
		})
	}
}

func TestMetadataPending(t *testing.T) {
	mimoRT, raw := fixtures(t)
	_, err := Select(raw, []Runtime{mimoRT, rt("srt-llama", false, entry(arch("LlamaForCausalLM")))}, "")
	var se *Error
	if !errors.As(err, &se) || !se.MetadataPending {
		t.Fatalf("Select = %v, want an *Error with MetadataPending", err)
	}
	if !strings.Contains(se.Message, "srt-llama: model metadata not yet known (modelArchitecture, modelFormat, modelFramework unset)") {
		t.Errorf("Message = %s", se.Message)
	}
	if _, err := Select(filled(raw), []Runtime{rt("srt-llama", false, entry(arch("LlamaForCausalLM")))}, ""); err.(*Error).MetadataPending {
		t.Errorf("MetadataPending set for a filled model: %v", err)
	}
	// Once the model is Ready, what is still unset will not come: the advice is to set it.
	ready := raw
	ready.Ready = true
	_, err = Select(ready, []Runtime{mimoRT, rt("srt-llama", false, entry(arch("LlamaForCausalLM")))}, "")
	if !errors.As(err, &se) || se.MetadataPending || strings.Contains(se.Message, "wait for the model to be Ready") ||
		!strings.Contains(se.Message, "the model is Ready and its files do not say: set them in the model's spec") {
		t.Errorf("a Ready model: MetadataPending %v, Message %s", se.MetadataPending, se.Message)
	}
}

func TestDiffusionPipeline(t *testing.T) {
	model := Model{Name: "flux", Spec: v1.BaseModelSpec{
		ModelFormat:       v1.ModelFormat{Name: "safetensors"},
		DiffusionPipeline: []byte(`{"className":"FluxPipeline","vae":{"library":"diffusers","type":"AutoencoderKL"}}`),
	}}
	f := func(p string) Runtime {
		return rt("r", false, v1.SupportedModelFormat{ModelFormat: &v1.ModelFormat{Name: "safetensors"}, AutoSelect: ptr(true), DiffusionPipeline: []byte(p)})
	}
	for _, tt := range []struct{ pipeline, want string }{
		{``, ""},
		{`{"className":"FluxPipeline","vae":{"library":"diffusers"}}`, ""},
		{`{"className":"SDXL"}`, "diffusionPipeline.className SDXL ≠ FluxPipeline"},
		{`{"vae":{"library":"diffusers","extra":"x"}}`, "diffusionPipeline.vae.extra x ≠ unset"},
		{`{"vae":{"type":"Other"}}`, "diffusionPipeline.vae.type Other ≠ AutoencoderKL"},
		{`{"scheduler":{"library":"diffusers"}}`, "diffusionPipeline.scheduler is required by the runtime's format, the model has none"},
	} {
		_, err := Select(model, []Runtime{f(tt.pipeline)}, "r")
		if err != nil && (tt.want == "" || !strings.Contains(err.Error(), tt.want)) || err == nil && tt.want != "" {
			t.Errorf("pipeline %s: err = %v, want %q", tt.pipeline, err, tt.want)
		}
	}
}

func TestParseVersion(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		cmp  int
	}{
		{"4.41.2", "4.41.2", 0}, {"4.45.0", "4.41.2", 1}, {"1.0", "1.0.0", 0}, {"v1.2.0", "1.2.0", 0},
		{"4.43.0.dev0", "4.43.0", 1}, {"1.8.0-beta", "1.8.0-alpha", 1}, {"2", "10", -1},
	} {
		a, err1 := parseVersion(tt.a)
		b, err2 := parseVersion(tt.b)
		if err1 != nil || err2 != nil {
			t.Fatalf("parse %s, %s: %v %v", tt.a, tt.b, err1, err2)
		}
		if got := a.compare(b); got != tt.cmp {
			t.Errorf("compare(%s, %s) = %d, want %d", tt.a, tt.b, got, tt.cmp)
		}
	}
	for _, bad := range []string{"", "latest", "1.x", "01.2", "1..2", "v"} {
		if _, err := parseVersion(bad); err == nil {
			t.Errorf("parseVersion(%q) succeeded", bad)
		}
	}
}
