// Package apidoc describes the resource kinds of api/v1 from their Go source: each field's
// JSON path, its type as it is written in YAML, whether it is required, its doc comment and
// the values it allows. It reads the source with go/parser and go/doc, so it serves
// generators and tests (docs/reference.md, CRD descriptions), never the server: a built
// binary has no source to read.
//
// Required fields and allowed values come from the code as well as the tags: a field is
// required when its JSON tag has neither omitempty nor omitzero, or when a Validate method
// reports it "is required"; its values are those of the typed constants of its named string
// type, or those a Validate method passes to oneOf.
package apidoc

import (
	"errors"
	"fmt"
	"go/ast"
	"go/doc"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"strings"
)

// Package is the documented types of one Go package.
type Package struct {
	// Dir is the directory the source was read from.
	Dir string
	// Types are the package's named types, by Go name.
	Types map[string]*Type
}

// Type is a named type of the package.
type Type struct {
	// Name is the Go name, such as "StorageSpec".
	Name string
	// Doc is the doc comment, as text (go/doc's Synopsis of it is Summary).
	Doc string
	// Struct says the type is a struct written as a YAML mapping: Fields are its keys.
	Struct bool
	// Fields are a struct's fields in declaration order; an embedded inline struct's
	// fields are listed as the struct's own (Field.Inline marks where they came from).
	Fields []*Field
	// YAML is the type as YAML writes it, for a type that is not a mapping: "string",
	// "integer", "integer or string", "string (RFC 3339 time)".
	YAML string
	// Enum lists the values of the typed constants of a named string type, in declaration
	// order; empty when it has none.
	Enum []string
}

// Summary is the first sentence of the type's doc comment.
func (t *Type) Summary() string { return synopsis(t.Doc) }

// Field is one key of a struct.
type Field struct {
	// GoName is the field's Go name.
	GoName string
	// Name is the JSON (and YAML) key.
	Name string
	// Inline is set on a field that came from an embedded struct written inline
	// (`json:",inline"`), such as TypeMeta's apiVersion and kind: InlineFrom names it.
	Inline     bool
	InlineFrom string
	// GoType is the Go type expression, such as "*StorageSpec" or "map[string]string".
	GoType string
	// YAML is the type as YAML writes it: "string", "integer", "number", "boolean",
	// "object", "any", "[]string", "[]Container", "map[string]Quantity" and so on.
	YAML string
	// Ref is the package's struct type the field holds (through pointers, slices and map
	// values), whose fields nest under this one; "" when it holds none.
	Ref string
	// Required says the field must be given: its tag has neither omitempty nor omitzero,
	// or a Validate method reports it "is required".
	Required bool
	// RequiredBy says why Required is set: "tag" or "validation".
	RequiredBy string
	// Doc is the field's doc comment (or its line comment), as text.
	Doc string
	// Enum lists the values the field allows, from its type's constants or from the
	// oneOf checks of a Validate method; empty when any value of its type goes.
	Enum []string

	// Named is the named type of the package the field holds, through pointers and lists
	// ("Quantity", "StorageSpec"); "" for a predeclared or another package's type.
	Named string
}

// Summary is the first sentence of the field's doc comment.
func (f *Field) Summary() string { return synopsis(f.Doc) }

// ModuleRoot is the root of the module's checkout, found from this file's own path
// (runtime.Caller), so that it works from any working directory of a test or a go generate
// run in the module.
func ModuleRoot() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("apidoc: the source path of this package is unknown (built with -trimpath?)")
	}
	root := filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		return "", fmt.Errorf("apidoc: no module at %s (%v): run from a checkout of the module", root, err)
	}
	return root, nil
}

// SourceDir is the directory of api/v1's source in the module's checkout (ModuleRoot).
func SourceDir() (string, error) {
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(root, "api", "v1")
	if _, err := os.Stat(filepath.Join(dir, "kinds.go")); err != nil {
		return "", fmt.Errorf("apidoc: api/v1's source is not at %s (%v): run from a checkout of the module", dir, err)
	}
	return dir, nil
}

// LoadAPI reads api/v1 from SourceDir.
func LoadAPI() (*Package, error) {
	dir, err := SourceDir()
	if err != nil {
		return nil, err
	}
	return Load(dir)
}

// scalarStructs are struct types that encode as a YAML scalar (their own MarshalJSON and
// UnmarshalJSON). Load fails on any other struct with an UnmarshalJSON, so that a new one
// is not documented as a mapping by mistake.
var scalarStructs = map[string]string{
	"Time":        "string (RFC 3339 time)",
	"IntOrString": "integer or string",
}

