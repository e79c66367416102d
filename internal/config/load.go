// Package config reads Citadel resources from YAML or JSON: files,
// directories and streams with any number of documents. Decoding is strict
// (unknown fields, wrong types and bad values are errors), defaults are
// applied in one place (api/v1 Default), and every problem of every document
// is reported at once with the file, the document index, the line, the field
// path and a fix. A caller that gets any error must apply nothing.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	v1 "citadel.dev/citadel/api/v1"
)

// Source says where an object was read from.
type Source = v1.Source

// Item is one decoded, defaulted and validated object.
type Item struct {
	Source Source
	Object v1.Object
	// pos maps field paths to positions, for errors found later.
	pos map[string]position
}

// Key identifies an item's object.
func (it Item) Key() ObjectKey { return KeyOf(it.Object) }

// ObjectKey is kind, namespace and name: [v1.Key], the identity every other package uses.
// It stays a type of this package so that config's own unkeyed literals stay local ones.
type ObjectKey v1.Key

func (k ObjectKey) String() string { return v1.Key(k).String() }

// KeyOf returns an object's key.
func KeyOf(o v1.Object) ObjectKey { return ObjectKey(v1.KeyOf(o)) }

// Error is one problem in one document: file, document, line, field path,
// message and fix. It is the admin API's wire type, so the server's
// answers print exactly like local errors.
type Error = v1.Problem

// Errors is every problem found; it is an error when any entry is not a warning.
type Errors []*Error

func (l Errors) Error() string {
	msgs := make([]string, len(l))
	for i, e := range l {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "\n")
}

// Skipped returns the notes on documents that were read but not decoded
// because Citadel does not manage their kind (v1/Namespace, a Kustomization
// and the like). A client applying through the admin API prints them
// itself: the server never sees those documents.
func (l Errors) Skipped() Errors {
	var out Errors
	for _, e := range l {
		if _, citadel := v1.KindByName(e.Kind); e.Warning && e.Kind != "" && !citadel {
			out = append(out, e)
		}
	}
	return out
}

// unmanaged reports whether a document is one Citadel reads past with a
// note instead of refusing: a kind Citadel does not have, from Kubernetes'
// core API (apiVersion v1), another API group (apps/v1, *.k8s.io, keda.sh,
// ...), or OME's own kinds Citadel does not implement. A kind Citadel lacks
// under its own groups stays an error: it is a typo of one it has.
func unmanaged(apiVersion, kind string) bool {
	if apiVersion == "" || kind == "" {
		return false
	}
	group, _, grouped := strings.Cut(apiVersion, "/")
	switch {
	case !grouped:
		return true // the core group: v1/Namespace, v1/ConfigMap, v1/ServiceAccount, ...
	case group == "ome.io":
		return omeOnlyKinds[kind]
	case group == "citadel.dev":
		return false
	}
	return true
}

// omeOnlyKinds are OME's kinds that Citadel does not implement.
var omeOnlyKinds = map[string]bool{"AcceleratorClass": true, "BenchmarkJob": true}

func unmanagedFix(kind string) string {
	switch kind {
	case "Namespace":
		return "nothing to do: namespaces exist implicitly in Citadel, as soon as an object names one"
	case "BenchmarkJob":
		return "run the benchmark with citadel bench instead"
	case "AcceleratorClass":
		return "nothing to do: citadel serve reads the host's GPUs itself (see citadel get gpus)"
	}
	return "Citadel manages ClusterBaseModel, BaseModel, ClusterServingRuntime, ServingRuntime, InferenceService, Route and Secret; apply this object to Kubernetes if you need it"
}

// Fatal returns the entries that are not warnings.
func (l Errors) Fatal() Errors { return l.filter(false) }

// Warnings returns the warning entries.
func (l Errors) Warnings() Errors { return l.filter(true) }

func (l Errors) filter(warning bool) Errors {
	var out Errors
	for _, e := range l {
		if e.Warning == warning {
			out = append(out, e)
		}
	}
	return out
}

