package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"go.yaml.in/yaml/v3"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/internal/modelinfo"
)

// column is one table column: a header and how to read it from an object.
type column struct {
	header string
	wide   bool // only with -o wide
	value  func(o v1.Object, now time.Time) string
}

func str(p *string) string {
	if p == nil || *p == "" {
		return "-"
	}
	return *p
}

func age(o v1.Object, now time.Time) string {
	ts := o.GetObjectMeta().CreationTimestamp
	if ts == nil {
		return "-"
	}
	return humanAge(now.Sub(ts.Time))
}

// humanAge formats like kubectl: 45s, 5m, 3h12m, 4d.
func humanAge(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < 2*time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < 10*time.Minute:
		return fmt.Sprintf("%dm%ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 3*time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%dm", int(d.Hours()), int(d.Minutes())%60)
	default:
		return fmt.Sprintf("%dd", int(d.Hours()/24))
	}
}

func modelStatusOf(o v1.Object) (*v1.BaseModelSpec, *v1.ModelStatus) {
	switch m := o.(type) {
	case *v1.ClusterBaseModel:
		return &m.Spec, &m.Status
	case *v1.BaseModel:
		return &m.Spec, &m.Status
	}
	return nil, nil
}

func runtimeSpecOf(o v1.Object) *v1.ServingRuntimeSpec {
	switch r := o.(type) {
	case *v1.ClusterServingRuntime:
		return &r.Spec
	case *v1.ServingRuntime:
		return &r.Spec
	}
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

var modelColumns = []column{
	{"PHASE", false, func(o v1.Object, _ time.Time) string { _, st := modelStatusOf(o); return dash(st.Phase) }},
	{"SIZE", false, func(o v1.Object, _ time.Time) string {
		spec, st := modelStatusOf(o)
		if st.BytesTotal > 0 {
			return modelinfo.FormatBytes(st.BytesTotal)
		}
		if spec.ModelParameterSize != nil {
			return string(*spec.ModelParameterSize) + " params"
		}
		return "-"
	}},
	{"PROGRESS", false, func(o v1.Object, _ time.Time) string {
		_, st := modelStatusOf(o)
		if st.BytesTotal <= 0 {
			return "-"
		}
		p := fmt.Sprintf("%.0f%%", 100*float64(st.BytesDone)/float64(st.BytesTotal))
		if st.BytesPerSecond > 0 && st.Phase == v1.ModelDownloading {
			p += " " + modelinfo.FormatBytes(st.BytesPerSecond) + "/s"
		}
		return p
	}},
	{"REASON", true, func(o v1.Object, _ time.Time) string { _, st := modelStatusOf(o); return dash(st.Reason) }},
	{"URI", true, func(o v1.Object, _ time.Time) string {
		spec, _ := modelStatusOf(o)
		if spec.Storage == nil {
			return "-"
		}
		return str(spec.Storage.StorageURI)
	}},
	{"AGE", false, age},
}

var runtimeColumns = []column{
	{"DISABLED", false, func(o v1.Object, _ time.Time) string {
		d := runtimeSpecOf(o).Disabled
		return fmt.Sprint(d != nil && *d)
	}},
	{"BUILT-IN", false, func(o v1.Object, _ time.Time) string {
		if v1.IsBuiltIn(o.GetObjectMeta()) {
			return "yes"
		}
		return "-"
	}},
	{"ENGINE", false, func(o v1.Object, _ time.Time) string {
		s := runtimeSpecOf(o)
		switch {
		case s.Engine != nil:
			return s.Engine.Name
		case s.EngineConfig != nil && s.EngineConfig.Runner != nil:
			return "runner"
		}
		return "-"
	}},
	{"MODELFORMAT", false, func(o v1.Object, _ time.Time) string {
		return formats(runtimeSpecOf(o), func(f v1.SupportedModelFormat) string {
			if f.ModelFormat == nil {
				return ""
			}
			return f.ModelFormat.Name + versionSuffix(f.ModelFormat.Version)
		})
	}},
	{"MODELFRAMEWORK", true, func(o v1.Object, _ time.Time) string {
		return formats(runtimeSpecOf(o), func(f v1.SupportedModelFormat) string {
			if f.ModelFramework == nil {
				return ""
			}
			return f.ModelFramework.Name + versionSuffix(f.ModelFramework.Version)
		})
	}},
	{"ARCHITECTURE", false, func(o v1.Object, _ time.Time) string {
		s := runtimeSpecOf(o)
		a := formats(s, func(f v1.SupportedModelFormat) string { return str(f.ModelArchitecture) })
		if a == "-" && s.Engine != nil && len(s.SupportedModelFormats) > 0 {
			return "(any)" // a generic runtime matches every architecture of its formats
		}
		return a
	}},
	{"SIZERANGE", false, func(o v1.Object, _ time.Time) string {
		r := runtimeSpecOf(o).ModelSizeRange
		if r == nil {
			return "-"
		}
		lo, hi := "", ""
		if r.Min != nil {
			lo = string(*r.Min)
		}
		if r.Max != nil {
			hi = string(*r.Max)
		}
		return lo + "-" + hi
	}},
	{"AUTOSELECT", false, func(o v1.Object, _ time.Time) string {
		return formats(runtimeSpecOf(o), func(f v1.SupportedModelFormat) string { return fmt.Sprint(f.AutoSelect != nil && *f.AutoSelect) })
	}},
	{"IMAGE", true, func(o v1.Object, _ time.Time) string {
		s := runtimeSpecOf(o)
		if s.Engine != nil {
			return "engine:" + s.Engine.Name
		}
		if s.EngineConfig != nil && s.EngineConfig.Runner != nil {
			return dash(s.EngineConfig.Runner.Image)
		}
		return "-"
	}},
	{"AGE", false, age},
}

func versionSuffix(v *string) string {
	if v == nil || *v == "" {
		return ""
	}
	return ":" + *v
}

// maxListed is how many distinct values a runtime column lists before it
// counts the rest: a built-in runtime lists a hundred architectures.
const maxListed = 3

// formats lists the distinct values f reads from the runtime's supported
// formats, in order, the first maxListed of them and a count of the rest.
func formats(s *v1.ServingRuntimeSpec, f func(v1.SupportedModelFormat) string) string {
	var out []string
	seen := map[string]bool{}
	for _, m := range s.SupportedModelFormats {
		if v := f(m); v != "" && v != "-" && !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	if len(out) == 0 {
		return "-"
	}
	if n := len(out) - maxListed; n > 0 {
		return strings.Join(out[:maxListed], ",") + fmt.Sprintf(",… (+%d)", n)
	}
	return strings.Join(out, ",")
}

var serviceColumns = []column{
	{"MODEL", false, func(o v1.Object, _ time.Time) string {
		s := o.(*v1.InferenceService)
		if s.Spec.Model == nil {
			return "-"
		}
		return s.Spec.Model.Name
	}},
	{"RUNTIME", false, func(o v1.Object, _ time.Time) string {
		s := o.(*v1.InferenceService)
		if s.Status.Runtime != "" {
			return s.Status.Runtime
		}
		if s.Spec.Runtime != nil {
			return s.Spec.Runtime.Name
		}
		return "(auto)"
	}},
	{"PHASE", false, func(o v1.Object, _ time.Time) string { return dash(o.(*v1.InferenceService).Status.Phase) }},
	{"READY", false, func(o v1.Object, _ time.Time) string {
		s := o.(*v1.InferenceService)
		want := 1
		if s.Spec.Engine != nil && s.Spec.Engine.MinReplicas != nil {
			want = *s.Spec.Engine.MinReplicas
		}
		return fmt.Sprintf("%d/%d", s.Status.ReadyReplicas, want)
	}},
	{"REASON", true, func(o v1.Object, _ time.Time) string { return dash(o.(*v1.InferenceService).Status.Reason) }},
	{"URL", true, func(o v1.Object, _ time.Time) string { return dash(o.(*v1.InferenceService).Status.URL) }},
	{"AGE", false, age},
}

var routeColumns = []column{
	{"MODELS", false, func(o v1.Object, _ time.Time) string { return dash(strings.Join(o.(*v1.Route).PublicNames(), ",")) }},
	{"PHASE", false, func(o v1.Object, _ time.Time) string { return dash(o.(*v1.Route).Status.Phase) }},
	{"REASON", true, func(o v1.Object, _ time.Time) string { return dash(o.(*v1.Route).Status.Reason) }},
	{"AGE", false, age},
}

var secretColumns = []column{
	{"TYPE", false, func(o v1.Object, _ time.Time) string { return o.(*v1.Secret).Type }},
	{"KEYS", false, func(o v1.Object, _ time.Time) string {
		s := o.(*v1.Secret)
		keys := make([]string, 0, len(s.Data))
		for k := range s.Data {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		return dash(strings.Join(keys, ","))
	}},
	{"AGE", false, age},
}

func columnsFor(kind string) []column {
	switch kind {
	case v1.KindClusterBaseModel, v1.KindBaseModel:
		return modelColumns
	case v1.KindClusterServingRuntime, v1.KindServingRuntime:
		return runtimeColumns
	case v1.KindInferenceService:
		return serviceColumns
	case v1.KindRoute:
		return routeColumns
	case v1.KindSecret:
		return secretColumns
	case v1.KindAPIKey:
		return apiKeyColumns
	}
	return []column{{"AGE", false, age}}
}

// printTable prints objects as kubectl does: upper-case headers, columns
// separated by three spaces, NAMESPACE first when listing all namespaces.
func printTable(w io.Writer, info v1.KindInfo, objs []v1.Object, wide, withNamespace bool, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	cols := columnsFor(info.Kind)
	var hdr []string
	if withNamespace && info.Namespaced {
		hdr = append(hdr, "NAMESPACE")
	}
	hdr = append(hdr, "NAME")
	for _, c := range cols {
		if !c.wide || wide {
			hdr = append(hdr, c.header)
		}
	}
	fmt.Fprintln(tw, strings.Join(hdr, "\t"))
	for _, o := range objs {
		var row []string
		m := o.GetObjectMeta()
		if withNamespace && info.Namespaced {
			row = append(row, m.Namespace)
		}
		row = append(row, m.Name)
		for _, c := range cols {
			if !c.wide || wide {
				row = append(row, c.value(o, now))
			}
		}
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	return tw.Flush()
}

// toYAML renders JSON-encodable v as YAML, keeping the JSON field order
// (the order of the Go types), which is the order users wrote.
func toYAML(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var n yaml.Node
	if err := yaml.Unmarshal(b, &n); err != nil {
		return nil, err
	}
	clearStyle(&n)
	var out strings.Builder
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(&n); err != nil {
		return nil, err
	}
	return []byte(out.String()), enc.Close()
}

// clearStyle turns JSON's flow style into block style.
func clearStyle(n *yaml.Node) {
	n.Style &^= yaml.FlowStyle
	if n.Kind == yaml.ScalarNode && n.Style&yaml.DoubleQuotedStyle != 0 && n.Tag == "!!str" {
		n.Style &^= yaml.DoubleQuotedStyle // the encoder re-quotes where YAML needs it
	}
	for _, c := range n.Content {
		clearStyle(c)
	}
}