// Load reads the Go files of the package in dir, leaving out tests.
func Load(dir string) (*Package, error) {
	fset := token.NewFileSet()
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var files []*ast.File
	for _, e := range ents {
		n := e.Name()
		if !strings.HasSuffix(n, ".go") || strings.HasSuffix(n, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, n), nil, parser.ParseComments)
		if err != nil {
			return nil, err
		}
		files = append(files, f)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("apidoc: no Go files in %s", dir)
	}
	l := &loader{fset: fset, pkg: &Package{Dir: dir, Types: map[string]*Type{}}, consts: map[string]string{}, lists: map[string][]string{}, specs: map[string]*ast.TypeSpec{}, unmarshal: map[string]bool{}}
	// go/doc groups each typed constant with its type; with PreserveAST the files stay
	// usable for the pass over Validate methods below.
	dp, err := doc.NewFromFiles(fset, files, "citadel.dev/citadel/api/v1", doc.PreserveAST|doc.AllDecls)
	if err != nil {
		return nil, err
	}
	l.collectValues(files)
	for _, t := range dp.Types {
		for _, m := range t.Methods {
			if m.Name == "UnmarshalJSON" {
				l.unmarshal[t.Name] = true
			}
		}
		for _, spec := range t.Decl.Specs {
			if ts, ok := spec.(*ast.TypeSpec); ok && ts.Name.Name == t.Name {
				l.specs[t.Name] = ts
			}
		}
	}
	for _, t := range dp.Types {
		typ, err := l.typeOf(t)
		if err != nil {
			return nil, err
		}
		l.pkg.Types[t.Name] = typ
	}
	for _, t := range l.pkg.Types {
		for _, f := range t.Fields {
			if nt := l.pkg.Types[f.Named]; nt != nil && len(f.Enum) == 0 {
				f.Enum = nt.Enum
			}
		}
	}
	for _, f := range files {
		l.applyChecks(f)
	}
	for _, t := range l.pkg.Types {
		l.flatten(t, nil)
	}
	return l.pkg, nil
}

type loader struct {
	fset      *token.FileSet
	pkg       *Package
	consts    map[string]string   // constant name → string value
	lists     map[string][]string // package variable → its string list ([]string{…})
	specs     map[string]*ast.TypeSpec
	unmarshal map[string]bool // types with an UnmarshalJSON method
}

// collectValues records the string constants and the package-level []string variables.
func (l *loader) collectValues(files []*ast.File) {
	for _, f := range files {
		for _, d := range f.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || (gd.Tok != token.CONST && gd.Tok != token.VAR) {
				continue
			}
			for _, s := range gd.Specs {
				vs := s.(*ast.ValueSpec)
				for i, n := range vs.Names {
					if i >= len(vs.Values) {
						continue
					}
					switch v := vs.Values[i].(type) {
					case *ast.BasicLit:
						if s, err := strconv.Unquote(v.Value); err == nil && v.Kind == token.STRING {
							l.consts[n.Name] = s
						}
					case *ast.CompositeLit:
						l.lists[n.Name] = l.stringList(v.Elts)
					}
				}
			}
		}
	}
}

// stringList evaluates string literals and constants; others are left out.
func (l *loader) stringList(elts []ast.Expr) []string {
	var out []string
	for _, e := range elts {
		if s, ok := l.stringValue(e); ok {
			out = append(out, s)
		}
	}
	return out
}

func (l *loader) stringValue(e ast.Expr) (string, bool) {
	switch v := e.(type) {
	case *ast.BasicLit:
		if v.Kind == token.STRING {
			s, err := strconv.Unquote(v.Value)
			return s, err == nil
		}
	case *ast.Ident:
		s, ok := l.consts[v.Name]
		return s, ok
	}
	return "", false
}