// Err returns l as an error when it holds a fatal entry, else nil.
func (l Errors) Err() error {
	if len(l.Fatal()) == 0 {
		return nil
	}
	return l
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// Decode reads every document of r. name is used in messages ("-" for
// stdin). It returns the valid items, and all problems (warnings
// included); when the problems include a fatal one the items must not be
// applied.
func Decode(r io.Reader, name string) ([]Item, Errors) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, Errors{{File: name, Message: fmt.Sprintf("reading: %v", err)}}
	}
	var items []Item
	var errs Errors
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for doc := 1; ; doc++ {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			errs = append(errs, syntaxError(name, doc, data, err))
			break // the YAML stream cannot be resumed after a syntax error
		}
		if len(n.Content) == 0 {
			doc-- // an empty document (comments only, or a trailing ---)
			continue
		}
		root := n.Content[0]
		if isNull(root) {
			doc--
			continue
		}
		if root.Kind == yaml.MappingNode && scalarField(root, "kind") == "List" {
			its, es := decodeList(root, name, doc)
			items, errs = append(items, its...), append(errs, es...)
			continue
		}
		it, es := decodeObject(root, Source{File: name, Document: doc, Line: root.Line}, "")
		if it != nil {
			items = append(items, *it)
		}
		errs = append(errs, es...)
	}
	return items, errs
}

func decodeList(root *yaml.Node, name string, doc int) ([]Item, Errors) {
	var items []Item
	var errs Errors
	var list *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		switch k := root.Content[i].Value; k {
		case "items":
			list = root.Content[i+1]
		case "apiVersion", "kind", "metadata":
		default:
			errs = append(errs, &Error{File: name, Document: doc, Line: root.Content[i].Line, Column: root.Content[i].Column, Kind: "List", Path: k, Message: fmt.Sprintf("unknown field %q", k), Fix: "a List has apiVersion, kind and items"})
		}
	}
	if list == nil || list.Kind != yaml.SequenceNode {
		return nil, append(errs, &Error{File: name, Document: doc, Line: root.Line, Kind: "List", Path: "items", Message: "is missing or not a list"})
	}
	for i, c := range list.Content {
		it, es := decodeObject(c, Source{File: name, Document: doc, Line: c.Line}, fmt.Sprintf("items[%d].", i))
		if it != nil {
			items = append(items, *it)
		}
		errs = append(errs, es...)
	}
	return items, errs
}

// valueNode returns the value of key in mapping m, or m when there is none.
func valueNode(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return m
}

func scalarField(m *yaml.Node, key string) string {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key && m.Content[i+1].Kind == yaml.ScalarNode {
			return m.Content[i+1].Value
		}
	}
	return ""
}

func syntaxError(name string, doc int, data []byte, err error) *Error {
	msg := err.Error()
	e := &Error{File: name, Document: doc, Message: "invalid YAML: " + strings.TrimPrefix(msg, "yaml: ")}
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		e.Line, _ = strconv.Atoi(m[1])
		e.Message = "invalid YAML: " + m[2]
	}
	if bytes.Contains(data, []byte("\t")) && strings.Contains(msg, "cannot start any token") {
		e.Fix = "YAML does not allow tabs for indentation: use spaces"
	} else {
		e.Fix = "check the indentation and quoting around this line"
	}
	return e
}

