package hub

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSettingsFromEnv(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		env   map[string]string
		files map[string]string
		want  Settings
	}{
		{
			name: "defaults",
			env:  map[string]string{"HOME": "/home/u"},
			want: Settings{Endpoint: DefaultEndpoint, Home: "/home/u/.cache/huggingface", HubCache: "/home/u/.cache/huggingface/hub"},
		},
		{
			name: "no HOME at all",
			env:  map[string]string{},
			want: Settings{Endpoint: DefaultEndpoint},
		},
		{
			name: "XDG_CACHE_HOME",
			env:  map[string]string{"HOME": "/home/u", "XDG_CACHE_HOME": "/xdg"},
			want: Settings{Endpoint: DefaultEndpoint, Home: "/xdg/huggingface", HubCache: "/xdg/huggingface/hub"},
		},
		{
			name: "HF_HOME wins over XDG_CACHE_HOME, with ~ expanded",
			env:  map[string]string{"HOME": "/home/u", "XDG_CACHE_HOME": "/xdg", "HF_HOME": "~/hf"},
			want: Settings{Endpoint: DefaultEndpoint, Home: "/home/u/hf", HubCache: "/home/u/hf/hub"},
		},
		{
			name: "HF_HUB_CACHE wins over HUGGINGFACE_HUB_CACHE and HF_HOME",
			env:  map[string]string{"HF_HOME": "/hf", "HF_HUB_CACHE": "/cache", "HUGGINGFACE_HUB_CACHE": "/legacy"},
			want: Settings{Endpoint: DefaultEndpoint, Home: "/hf", HubCache: "/cache"},
		},
		{
			name: "legacy HUGGINGFACE_HUB_CACHE",
			env:  map[string]string{"HF_HOME": "/hf", "HUGGINGFACE_HUB_CACHE": "/legacy"},
			want: Settings{Endpoint: DefaultEndpoint, Home: "/hf", HubCache: "/legacy"},
		},
		{
			name: "HF_ENDPOINT trailing slashes stripped",
			env:  map[string]string{"HF_HOME": "/hf", "HF_ENDPOINT": "http://mirror:8080//"},
			want: Settings{Endpoint: "http://mirror:8080", Home: "/hf", HubCache: "/hf/hub"},
		},
		{
			name:  "HF_TOKEN wins over the legacy variable and the file",
			env:   map[string]string{"HF_HOME": "/hf", "HF_TOKEN": " hf_env\n", "HUGGING_FACE_HUB_TOKEN": "hf_legacy"},
			files: map[string]string{"/hf/token": "hf_file"},
			want:  Settings{Endpoint: DefaultEndpoint, Token: "hf_env", TokenSource: "HF_TOKEN", Home: "/hf", HubCache: "/hf/hub"},
		},
		{
			name:  "empty HF_TOKEN falls through to HUGGING_FACE_HUB_TOKEN",
			env:   map[string]string{"HF_HOME": "/hf", "HF_TOKEN": "  ", "HUGGING_FACE_HUB_TOKEN": "hf_legacy"},
			files: map[string]string{"/hf/token": "hf_file"},
			want:  Settings{Endpoint: DefaultEndpoint, Token: "hf_legacy", TokenSource: "HUGGING_FACE_HUB_TOKEN", Home: "/hf", HubCache: "/hf/hub"},
		},
		{
			name:  "token file under HF_HOME, trimmed",
			env:   map[string]string{"HF_HOME": "/hf"},
			files: map[string]string{"/hf/token": "hf_file\r\n"},
			want:  Settings{Endpoint: DefaultEndpoint, Token: "hf_file", TokenSource: "/hf/token", Home: "/hf", HubCache: "/hf/hub"},
		},
		{
			name:  "HF_TOKEN_PATH",
			env:   map[string]string{"HF_HOME": "/hf", "HF_TOKEN_PATH": "/secrets/hf"},
			files: map[string]string{"/hf/token": "hf_file", "/secrets/hf": "hf_mounted"},
			want:  Settings{Endpoint: DefaultEndpoint, Token: "hf_mounted", TokenSource: "/secrets/hf", Home: "/hf", HubCache: "/hf/hub"},
		},
		{
			name:  "empty token file",
			env:   map[string]string{"HF_HOME": "/hf"},
			files: map[string]string{"/hf/token": "\n"},
			want:  Settings{Endpoint: DefaultEndpoint, Home: "/hf", HubCache: "/hf/hub"},
		},
		{
			name: "HF_HUB_OFFLINE=1",
			env:  map[string]string{"HF_HOME": "/hf", "HF_HUB_OFFLINE": "1"},
			want: Settings{Endpoint: DefaultEndpoint, Home: "/hf", HubCache: "/hf/hub", Offline: true},
		},
		{
			name: "HF_HUB_OFFLINE=yes",
			env:  map[string]string{"HF_HOME": "/hf", "HF_HUB_OFFLINE": "yes"},
			want: Settings{Endpoint: DefaultEndpoint, Home: "/hf", HubCache: "/hf/hub", Offline: true},
		},
		{
			name: "HF_HUB_OFFLINE=0",
			env:  map[string]string{"HF_HOME": "/hf", "HF_HUB_OFFLINE": "0", "TRANSFORMERS_OFFLINE": "1"},
			want: Settings{Endpoint: DefaultEndpoint, Home: "/hf", HubCache: "/hf/hub"},
		},
		{
			name: "TRANSFORMERS_OFFLINE",
			env:  map[string]string{"HF_HOME": "/hf", "TRANSFORMERS_OFFLINE": "TRUE"},
			want: Settings{Endpoint: DefaultEndpoint, Home: "/hf", HubCache: "/hf/hub", Offline: true},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			readFile := func(name string) ([]byte, error) {
				if s, ok := tt.files[name]; ok {
					return []byte(s), nil
				}
				return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
			}
			got := SettingsFromEnv(func(k string) string { return tt.env[k] }, readFile)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("SettingsFromEnv (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSettingsUnreadableTokenFile(t *testing.T) {
	t.Parallel()
	got := SettingsFromEnv(func(k string) string { return map[string]string{"HF_HOME": "/hf"}[k] },
		func(string) ([]byte, error) { return nil, errors.New("permission denied") })
	if got.Token != "" || got.TokenSource != "" {
		t.Errorf("token %q from %q, want none", got.Token, got.TokenSource)
	}
}

// TestTokenNeverPrinted: settings, options and clients printed or logged in any way never show the token.
func TestTokenNeverPrinted(t *testing.T) {
	t.Parallel()
	s := Settings{Endpoint: DefaultEndpoint, Token: testToken, TokenSource: "HF_TOKEN"}
	o := Options{Endpoint: DefaultEndpoint, Token: testToken}
	c := New(o)
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	log.Info("hub", "settings", s, "options", o, "client", c)
	slog.New(slog.NewTextHandler(&buf, nil)).Info("hub", "settings", s, "options", o, "client", c)
	for _, v := range []any{s, &s, o, &o, c} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
			fmt.Fprintf(&buf, verb+"\n", v)
		}
	}
	fmt.Fprintf(&buf, "%v %+v\n", struct{ S Settings }{s}, []Settings{s})
	out := buf.String()
	if strings.Contains(out, testToken) {
		t.Errorf("the token was printed:\n%s", out)
	}
	if !strings.Contains(out, "[redacted]") || !strings.Contains(out, "HF_TOKEN") {
		t.Errorf("output lacks the redaction marker or the token source:\n%s", out)
	}
}
