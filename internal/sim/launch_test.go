package sim

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"citadel.dev/citadel/internal/perfmodel"
)

// TestDialectsComplete: every row fills every field, so a new dialect that forgets one fails
// here rather than with a nil call under a request.
func TestDialectsComplete(t *testing.T) {
	for name, d := range dialects {
		if d.name != name {
			t.Errorf("dialects[%q].name = %q", name, d.name)
		}
		v := reflect.ValueOf(*d)
		for i := range v.NumField() {
			f, typ := v.Field(i), v.Type().Field(i)
			switch typ.Name {
			case "launch", "mode", "prefixCache":
				continue // zero values are meaningful
			case "stream", "metrics":
				for j := range f.NumField() {
					if sub := f.Field(j); sub.Kind() == reflect.Func && sub.IsNil() || sub.Kind() == reflect.Slice && sub.Len() == 0 {
						t.Errorf("dialect %s: %s.%s is not set", name, typ.Name, f.Type().Field(j).Name)
					}
				}
				continue
			}
			if f.IsZero() {
				t.Errorf("dialect %s: %s is not set", name, typ.Name)
			}
		}
		if _, ok := LaunchOf(name); !ok {
			t.Errorf("LaunchOf(%q) = false", name)
		}
	}
	for _, e := range Engines {
		if _, ok := LaunchOf(e); !ok {
			t.Errorf("Engines lists %q, which LaunchOf does not know", e)
		}
	}
}

// TestPlanOptions: the engines' own defaults for what their command line leaves out.
func TestPlanOptions(t *testing.T) {
	tests := []struct {
		engine  string
		in, out perfmodel.Options
		err     string
	}{
		{engine: EngineVLLM, in: perfmodel.Options{TP: 2}, out: perfmodel.Options{TP: 2}}, // the model's context
		{engine: EngineSGLang, in: perfmodel.Options{MaxModelLen: 8192}, out: perfmodel.Options{MaxModelLen: 8192}},
		{engine: EngineOllama, out: perfmodel.Options{MaxModelLen: 4096}},
		{engine: EngineOllama, in: perfmodel.Options{MaxModelLen: 8192, Parallel: 2}, out: perfmodel.Options{MaxModelLen: 8192, Parallel: 2}},
		// llama-server: -c 4096 by default, split over the -np slots; a GGUF file is Q4_K_M.
		{engine: EngineLlamaCPP, out: perfmodel.Options{MaxModelLen: 4096, Parallel: 1, Quant: perfmodel.QuantQ4KM}},
		{engine: EngineLlamaCPP, in: perfmodel.Options{MaxModelLen: 16384, Parallel: 4, Quant: perfmodel.QuantBF16},
			out: perfmodel.Options{MaxModelLen: 4096, Parallel: 4, Quant: perfmodel.QuantBF16}},
		{engine: EngineLlamaCPP, in: perfmodel.Options{MaxModelLen: 2, Parallel: 4}, err: "--ctx-size 2 is less than one token per slot (--parallel 4)"},
		{engine: "tgi", err: "unknown"},
	}
	for _, tt := range tests {
		got, err := PlanOptions(tt.engine, tt.in)
		switch {
		case tt.err != "":
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("PlanOptions(%s, %+v) error %v, want %q", tt.engine, tt.in, err, tt.err)
			}
		case err != nil:
			t.Errorf("PlanOptions(%s, %+v): %v", tt.engine, tt.in, err)
		default:
			if diff := cmp.Diff(tt.out, got); diff != "" {
				t.Errorf("PlanOptions(%s, %+v) (-want +got):\n%s", tt.engine, tt.in, diff)
			}
		}
	}
}

// TestLaunchAtStartup: --oom-at-load fails to build the server with CUDA's error, and an
// engine that loads while listening (llama-server) takes the start-up delay as its loading
// phase ("Loading model") rather than the fault's generic 503.
func TestLaunchAtStartup(t *testing.T) {
	plan := newPlan(t, "h100-sxm", "qwen2.5-7b", perfmodel.Options{MaxModelLen: 4096})
	_, err := NewOpenAI(Config{Plan: plan, OOMAtLoad: true})
	var le *LoadError
	if !errors.As(err, &le) || !strings.HasPrefix(le.Message, "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 14.19 GiB. GPU 0 has a total capacity of 79.") {
		t.Errorf("OOMAtLoad: %v, want a *LoadError with CUDA's message", err)
	}

	now := time.Unix(1700000000, 0)
	clock := func() time.Time { return now }
	cpp := newPlan(t, "h100-sxm", "qwen2.5-7b", perfmodel.Options{MaxModelLen: 4096, Quant: perfmodel.QuantQ4KM})
	s, err := NewOpenAI(Config{Engine: EngineLlamaCPP, Plan: cpp, TimeScale: 1, Faults: Faults{StartupDelay: time.Minute, Now: clock}})
	if err != nil {
		t.Fatal(err)
	}
	url := serveTest(t, s).URL
	if status, _, body := request(t, "GET", url+"/health", ""); status != 503 || !strings.Contains(body, `"message":"Loading model"`) {
		t.Errorf("llama.cpp during its start-up delay: %d %s, want 503 Loading model", status, body)
	}
}
