package hub

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
)

// Settings are the hub settings huggingface_hub reads from the environment (constants.py, utils/_auth.py).
type Settings struct {
	Endpoint    string // HF_ENDPOINT without trailing "/", default https://huggingface.co
	Token       string // never print it: String, GoString and LogValue redact it
	TokenSource string // "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", the token file's path, or ""
	Home        string // HF_HOME, default $XDG_CACHE_HOME/huggingface or ~/.cache/huggingface ("" if HOME is unset too)
	HubCache    string // HF_HUB_CACHE, else HUGGINGFACE_HUB_CACHE, else Home/hub
	Offline     bool   // HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is 1, ON, YES or TRUE
}

// SettingsFromEnv reads the settings through getenv, and the token file through readFile (its content
// trimmed). The token is the first non-empty of HF_TOKEN, HUGGING_FACE_HUB_TOKEN and the file at
// HF_TOKEN_PATH (default $HF_HOME/token); a missing or unreadable file means no token. Paths starting
// with "~" are expanded with HOME, as Python's expanduser does.
func SettingsFromEnv(getenv func(string) string, readFile func(string) ([]byte, error)) Settings {
	home := getenv("HOME")
	expand := func(p string) string {
		if home != "" && (p == "~" || strings.HasPrefix(p, "~/")) {
			return filepath.Join(home, p[1:])
		}
		return p
	}
	s := Settings{Endpoint: strings.TrimRight(strings.TrimSpace(getenv("HF_ENDPOINT")), "/")}
	if s.Endpoint == "" {
		s.Endpoint = DefaultEndpoint
	}
	switch {
	case getenv("HF_HOME") != "":
		s.Home = expand(getenv("HF_HOME"))
	case getenv("XDG_CACHE_HOME") != "":
		s.Home = filepath.Join(expand(getenv("XDG_CACHE_HOME")), "huggingface")
	case home != "":
		s.Home = filepath.Join(home, ".cache", "huggingface")
	}
	switch {
	case getenv("HF_HUB_CACHE") != "":
		s.HubCache = expand(getenv("HF_HUB_CACHE"))
	case getenv("HUGGINGFACE_HUB_CACHE") != "":
		s.HubCache = expand(getenv("HUGGINGFACE_HUB_CACHE"))
	case s.Home != "":
		s.HubCache = filepath.Join(s.Home, "hub")
	}
	for _, name := range []string{"HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"} {
		if tok := cleanToken(getenv(name)); tok != "" {
			s.Token, s.TokenSource = tok, name
			break
		}
	}
	if s.Token == "" && readFile != nil {
		path := expand(getenv("HF_TOKEN_PATH"))
		if path == "" && s.Home != "" {
			path = filepath.Join(s.Home, "token")
		}
		if path != "" {
			if b, err := readFile(path); err == nil {
				if tok := cleanToken(string(b)); tok != "" {
					s.Token, s.TokenSource = tok, path
				}
			}
		}
	}
	offline := getenv("HF_HUB_OFFLINE")
	if offline == "" {
		offline = getenv("TRANSFORMERS_OFFLINE")
	}
	switch strings.ToUpper(strings.TrimSpace(offline)) {
	case "1", "ON", "YES", "TRUE":
		s.Offline = true
	}
	return s
}

// cleanToken trims a token and removes line breaks, as huggingface_hub's _clean_token does.
func cleanToken(s string) string {
	return strings.TrimSpace(strings.NewReplacer("\r", "", "\n", "").Replace(s))
}

// String describes the settings without the token.
func (s Settings) String() string {
	return fmt.Sprintf("{Endpoint:%s Token:%s TokenSource:%s Home:%s HubCache:%s Offline:%t}",
		s.Endpoint, redactSecret(s.Token), s.TokenSource, s.Home, s.HubCache, s.Offline)
}

// GoString is String, so %#v does not print the token either.
func (s Settings) GoString() string { return "hub.Settings" + s.String() }

// LogValue logs the settings without the token.
func (s Settings) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("endpoint", s.Endpoint), slog.String("token", redactSecret(s.Token)), slog.String("token_source", s.TokenSource),
		slog.String("home", s.Home), slog.String("hub_cache", s.HubCache), slog.Bool("offline", s.Offline))
}
