package v1

import (
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseStorageURI(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    StorageURI
		wantErr string // substring; "" means the URI is accepted
	}{
		// Hugging Face.
		{in: "hf://XiaomiMiMo/MiMo-VL-7B-RL", want: StorageURI{Scheme: "hf", Repo: "XiaomiMiMo/MiMo-VL-7B-RL", Revision: "main"}},
		{in: "hf://XiaomiMiMo/MiMo-VL-7B-RL@v1.1", want: StorageURI{Scheme: "hf", Repo: "XiaomiMiMo/MiMo-VL-7B-RL", Revision: "v1.1"}},
		{in: "hf://Qwen/Qwen2.5-7B-Instruct@refs/pr/12", want: StorageURI{Scheme: "hf", Repo: "Qwen/Qwen2.5-7B-Instruct", Revision: "refs/pr/12"}},
		{in: "hf://gpt2", want: StorageURI{Scheme: "hf", Repo: "gpt2", Revision: "main"}},
		{in: "hf://XiaomiMiMo/MiMo-VL-7B-RL/config.json", wantErr: "is not a Hugging Face repository: write hf://org/name"},
		{in: "hf://XiaomiMiMo/MiMo-VL-7B-RL@", wantErr: "empty revision after '@'"},
		{in: "hf://", wantErr: "is not a Hugging Face repository"},
		{in: "hf://@main", wantErr: "is not a Hugging Face repository"},
		{in: "hf://XiaomiMiMo/", wantErr: `repository name "" is empty`},
		{in: "hf://XiaomiMiMo/MiMo VL", wantErr: `contains ' ', which is not allowed`},
		{in: "hf://XiaomiMiMo/..", wantErr: "must not contain '..'"},
		{in: "hf://org/repo@my branch", wantErr: "contains spaces"},
		// Ollama.
		{in: "ollama://qwen2.5:7b", want: StorageURI{Scheme: "ollama", Name: "library/qwen2.5", Tag: "7b"}},
		{in: "ollama://llava", want: StorageURI{Scheme: "ollama", Name: "library/llava", Tag: "latest"}},
		{in: "ollama://huihui_ai/deepseek-r1-abliterated:8b", want: StorageURI{Scheme: "ollama", Name: "huihui_ai/deepseek-r1-abliterated", Tag: "8b"}},
		{in: "ollama://registry.example.com:5000/team/model:q4", want: StorageURI{Scheme: "ollama", Registry: "registry.example.com:5000", Name: "team/model", Tag: "q4"}},
		{in: "ollama://registry.example.com/model", want: StorageURI{Scheme: "ollama", Registry: "registry.example.com", Name: "library/model", Tag: "latest"}},
		{in: "ollama://qwen2.5:", wantErr: "empty tag after ':'"},
		{in: "ollama://", wantErr: "is not an Ollama model"},
		{in: "ollama://a/b/c/d", wantErr: "is not an Ollama model"},
		// Local directories.
		{in: "file:///srv/models/tinyllama", want: StorageURI{Scheme: "file", Path: "/srv/models/tinyllama"}},
		{in: "local:///srv/models/../models/x/", want: StorageURI{Scheme: "local", Path: "/srv/models/x"}},
		{in: "file://models/MiMo-VL-7B-RL", wantErr: `the path "models/MiMo-VL-7B-RL" is not absolute: write file:///abs/dir (three slashes)`},
		{in: "file://", wantErr: "is not absolute"},
		// Schemes Citadel does not download from.
		{in: "s3://bucket/models/x", wantErr: `scheme "s3" is not supported by Citadel yet (S3 downloads are not implemented)`},
		{in: "pvc://model-cache/x", wantErr: "PersistentVolumeClaims exist only on Kubernetes"},
		{in: "oci://n/ns/b/bucket/o/prefix", wantErr: `scheme "oci" is not supported`},
		{in: "https://huggingface.co/XiaomiMiMo/MiMo-VL-7B-RL", wantErr: "plain URLs are not model repositories"},
		{in: "s4://bucket/x", wantErr: `unsupported scheme "s4": use hf://org/repo[@revision]`},
		{in: "HF://XiaomiMiMo/MiMo-VL-7B-RL", wantErr: `unsupported scheme "HF"`},
		{in: "XiaomiMiMo/MiMo-VL-7B-RL", wantErr: "has no scheme"},
		{in: "://x", wantErr: "has no scheme"},
		{in: "", wantErr: "has no scheme"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			got, err := ParseStorageURI(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseStorageURI(%q) = %+v, %v; want an error containing %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseStorageURI(%q): %v", tt.in, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseStorageURI(%q) (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}

func TestQuantityValue(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      Quantity
		want    float64
		wantErr string
	}{
		{in: "10", want: 10},
		{in: "500m", want: 0.5},
		{in: "30Gi", want: 30 << 30},
		{in: "1.5G", want: 1.5e9},
		{in: "2Ki", want: 2048},
		{in: "1e3", want: 1000},
		{in: "1E-3", want: 0.001},
		{in: "0", want: 0},
		{in: " 4 ", want: 4},
		{in: "", wantErr: "empty quantity"},
		{in: "30GB", wantErr: `unknown suffix "GB": Kubernetes quantities have no "GB" suffix; write 30Gi (binary) or 30G (decimal)`},
		{in: "16GiB", wantErr: "write 16Gi"},
		{in: "10x", wantErr: `unknown suffix "x": use Ki, Mi, Gi`},
		{in: "-1", wantErr: "must not be negative"},
		{in: "-1e3", wantErr: "must not be negative"},
		{in: "+5", wantErr: "expected a number"},
		{in: "+1e3", wantErr: "expected a number"},
		{in: "1e3Gi", wantErr: "expected a number"},
		{in: "0x1p4", wantErr: "expected a number"},
		{in: "1_000", wantErr: "expected a number"},
		{in: "1.2.3", wantErr: "expected a number"},
		{in: "Gi", wantErr: "expected a number"},
		{in: "NaN", wantErr: "expected a number"},
		{in: Quantity("1" + strings.Repeat("0", 300) + "Ei"), wantErr: "too large"},
	}
	for _, tt := range tests {
		t.Run(string(tt.in), func(t *testing.T) {
			t.Parallel()
			got, err := tt.in.Value()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Quantity(%q).Value() = %v, %v; want an error containing %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || math.Abs(got-tt.want) > 1e-9*math.Abs(tt.want) {
				t.Errorf("Quantity(%q).Value() = %v, %v; want %v", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestParameterSizeCount(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      ParameterSize
		want    float64
		wantErr string
	}{
		{in: "7B", want: 7e9},
		{in: "7.62B", want: 7.62e9},
		{in: "8b", want: 8e9},
		{in: "500M", want: 500e6},
		{in: "1.5T", want: 1.5e12},
		{in: "125K", want: 125e3},
		{in: "", wantErr: "empty parameter count"},
		{in: "7", wantErr: "add a suffix: K, M, B or T"},
		{in: "30Gi", wantErr: "looks like a byte size"},
		{in: "16GB", wantErr: "looks like a byte size"},
		{in: "0B", wantErr: "write a positive number"},
		{in: "-7B", wantErr: "write a positive number"},
		{in: "B", wantErr: "write a positive number"},
		{in: "NaNB", wantErr: "write a positive number"},
		{in: "InfB", wantErr: "write a positive number"},
		{in: "0x1p3B", wantErr: "write a positive number"},
		{in: "1e3M", wantErr: "write a positive number"},
		{in: ParameterSize("1" + strings.Repeat("0", 300) + "T"), wantErr: "too large"},
	}
	for _, tt := range tests {
		t.Run(string(tt.in), func(t *testing.T) {
			t.Parallel()
			got, err := tt.in.Count()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParameterSize(%q).Count() = %v, %v; want an error containing %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || math.Abs(got-tt.want) > 1e-9*tt.want {
				t.Errorf("ParameterSize(%q).Count() = %v, %v; want %v", tt.in, got, err, tt.want)
			}
		})
	}
}

// A label key with an empty prefix ("/app") used to index an empty string
// and panic inside Validate.
func TestValidateLabelKeyEmptyPrefix(t *testing.T) {
	t.Parallel()
	s := &Secret{ObjectMeta: ObjectMeta{Name: "hf-token", Labels: map[string]string{"/app": "x"}}}
	s.Default()
	errs := s.Validate()
	want := FieldErrors{{Path: "metadata.labels", Message: `invalid label key "/app": invalid prefix`, Fix: "label keys are [prefix/]name with name at most 63 characters of [A-Za-z0-9._-]"}}
	if diff := cmp.Diff(want, errs); diff != "" {
		t.Errorf("Validate() (-want +got):\n%s", diff)
	}
}

// Time must read back what it writes: a year that RFC 3339 cannot print in
// UTC is refused on the way in.
func TestTimeRoundTrip(t *testing.T) {
	t.Parallel()
	for _, in := range []string{`"2026-01-02T15:04:05Z"`, `"2026-01-02T15:04:05.123+02:00"`, `"0000-01-01T00:00:00Z"`} {
		var tm Time
		if err := json.Unmarshal([]byte(in), &tm); err != nil {
			t.Fatalf("Unmarshal(%s): %v", in, err)
		}
		b, err := json.Marshal(tm)
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		var again Time
		if err := json.Unmarshal(b, &again); err != nil || !again.Equal(tm.Truncate(1e9)) {
			t.Errorf("%s → %s → %v, %v", in, b, again, err)
		}
	}
	for _, in := range []string{`"9999-12-31T23:00:00-05:00"`, `"0000-01-01T00:00:00+01:00"`} {
		var tm Time
		if err := json.Unmarshal([]byte(in), &tm); err == nil || !strings.Contains(err.Error(), "year") {
			t.Errorf("Unmarshal(%s) = %v, %v; want an error about the year", in, tm, err)
		}
	}
}
