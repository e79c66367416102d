package config

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"
)

// decoder decodes one YAML node tree into a Go value strictly, by the
// values' json tags, collecting every problem with its field path and line
// instead of stopping at the first.
type decoder struct {
	errs []fieldProblem
	// pos maps a field path to where its value starts, so that later
	// validation errors (which know only the path) can name a line.
	pos map[string]position
	// values counts decoded values: YAML aliases can make a small file
	// expand into more values than memory holds ("billion laughs").
	values int
}

// maxValues bounds the values of one object, far above any real one.
const maxValues = 100_000

type position struct{ line, col int }

type fieldProblem struct {
	path    string
	pos     position
	message string
	fix     string
	unknown bool // an unknown field (see failed)
}

func (d *decoder) fail(n *yaml.Node, path, msg, fix string) {
	d.errs = append(d.errs, fieldProblem{path: path, pos: position{n.Line, n.Column}, message: msg, fix: fix})
}

var (
	jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()
	rawMessageType  = reflect.TypeFor[json.RawMessage]()
)

// ignored lists fields that Kubernetes exports carry and Citadel drops.
var ignored = map[string]bool{
	"status":                              true,
	"metadata.managedFields":              true,
	"metadata.ownerReferences":            true,
	"metadata.selfLink":                   true,
	"metadata.generateName":               true,
	"metadata.deletionGracePeriodSeconds": true,
}

func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if d.values++; d.values > maxValues {
		if d.values == maxValues+1 {
			d.fail(n, path, fmt.Sprintf("the object expands to more than %d values through YAML aliases", maxValues), "write the repeated parts out, or use fewer aliases")
		}
		return
	}
	if d.pos != nil {
		d.pos[path] = position{n.Line, n.Column}
	}
	if isNull(n) {
		v.Set(reflect.Zero(v.Type()))
		return
	}
	t := v.Type()
	if t == rawMessageType {
		b, err := nodeJSON(n)
		if err != nil {
			d.fail(n, path, err.Error(), "")
			return
		}
		v.SetBytes(b)
		return
	}
	if t.Kind() != reflect.Pointer && reflect.PointerTo(t).Implements(jsonUnmarshaler) {
		b, err := nodeJSON(n)
		if err == nil {
			err = v.Addr().Interface().(json.Unmarshaler).UnmarshalJSON(b)
		}
		if err != nil {
			d.fail(n, path, err.Error(), "")
		}
		return
	}
	switch t.Kind() {
	case reflect.Pointer:
		p := reflect.New(t.Elem())
		d.decode(n, p.Elem(), path)
		v.Set(p)
	case reflect.Struct:
		d.decodeStruct(n, v, path)
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			d.fail(n, path, "expected a mapping (key: value pairs), got "+describe(n), "")
			return
		}
		m := reflect.MakeMapWithSize(t, len(n.Content)/2)
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			if k.Kind != yaml.ScalarNode {
				d.fail(k, path, "map keys must be strings", "")
				continue
			}
			kp := path + "." + k.Value
			if r, ok := unprintable(k.Value); ok {
				d.fail(k, kp, fmt.Sprintf("key contains the control character %U", r), "remove it")
				continue
			}
			if seen[k.Value] {
				d.fail(k, kp, fmt.Sprintf("duplicate key %q", k.Value), "remove one of them")
				continue
			}
			seen[k.Value] = true
			e := reflect.New(t.Elem()).Elem()
			d.decode(val, e, kp)
			m.SetMapIndex(reflect.ValueOf(k.Value).Convert(t.Key()), e)
		}
		v.Set(m)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			fix := ""
			if n.Kind == yaml.ScalarNode {
				fix = fmt.Sprintf("write a list: [%s] or one \"- item\" per line", n.Value)
			}
			d.fail(n, path, "expected a list, got "+describe(n), fix)
			return
		}
		s := reflect.MakeSlice(t, len(n.Content), len(n.Content))
		for i, c := range n.Content {
			d.decode(c, s.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
		v.Set(s)
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			d.fail(n, path, "expected a string, got "+describe(n), "")
			return
		}
		if tag := n.ShortTag(); tag != "!!str" && n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) == 0 {
			d.fail(n, path, fmt.Sprintf("expected a string, got %s %s", tagWord(tag), n.Value), fmt.Sprintf("quote it: %q", n.Value))
			return
		}
		if r, ok := unprintable(n.Value); ok {
			d.fail(n, path, fmt.Sprintf("contains the control character %U", r), "remove it")
			return
		}
		v.SetString(n.Value)
	case reflect.Bool:
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" {
			fix := "write true or false"
			if v := strings.ToLower(n.Value); n.Kind == yaml.ScalarNode && (v == "true" || v == "false") {
				fix = "remove the quotes: " + v
			}
			d.fail(n, path, "expected true or false, got "+describe(n), fix)
			return
		}
		b, err := strconv.ParseBool(n.Value)
		if err != nil {
			d.fail(n, path, "expected true or false, got "+describe(n), "write true or false")
			return
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
			fix := ""
			if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str" {
				if _, err := strconv.ParseInt(n.Value, 10, 64); err == nil {
					fix = "remove the quotes: " + n.Value
				}
			}
			d.fail(n, path, "expected an integer, got "+describe(n), fix)
			return
		}
		i, err := strconv.ParseInt(strings.ReplaceAll(n.Value, "_", ""), 0, 64)
		if err != nil || v.OverflowInt(i) {
			d.fail(n, path, fmt.Sprintf("integer %s is out of range for this field", n.Value), "")
			return
		}
		v.SetInt(i)
	case reflect.Float32, reflect.Float64:
		if n.Kind != yaml.ScalarNode || (n.ShortTag() != "!!float" && n.ShortTag() != "!!int") {
			d.fail(n, path, "expected a number, got "+describe(n), "")
			return
		}
		f, err := strconv.ParseFloat(n.Value, 64)
		if err != nil || math.IsInf(f, 0) {
			d.fail(n, path, fmt.Sprintf("invalid number %s", n.Value), "")
			return
		}
		v.SetFloat(f)
	default:
		d.fail(n, path, fmt.Sprintf("internal error: cannot decode into %s", t), "")
	}
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		fix := ""
		if n.Kind == yaml.SequenceNode {
			fix = "remove the \"- \": this field holds one set of fields, not a list"
		}
		d.fail(n, path, "expected a mapping (key: value pairs), got "+describe(n), fix)
		return
	}
	fields := fieldsOf(v.Type())
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.fail(k, path, "field names must be strings", "")
			continue
		}
		fp := joinPath(path, k.Value)
		if seen[k.Value] {
			d.fail(k, fp, fmt.Sprintf("duplicate field %q", k.Value), "remove one of them")
			continue
		}
		seen[k.Value] = true
		if ignored[fp] {
			continue // even when the type has the field (status)
		}
		f, ok := fields.byName[k.Value]
		if !ok {
			d.fail(k, fp, fmt.Sprintf("unknown field %q", k.Value), suggest(k.Value, fields.names))
			d.errs[len(d.errs)-1].unknown = true
			continue
		}
		d.decode(val, v.FieldByIndex(f), fp)
	}
}