func (l *loader) typeOf(t *doc.Type) (*Type, error) {
	ts := l.specs[t.Name]
	typ := &Type{Name: t.Name, Doc: strings.TrimSpace(t.Doc)}
	if ts == nil {
		return typ, nil
	}
	if y, ok := scalarStructs[t.Name]; ok {
		typ.YAML = y
		return typ, nil
	}
	st, ok := ts.Type.(*ast.StructType)
	if !ok {
		typ.YAML, _ = l.yamlType(ts.Type)
		for _, c := range t.Consts {
			for _, s := range c.Decl.Specs {
				vs := s.(*ast.ValueSpec)
				for i, n := range vs.Names {
					if id, ok := vs.Type.(*ast.Ident); ok && id.Name == t.Name && i < len(vs.Values) {
						if v, ok := l.stringValue(vs.Values[i]); ok {
							typ.Enum = append(typ.Enum, v)
						}
					}
					_ = n
				}
			}
		}
		return typ, nil
	}
	if l.unmarshal[t.Name] {
		return nil, fmt.Errorf("apidoc: struct %s has its own UnmarshalJSON: add its YAML form to scalarStructs", t.Name)
	}
	typ.Struct = true
	for _, af := range st.Fields.List {
		name, inline, skip := jsonName(af)
		if skip {
			continue
		}
		docText := af.Doc.Text()
		if docText == "" {
			docText = af.Comment.Text()
		}
		yaml, ref := l.yamlType(af.Type)
		f := &Field{Name: name, Inline: inline, GoType: exprString(af.Type), YAML: yaml, Ref: ref, Doc: strings.TrimSpace(docText)}
		f.Named = strings.TrimLeft(f.GoType, "*[]")
		if len(af.Names) > 0 {
			f.GoName = af.Names[0].Name
		} else {
			f.GoName = strings.TrimPrefix(f.GoType, "*")
		}
		if !inline && !omitted(af) {
			f.Required, f.RequiredBy = true, "tag"
		}
		// several names in one declaration (A, B string) share it
		if len(af.Names) > 1 {
			for _, n := range af.Names {
				g := *f
				g.GoName, g.Name = n.Name, n.Name
				typ.Fields = append(typ.Fields, &g)
			}
			continue
		}
		typ.Fields = append(typ.Fields, f)
	}
	return typ, nil
}

// flatten replaces each inline field by the fields of the struct it embeds.
func (l *loader) flatten(t *Type, seen []string) {
	if !t.Struct || slices.Contains(seen, t.Name) {
		return
	}
	var out []*Field
	for _, f := range t.Fields {
		if !f.Inline {
			out = append(out, f)
			continue
		}
		in := l.pkg.Types[f.Ref]
		if in == nil {
			continue // an embedded type of another package (time.Time): not a mapping
		}
		l.flatten(in, append(seen, t.Name))
		for _, g := range in.Fields {
			c := *g
			c.Inline, c.InlineFrom = true, in.Name
			out = append(out, &c)
		}
	}
	t.Fields = out
}

// jsonName is the field's key; inline for an embedded struct without a name of its own.
func jsonName(f *ast.Field) (name string, inline, skip bool) {
	tag := ""
	if f.Tag != nil {
		tag, _ = strconv.Unquote(f.Tag.Value)
	}
	j := reflect.StructTag(tag).Get("json")
	if j == "-" {
		return "", false, true
	}
	n, opts, _ := strings.Cut(j, ",")
	if len(f.Names) == 0 {
		if n == "" || strings.Contains(opts, "inline") {
			return "", true, false
		}
		return n, false, false
	}
	if !f.Names[0].IsExported() {
		return "", false, true
	}
	if n == "" {
		n = f.Names[0].Name
	}
	return n, false, false
}

// omitted says the field's tag lets it be left out (omitempty, omitzero).
func omitted(f *ast.Field) bool {
	if f.Tag == nil {
		return false
	}
	tag, _ := strconv.Unquote(f.Tag.Value)
	_, opts, _ := strings.Cut(reflect.StructTag(tag).Get("json"), ",")
	for _, o := range strings.Split(opts, ",") {
		if o == "omitempty" || o == "omitzero" {
			return true
		}
	}
	return false
}

// yamlType renders a Go type as YAML writes it, with the package's struct it holds.
func (l *loader) yamlType(e ast.Expr) (yaml, ref string) {
	switch t := e.(type) {
	case *ast.StarExpr:
		return l.yamlType(t.X)
	case *ast.ArrayType:
		if id, ok := t.Elt.(*ast.Ident); ok && id.Name == "byte" {
			return "string (base64)", ""
		}
		y, r := l.yamlType(t.Elt)
		return "[]" + y, r
	case *ast.MapType:
		k, _ := l.yamlType(t.Key)
		v, r := l.yamlType(t.Value)
		return "map[" + k + "]" + v, r
	case *ast.SelectorExpr:
		switch exprString(t) {
		case "json.RawMessage":
			return "any", ""
		case "time.Time":
			return "string (RFC 3339 time)", ""
		case "time.Duration":
			return "string (Go duration)", ""
		}
		return "object", ""
	case *ast.InterfaceType:
		return "any", ""
	case *ast.StructType:
		return "object", ""
	case *ast.Ident:
		switch t.Name {
		case "string":
			return "string", ""
		case "bool":
			return "boolean", ""
		case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64":
			return "integer", ""
		case "float32", "float64":
			return "number", ""
		case "any":
			return "any", ""
		}
		if y, ok := scalarStructs[t.Name]; ok {
			return y, ""
		}
		ts := l.specs[t.Name]
		if ts == nil {
			return t.Name, ""
		}
		if _, ok := ts.Type.(*ast.StructType); ok {
			return t.Name, t.Name
		}
		y, _ := l.yamlType(ts.Type)
		return y, ""
	}
	return "any", ""
}

