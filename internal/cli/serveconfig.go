package cli

// citadel serve --config FILE: a YAML file with one key per flag of serve, so that a host's
// settings live in /etc/citadel/serve.yaml instead of a unit's command line. The keys are
// the flag names in lowerCamelCase (--gateway-addr is gatewayAddr), derived from the flag
// set itself: a new flag is a new key with nothing else to update.

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"

	"citadel.dev/citadel/internal/config"
)

// notConfigurable are serve's flags that are not keys of the file: the file itself and
// what only the command line asks for.
var notConfigurable = map[string]bool{"config": true, "print-config": true, "help": true}

// configKey is the file's key for a flag: gateway-addr is gatewayAddr.
func configKey(flag string) string {
	parts := strings.Split(flag, "-")
	for i := 1; i < len(parts); i++ {
		if p := parts[i]; p != "" {
			parts[i] = strings.ToUpper(p[:1]) + p[1:]
		}
	}
	return strings.Join(parts, "")
}

// configFlags are the flags the file may set, by key, in the flag set's order: serve's own
// (fs is its LocalNonPersistentFlags), hidden ones left out (citadel up's).
func configFlags(fs *pflag.FlagSet) ([]string, map[string]*pflag.Flag) {
	var keys []string
	byKey := map[string]*pflag.Flag{}
	fs.VisitAll(func(f *pflag.Flag) {
		if notConfigurable[f.Name] || f.Hidden {
			return
		}
		k := configKey(f.Name)
		keys = append(keys, k)
		byKey[k] = f
	})
	return keys, byKey
}

// settingSources says where each setting the file gave came from, so that a value refused
// later (a log level, a GPU profile) is reported where the user wrote it.
type settingSources map[string]string // flag name → "FILE:LINE: key"

// name is how a message names the setting of flag: --flag, or the file, line and key.
func (s settingSources) name(flag string) string {
	if src, ok := s[flag]; ok {
		return src
	}
	return "--" + flag
}

// applyConfigFile sets, from the YAML file at path, each flag the command line did not set:
// the command line wins over the file, and the file over the flags' defaults (which may
// come from the environment, such as CITADEL_DATA_DIR). An unknown key, a value that is not
// a scalar or a value the flag refuses is an error naming the file, the line and the key.
func applyConfigFile(fs *pflag.FlagSet, path string) (settingSources, error) {
	src := settingSources{}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--config: %w", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%s: not valid YAML: %v", path, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	if len(doc.Content) == 0 {
		return src, nil // an empty file (or only comments) sets nothing
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s:%d: the file must be a mapping of keys to values, such as gatewayAddr: 127.0.0.1:8080 (citadel serve --print-config writes one)", path, root.Line)
	}
	keys, byKey := configFlags(fs)
	seen := map[string]int{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		key := k.Value
		where := fmt.Sprintf("%s:%d", path, k.Line)
		f := byKey[key]
		if f == nil {
			if s := closest(key, keys); s != "" {
				return nil, fmt.Errorf("%s: unknown key %q; did you mean %s?", where, key, s)
			}
			return nil, fmt.Errorf("%s: unknown key %q (keys are citadel serve's flags in lowerCamelCase: %s)", where, key, strings.Join(keys, ", "))
		}
		if prev, dup := seen[key]; dup {
			return nil, fmt.Errorf("%s: %s is set twice (first on line %d): keep one", where, key, prev)
		}
		seen[key] = k.Line
		if v.Kind != yaml.ScalarNode || v.Tag == "!!null" {
			return nil, fmt.Errorf("%s:%d: %s needs a single value (%s), like --%s takes", path, v.Line, key, f.Value.Type(), f.Name)
		}
		if fs.Changed(f.Name) {
			continue // the command line wins
		}
		if err := fs.Set(f.Name, v.Value); err != nil {
			return nil, fmt.Errorf("%s:%d: %s: %q is not a valid %s (%s)", path, v.Line, key, v.Value, f.Value.Type(), f.Usage)
		}
		src[f.Name] = fmt.Sprintf("%s:%d: %s", path, v.Line, key)
	}
	return src, nil
}

// writeConfig writes the effective settings as a file --config reads: every key with its
// flag's help as a comment. A set admin token is not written out.
func writeConfig(w io.Writer, fs *pflag.FlagSet) error {
	keys, byKey := configFlags(fs)
	m := &yaml.Node{Kind: yaml.MappingNode}
	var foot []string
	for _, k := range keys {
		f := byKey[k]
		if f.Name == "admin-token" && f.Value.String() != "" {
			foot = append(foot, "adminToken is set (flag, file or CITADEL_ADMIN_TOKEN) and not printed")
			continue
		}
		tag := "!!str" // quoted when it could read as another type ("", off, 1.5)
		switch f.Value.Type() {
		case "bool", "int", "int32", "int64", "uint", "uint32", "uint64", "float32", "float64":
			tag = "" // plain: true, 2, 0.5
		}
		m.Content = append(m.Content,
			&yaml.Node{Kind: yaml.ScalarNode, Value: k, HeadComment: "--" + f.Name + ": " + f.Usage},
			&yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: f.Value.String()})
	}
	if len(foot) > 0 {
		m.FootComment = strings.Join(foot, "\n")
	}
	var b bytes.Buffer
	b.WriteString("# citadel serve --config FILE: flags on the command line win over this file.\n")
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(m); err != nil {
		return err
	}
	_, err := w.Write(b.Bytes())
	return err
}

// closest is the key nearest to s (edit distance, case ignored), if it is near enough to
// be what was meant.
func closest(s string, keys []string) string {
	norm := func(k string) string { return strings.ToLower(strings.NewReplacer("-", "", "_", "").Replace(k)) }
	best, bestD := "", -1
	for _, k := range keys {
		if d := config.EditDistance(norm(s), norm(k)); bestD < 0 || d < bestD {
			best, bestD = k, d
		}
	}
	if bestD < 0 || bestD > max(2, len(s)/3) {
		return ""
	}
	return best
}