func joinPath(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

type structFields struct {
	byName map[string][]int
	names  []string
}

var fieldCache sync.Map // reflect.Type → *structFields

// fieldsOf maps json names to field indexes, flattening embedded structs
// the way encoding/json does.
func fieldsOf(t reflect.Type) *structFields {
	if f, ok := fieldCache.Load(t); ok {
		return f.(*structFields)
	}
	sf := &structFields{byName: map[string][]int{}}
	var walk func(t reflect.Type, index []int)
	walk = func(t reflect.Type, index []int) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag := f.Tag.Get("json")
			if tag == "-" {
				continue
			}
			name, _, _ := strings.Cut(tag, ",")
			idx := append(append([]int(nil), index...), i)
			if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
				walk(f.Type, idx)
				continue
			}
			if !f.IsExported() {
				continue
			}
			if name == "" {
				name = f.Name
			}
			if _, dup := sf.byName[name]; !dup {
				sf.byName[name] = idx
				sf.names = append(sf.names, name)
			}
		}
	}
	walk(t, nil)
	sort.Strings(sf.names)
	fieldCache.Store(t, sf)
	return sf
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

func tagWord(tag string) string {
	switch tag {
	case "!!int":
		return "integer"
	case "!!float":
		return "number"
	case "!!bool":
		return "boolean"
	case "!!null":
		return "null"
	case "!!timestamp":
		return "timestamp"
	}
	return "value"
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.ShortTag() == "!!str" {
			return fmt.Sprintf("string %q", n.Value)
		}
		return tagWord(n.ShortTag()) + " " + n.Value
	}
	return "a value"
}

// nodeJSON converts a node to JSON, for types that decode themselves.
func nodeJSON(n *yaml.Node) ([]byte, error) {
	var x any
	if err := n.Decode(&x); err != nil {
		return nil, fmt.Errorf("cannot read value: %v", err)
	}
	b, err := json.Marshal(x)
	if err != nil {
		return nil, fmt.Errorf("value cannot be represented as JSON (mapping keys must be strings)")
	}
	if r, ok := unprintable(string(b)); ok {
		return nil, fmt.Errorf("contains the control character %U", r)
	}
	return b, nil
}

// unprintable finds a character that YAML forbids in a file and that
// encoding/json writes unescaped: a string holding one (written as a YAML
// escape such as "\x80") could not be read back from the JSON apply sends.
func unprintable(s string) (rune, bool) {
	for _, r := range s {
		if r == 0x7F || r >= 0x80 && r <= 0x9F && r != 0x85 || r == 0xFFFE || r == 0xFFFF {
			return r, true
		}
	}
	return 0, false
}

// suggest proposes the closest known field name.
func suggest(name string, known []string) string {
	best, bestD := "", 3
	for _, k := range known {
		if strings.EqualFold(k, name) {
			return fmt.Sprintf("did you mean %q? (field names are case-sensitive)", k)
		}
		if d := EditDistance(strings.ToLower(name), strings.ToLower(k)); d < bestD {
			best, bestD = k, d
		}
	}
	if best != "" {
		return fmt.Sprintf("did you mean %q?", best)
	}
	if len(known) <= 12 {
		return "known fields here: " + strings.Join(known, ", ")
	}
	return "remove it, or check the field's spelling and indentation"
}

// EditDistance is the Levenshtein distance between a and b, in bytes: how far a misspelt
// name is from a known one.
func EditDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