// decodeObject decodes, defaults and validates one object node.
func decodeObject(root *yaml.Node, src Source, prefix string) (*Item, Errors) {
	errAt := func(n *yaml.Node, path, msg, fix string) *Error {
		return &Error{File: src.File, Document: src.Document, Line: n.Line, Column: n.Column, Path: prefix + path, Message: msg, Fix: fix}
	}
	if root.Kind != yaml.MappingNode {
		return nil, Errors{errAt(root, "", "a document must be a mapping with apiVersion, kind, metadata and spec, got "+describe(root), "")}
	}
	kind, apiVersion := scalarField(root, "kind"), scalarField(root, "apiVersion")
	if kind == "" {
		return nil, Errors{errAt(root, "kind", "is missing", "say what this is, e.g. kind: ClusterBaseModel")}
	}
	info, ok := v1.KindByName(kind)
	if !ok && unmanaged(apiVersion, kind) {
		return nil, Errors{{File: src.File, Document: src.Document, Line: root.Line, Column: root.Column,
			Kind: apiVersion + "/" + kind, Name: scalarMeta(root, "name"), Warning: true,
			Message: "not managed by Citadel; skipped", Fix: unmanagedFix(kind)}}
	}
	if !ok {
		fix := "known kinds: ClusterBaseModel, BaseModel, ClusterServingRuntime, ServingRuntime, InferenceService, Route, Secret"
		if k, err := v1.LookupKind(kind); err == nil {
			fix = fmt.Sprintf("did you mean kind: %s?", k.Kind)
		}
		return nil, Errors{errAt(valueNode(root, "kind"), "kind", fmt.Sprintf("unknown kind %q", kind), fix)}
	}
	name := scalarMeta(root, "name")
	var errs Errors
	tag := func(e *Error) *Error {
		e.Kind, e.Name = kind, name
		return e
	}
	if apiVersion == "" {
		errs = append(errs, tag(errAt(root, "apiVersion", "is missing", "add apiVersion: "+info.APIVersion)))
	} else if apiVersion != info.APIVersion {
		errs = append(errs, tag(errAt(valueNode(root, "apiVersion"), "apiVersion", fmt.Sprintf("%s is not served as %q", kind, apiVersion), "use apiVersion: "+info.APIVersion)))
	}
	obj := info.New()
	d := &decoder{pos: map[string]position{}}
	d.decode(root, reflect.ValueOf(obj).Elem(), "")
	for _, p := range d.errs {
		errs = append(errs, tag(&Error{File: src.File, Document: src.Document, Line: p.pos.line, Column: p.pos.col, Path: prefix + p.path, Message: p.message, Fix: p.fix}))
	}
	if d.values > maxValues {
		return nil, errs // the object was cut short: validating it only adds noise
	}
	// A half-decoded object is still validated, so that every problem is
	// reported at once, but not where a value failed to decode.
	obj.Default()
	for _, fe := range obj.Validate() {
		if d.failed(fe.Path) {
			continue
		}
		p := d.lookup(fe.Path)
		errs = append(errs, tag(&Error{File: src.File, Document: src.Document, Line: p.line, Column: p.col, Path: prefix + fe.Path, Message: fe.Message, Fix: fe.Fix, Warning: fe.Warning}))
	}
	// Decoding and validation find problems in different orders: report
	// them in the order of the file.
	sort.SliceStable(errs, func(i, j int) bool {
		if errs[i].Line != errs[j].Line {
			return errs[i].Line < errs[j].Line
		}
		return errs[i].Column < errs[j].Column
	})
	if len(errs.Fatal()) > 0 {
		return nil, errs
	}
	return &Item{Source: src, Object: obj, pos: d.pos}, errs
}

// failed reports whether validation problem at path echoes one decoding
// already reported: path is at or under a value that did not decode, or,
// after an unknown field, under a known field with a similar name
// ("spec.model.name: is required" after "unknown field modle").
func (d *decoder) failed(path string) bool {
	for _, e := range d.errs {
		if under(path, e.path) {
			return true
		}
		if !e.unknown {
			continue
		}
		parent, leaf := "", e.path
		if i := strings.LastIndexByte(e.path, '.'); i >= 0 {
			parent, leaf = e.path[:i+1], e.path[i+1:]
		}
		if rest, ok := strings.CutPrefix(path, parent); ok {
			if i := strings.IndexAny(rest, ".["); i >= 0 {
				rest = rest[:i]
			}
			if EditDistance(strings.ToLower(rest), strings.ToLower(leaf)) < 3 {
				return true
			}
		}
	}
	return false
}

// under reports whether path is p or below it, ignoring case.
func under(path, p string) bool {
	n := len(p)
	return len(path) >= n && strings.EqualFold(path[:n], p) && (len(path) == n || path[n] == '.' || path[n] == '[')
}