func exprString(e ast.Expr) string {
	switch t := e.(type) {
	case *ast.Ident:
		return t.Name
	case *ast.StarExpr:
		return "*" + exprString(t.X)
	case *ast.ArrayType:
		return "[]" + exprString(t.Elt)
	case *ast.MapType:
		return "map[" + exprString(t.Key) + "]" + exprString(t.Value)
	case *ast.SelectorExpr:
		return exprString(t.X) + "." + t.Sel.Name
	case *ast.InterfaceType:
		return "any"
	case *ast.StructType:
		return "struct{…}"
	}
	return fmt.Sprintf("%T", e)
}

func synopsis(s string) string {
	var p doc.Package
	return p.Synopsis(s)
}

// Walk calls fn for each field of the struct type name and, depth first, for the fields of
// the structs they hold, with its path: keys joined by dots, "[]" after a list's key and
// ".*" after a map's (spec.containers[].env[].name). fn returns false to leave out what
// nests under the field. A type is not entered again inside itself.
func (p *Package) Walk(name string, fn func(path string, f *Field) bool) error {
	t := p.Types[name]
	if t == nil || !t.Struct {
		return fmt.Errorf("apidoc: %s is not a struct type of %s", name, p.Dir)
	}
	p.walk(t, "", []string{name}, fn)
	return nil
}

func (p *Package) walk(t *Type, prefix string, stack []string, fn func(string, *Field) bool) {
	for _, f := range t.Fields {
		if f.Inline && f.Name == "" { // not flattened yet (while Load reads the checks)
			if in := p.Types[f.Ref]; in != nil && in.Struct && !slices.Contains(stack, f.Ref) {
				p.walk(in, prefix, append(stack, f.Ref), fn)
			}
			continue
		}
		path := prefix + f.Name
		if !fn(path, f) || f.Ref == "" || slices.Contains(stack, f.Ref) {
			continue
		}
		in := p.Types[f.Ref]
		if in == nil || !in.Struct {
			continue
		}
		p.walk(in, path+containers(f.YAML)+".", append(stack, f.Ref), fn)
	}
}

// containers is the "[]" and ".*" a path takes for the lists and maps around a field's type.
func containers(yaml string) string {
	var s string
	for {
		switch {
		case strings.HasPrefix(yaml, "[]"):
			s += "[]"
			yaml = yaml[2:]
		case strings.HasPrefix(yaml, "map["):
			s += ".*"
			_, yaml, _ = strings.Cut(yaml, "]")
		default:
			return s
		}
	}
}

// Kind is the struct type of a resource kind (its Go name is the kind's name).
func (p *Package) Kind(kind string) (*Type, error) {
	t := p.Types[kind]
	if t == nil || !t.Struct {
		return nil, fmt.Errorf("apidoc: no struct type %s in %s", kind, p.Dir)
	}
	return t, nil
}

// applyChecks reads the Validate methods (and the helpers they call, with a struct
// parameter) of one file: a field reported "is required" is required, and the values a
// oneOf check allows are its Enum.
func (l *loader) applyChecks(f *ast.File) {
	for _, d := range f.Decls {
		fd, ok := d.(*ast.FuncDecl)
		if !ok || fd.Body == nil {
			continue
		}
		base := l.baseType(fd)
		if base == "" {
			continue
		}
		ast.Inspect(fd.Body, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) < 2 {
				return true
			}
			switch fun := call.Fun.(type) {
			case *ast.Ident: // oneOf(&errs, path, value, allowed...)
				if fun.Name != "oneOf" || len(call.Args) < 4 {
					return true
				}
				var vals []string
				if call.Ellipsis.IsValid() {
					vals = l.listValue(call.Args[3])
				} else {
					vals = l.stringList(call.Args[3:])
				}
				if fld := l.resolve(base, pathSuffix(call.Args[1])); fld != nil && len(vals) > 0 && len(fld.Enum) == 0 {
					fld.Enum = vals
				}
			case *ast.SelectorExpr: // errs.Add(path, "is required…", fix)
				msg, ok := l.stringValue(call.Args[1])
				if fun.Sel.Name != "Add" || !ok || !strings.HasPrefix(msg, "is required") {
					return true
				}
				if fld := l.resolve(base, pathSuffix(call.Args[0])); fld != nil && !fld.Required {
					fld.Required, fld.RequiredBy = true, "validation"
				}
			}
			return true
		})
	}
}