// lookup finds the position of path or of its closest ancestor.
func (d *decoder) lookup(path string) position {
	for p := path; ; {
		if pos, ok := d.pos[p]; ok {
			return pos
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			return d.pos[""]
		}
		p = p[:i]
	}
}

func scalarMeta(root *yaml.Node, key string) string {
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value == "metadata" && root.Content[i+1].Kind == yaml.MappingNode {
			return scalarField(root.Content[i+1], key)
		}
	}
	return ""
}

// LoadOptions control Load.
type LoadOptions struct {
	// Recursive descends into subdirectories (-R).
	Recursive bool
	// Stdin is read for the path "-".
	Stdin io.Reader
}

// Load reads files, directories (their .yaml, .yml and .json files, in
// lexical order) and "-" (stdin). It returns all items and all problems,
// including duplicates across files; with any fatal problem nothing may be applied.
func Load(paths []string, opts LoadOptions) ([]Item, Errors) {
	var items []Item
	var errs Errors
	for _, p := range paths {
		if p == "-" {
			if opts.Stdin == nil {
				errs = append(errs, &Error{File: "-", Message: "no standard input"})
				continue
			}
			its, es := Decode(opts.Stdin, "-")
			items, errs = append(items, its...), append(errs, es...)
			continue
		}
		files, err := expand(p, opts.Recursive)
		if err != nil {
			errs = append(errs, &Error{File: p, Message: err.Error()})
			continue
		}
		for _, f := range files {
			fh, err := os.Open(f)
			if err != nil {
				errs = append(errs, &Error{File: f, Message: err.Error()})
				continue
			}
			its, es := Decode(fh, f)
			fh.Close()
			items, errs = append(items, its...), append(errs, es...)
		}
	}
	errs = append(errs, Duplicates(items)...)
	return items, errs
}

func expand(p string, recursive bool) ([]string, error) {
	st, err := os.Stat(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("no such file or directory")
		}
		return nil, err
	}
	if !st.IsDir() {
		return []string{p}, nil
	}
	var files []string
	var nested []string
	err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != p && !recursive {
				nested = append(nested, path)
				return filepath.SkipDir
			}
			return nil
		}
		switch strings.ToLower(filepath.Ext(path)) {
		case ".yaml", ".yml", ".json":
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	if len(files) == 0 {
		if len(nested) > 0 && !recursive {
			return nil, fmt.Errorf("directory has no .yaml, .yml or .json files at its top level, only subdirectories (%s): pass -R to descend into them", strings.Join(nested, ", "))
		}
		return nil, fmt.Errorf("directory has no .yaml, .yml or .json files")
	}
	return files, nil
}

// Duplicates reports objects declared more than once.
func Duplicates(items []Item) Errors {
	var errs Errors
	first := map[ObjectKey]Source{}
	for _, it := range items {
		k := it.Key()
		if prev, dup := first[k]; dup {
			errs = append(errs, it.errorAt("metadata.name", fmt.Sprintf("duplicate: %s is also declared at %s", k, prev), "rename one of them or remove the copy", false))
			continue
		}
		first[k] = it.Source
	}
	return errs
}

// DecodeItem decodes one object sent as JSON (or YAML) by a client, with the
// source the client read it from. Lines in errors are left for the client
// to fill (see Locate): positions in raw say nothing about the user's file.
func DecodeItem(raw []byte, src Source) (*Item, Errors) {
	var n yaml.Node
	if err := yaml.Unmarshal(raw, &n); err != nil || len(n.Content) == 0 {
		msg := "empty object"
		if err != nil {
			msg = "invalid JSON: " + strings.TrimPrefix(err.Error(), "yaml: ")
		}
		return nil, Errors{{File: src.File, Document: src.Document, Line: src.Line, Message: msg}}
	}
	it, errs := decodeObject(n.Content[0], src, "")
	for _, e := range errs {
		e.Line, e.Column = src.Line, 0
	}
	if it != nil {
		it.pos = nil
	}
	return it, errs
}