// baseType is the struct a function checks: its receiver, or its first parameter of a
// struct type of the package.
func (l *loader) baseType(fd *ast.FuncDecl) string {
	var fields []*ast.Field
	if fd.Recv != nil {
		fields = fd.Recv.List
	} else if fd.Type.Params != nil {
		fields = fd.Type.Params.List
	}
	for _, p := range fields {
		e := p.Type
		if a, ok := e.(*ast.ArrayType); ok {
			e = a.Elt
		}
		if s, ok := e.(*ast.StarExpr); ok {
			e = s.X
		}
		if id, ok := e.(*ast.Ident); ok {
			if t := l.pkg.Types[id.Name]; t != nil && t.Struct {
				return id.Name
			}
		}
		if fd.Recv != nil {
			break
		}
	}
	return ""
}

// listValue evaluates the list passed to a variadic oneOf: a package variable, or
// slices.DeleteFunc(slices.Clone(list), func(n string) bool { return n == "x" }).
func (l *loader) listValue(e ast.Expr) []string {
	switch v := e.(type) {
	case *ast.Ident:
		return l.lists[v.Name]
	case *ast.CallExpr:
		name := exprString(v.Fun)
		switch {
		case name == "slices.Clone" && len(v.Args) == 1:
			return l.listValue(v.Args[0])
		case name == "slices.DeleteFunc" && len(v.Args) == 2:
			list := slices.Clone(l.listValue(v.Args[0]))
			drop, ok := l.equalsLiteral(v.Args[1])
			if !ok {
				return nil
			}
			return slices.DeleteFunc(list, func(s string) bool { return s == drop })
		}
	}
	return nil
}

// equalsLiteral reads func(n string) bool { return n == "x" }.
func (l *loader) equalsLiteral(e ast.Expr) (string, bool) {
	fl, ok := e.(*ast.FuncLit)
	if !ok || len(fl.Body.List) != 1 {
		return "", false
	}
	ret, ok := fl.Body.List[0].(*ast.ReturnStmt)
	if !ok || len(ret.Results) != 1 {
		return "", false
	}
	be, ok := ret.Results[0].(*ast.BinaryExpr)
	if !ok || be.Op != token.EQL {
		return "", false
	}
	return l.stringValue(be.Y)
}

// pathSuffix is the literal end of a field path expression ("model.kind",
// p+".task", fmt.Sprintf("volumes[%d].name", i)), without list indexes.
func pathSuffix(e ast.Expr) []string {
	var s string
	switch v := e.(type) {
	case *ast.BasicLit:
		s, _ = strconv.Unquote(v.Value)
	case *ast.BinaryExpr:
		return pathSuffix(v.Y)
	case *ast.CallExpr:
		if exprString(v.Fun) == "fmt.Sprintf" && len(v.Args) > 0 {
			if lit, ok := v.Args[0].(*ast.BasicLit); ok {
				s, _ = strconv.Unquote(lit.Value)
			}
		}
	}
	var segs []string
	for _, seg := range strings.Split(s, ".") {
		if i := strings.IndexByte(seg, '['); i >= 0 {
			seg = seg[:i]
		}
		if seg != "" && !strings.Contains(seg, "%") {
			segs = append(segs, seg)
		}
	}
	return segs
}

// resolve finds the field a checked path names under the struct base: the nearest field
// whose path ends with the segments, dropping leading ones (a path written relative to an
// outer struct, "metadata.name") until one matches.
func (l *loader) resolve(base string, segs []string) *Field {
	type entry struct {
		segs []string
		f    *Field
	}
	var all []entry
	_ = l.pkg.Walk(base, func(path string, f *Field) bool {
		var s []string
		for _, seg := range strings.Split(path, ".") {
			s = append(s, strings.TrimSuffix(seg, "[]"))
		}
		all = append(all, entry{s, f})
		return len(s) < 8
	})
	for len(segs) > 0 {
		var best *entry
		for i := range all {
			e := &all[i]
			if len(e.segs) >= len(segs) && slices.Equal(e.segs[len(e.segs)-len(segs):], segs) && (best == nil || len(e.segs) < len(best.segs)) {
				best = e
			}
		}
		if best != nil {
			return best.f
		}
		segs = segs[1:]
	}
	return nil
}
