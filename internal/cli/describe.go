package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/client"
	"citadel.dev/citadel/internal/modelinfo"
)

func newDescribe(e *env) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "describe KIND NAME",
		Short: "Show an object in detail: spec, status, conditions and recent events",
		Example: `  citadel describe model mimo-vl-7b-rl
  citadel describe isvc mimo-vl-7b-rl -n mimo-vl-7b-rl`,
		Args: argsBetween(2, 2, "KIND NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			info, err := v1.LookupKind(args[0])
			if err != nil {
				return usageError{err}
			}
			c, err := e.client()
			if err != nil {
				return usageError{err}
			}
			ns := e.namespaceFor(info, false)
			objs, err := getNamed(cmd.Context(), c, info, ns, args[1:2])
			if err != nil {
				return err
			}
			o := objs[0]
			m := o.GetObjectMeta()
			evs, err := c.Events(cmd.Context(), client.EventFilter{Kind: info.Kind, Namespace: m.Namespace, Name: m.Name, Limit: 20})
			if err != nil {
				return err
			}
			return describe(e.stdout, info, o, evs, time.Now())
		},
	}
	return cmd
}

func describe(w io.Writer, info v1.KindInfo, o v1.Object, evs []v1.Event, now time.Time) error {
	m := o.GetObjectMeta()
	tw := tabwriter.NewWriter(w, 0, 8, 1, ' ', 0)
	kv := func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, v) }
	kv("Name", m.Name)
	if info.Namespaced {
		kv("Namespace", m.Namespace)
	}
	kv("Kind", info.Kind+" ("+info.APIVersion+")")
	kv("Labels", mapLine(m.Labels))
	kv("Annotations", mapLine(m.Annotations))
	if m.CreationTimestamp != nil {
		kv("Created", fmt.Sprintf("%s (%s ago)", m.CreationTimestamp.Format(time.RFC3339), humanAge(now.Sub(m.CreationTimestamp.Time))))
	}
	kv("Generation", fmt.Sprint(m.Generation))
	kv("Resource Version", m.ResourceVersion)
	if err := tw.Flush(); err != nil {
		return err
	}

	// The spec, as YAML, indented (secret values are already redacted).
	var fields map[string]json.RawMessage
	b, _ := json.Marshal(o)
	_ = json.Unmarshal(b, &fields)
	var statusRaw json.RawMessage
	for _, k := range []string{"spec", "type", "data"} {
		if raw, ok := fields[k]; ok {
			// Through RawMessage the field order of the types is kept.
			y, err := toYAML(json.RawMessage(`{"` + k + `":` + string(raw) + `}`))
			if err != nil {
				return err
			}
			fmt.Fprint(w, titleKeys(string(y)))
		}
	}
	statusRaw = fields["status"]

	fmt.Fprintln(w, "Status:")
	var st struct {
		v1.Status
		BytesDone, BytesTotal, BytesPerSecond int64
		FilesDone, FilesTotal                 int32
		LastProgressTime                      *v1.Time
		Runtime, URL                          string
		Nodes                                 []v1.NodeModelStatus
		LastFailure                           *v1.DownloadFailure
		Runtimes                              []v1.RuntimeCandidate
		Placement                             []string
		Endpoints                             []v1.Endpoint
	}
	_ = json.Unmarshal(statusRaw, &st)
	tw = tabwriter.NewWriter(w, 0, 8, 1, ' ', 0)
	kv("  Phase", dash(st.Phase))
	if st.Reason != "" {
		kv("  Reason", st.Reason)
	}
	if st.Message != "" {
		kv("  Message", st.Message)
	}
	if lf := st.LastFailure; lf != nil { // the facts behind the message
		kv("  Last Failure", lf.Reason)
		for _, r := range failureRows(lf) {
			kv("    "+r[0], r[1])
		}
	}
	if info.Kind == v1.KindClusterBaseModel || info.Kind == v1.KindBaseModel {
		kv("  Progress", progressLine(st.BytesDone, st.BytesTotal, st.BytesPerSecond, st.FilesDone, st.FilesTotal))
		last := "never"
		if st.LastProgressTime != nil {
			last = fmt.Sprintf("%s (%s ago)", st.LastProgressTime.Format(time.RFC3339), humanAge(now.Sub(st.LastProgressTime.Time)))
		}
		kv("  Last Progress", last)
		for _, n := range st.Nodes { // where a Ready model's files are
			if n.Path != "" {
				kv("  Path", n.Path+" (node "+n.Node+")")
			}
			if n.Store != "" {
				kv("  Store", n.Store)
			}
			if n.OllamaName != "" {
				kv("  Ollama Name", n.OllamaName)
			}
		}
	}
	if st.Runtime != "" {
		kv("  Runtime", st.Runtime)
	}
	if st.URL != "" {
		kv("  URL", st.URL)
	}
	if st.ObservedGeneration > 0 {
		kv("  Observed Generation", fmt.Sprint(st.ObservedGeneration))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if info.Kind == v1.KindInferenceService {
		if err := describeService(w, st.Runtimes, st.Placement, st.Endpoints); err != nil {
			return err
		}
	}
	if info.Kind != v1.KindSecret {
		fmt.Fprintln(w, "Conditions:")
		if len(st.Conditions) == 0 {
			fmt.Fprintln(w, "  <none>")
		} else {
			tw = tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
			fmt.Fprintln(tw, "  TYPE\tSTATUS\tREASON\tAGE\tMESSAGE")
			for _, c := range st.Conditions {
				a := "-"
				if c.LastTransitionTime != nil {
					a = humanAge(now.Sub(c.LastTransitionTime.Time))
				}
				fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", c.Type, c.Status, dash(c.Reason), a, c.Message)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
		}
	}
	fmt.Fprintln(w, "Events:")
	if len(evs) == 0 {
		fmt.Fprintln(w, "  <none>")
		return nil
	}
	return printEvents(w, evs, false, now, "  ")
}

// describeService prints what a service's status says about its runtime selection, its
// placement arithmetic and its engines.
func describeService(w io.Writer, runtimes []v1.RuntimeCandidate, placement []string, eps []v1.Endpoint) error {
	if len(runtimes) > 0 {
		fmt.Fprintln(w, "Runtimes considered:")
		for _, r := range runtimes {
			verdict := "compatible"
			switch {
			case r.Selected:
				verdict = "selected"
			case r.Reason != "":
				verdict = r.Reason
			}
			fmt.Fprintf(w, "  %s: %s\n", r.Name, verdict)
		}
	}
	if len(placement) > 0 {
		fmt.Fprintln(w, "Placement:")
		for _, l := range placement {
			fmt.Fprintln(w, "  "+strings.ReplaceAll(l, "\n", "\n  "))
		}
	}
	if len(eps) == 0 {
		return nil
	}
	fmt.Fprintln(w, "Engines:")
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "  REPLICA\tENGINE\tADDRESS\tGPUS\tPID\tPHASE\tRESTARTS\tLAST EXIT\tSERVED AS")
	for _, ep := range eps {
		engine := ep.Engine
		if ep.Shared != "" {
			engine = "shared " + ep.Shared
		}
		exit := "-"
		switch {
		case ep.Signal != "":
			exit = "signal " + ep.Signal
		case ep.ExitCode != nil:
			exit = fmt.Sprintf("code %d", *ep.ExitCode)
		}
		fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%d\t%s\t%d\t%s\t%s\n", ep.Replica, engine, ep.Address, dash(strings.Trim(fmt.Sprint(ep.GPUs), "[]")),
			ep.PID, dash(ep.Phase), ep.Restarts, exit, dash(strings.Join(ep.Served, ", ")))
	}
	return tw.Flush()
}

// failureRows are the facts of a model's last failure that are known, as rows under its
// message.
func failureRows(lf *v1.DownloadFailure) [][2]string {
	var rows [][2]string
	add := func(k, v string) { rows = append(rows, [2]string{k, v}) }
	if lf.File != "" {
		add("File", lf.File)
	}
	if lf.FileBytesTotal > 0 {
		add("Received", fmt.Sprintf("%d of %d bytes (%s of %s)", lf.FileBytesReceived, lf.FileBytesTotal,
			modelinfo.FormatBytes(lf.FileBytesReceived), modelinfo.FormatBytes(lf.FileBytesTotal)))
	}
	if lf.IdleSeconds > 0 {
		add("Idle", humanAge(time.Duration(lf.IdleSeconds)*time.Second))
	}
	if lf.Endpoint != "" {
		add("Endpoint", lf.Endpoint)
	}
	if lf.HTTPStatus != 0 {
		add("HTTP Status", fmt.Sprint(lf.HTTPStatus))
	}
	if lf.AcceptURL != "" {
		add("Accept At", lf.AcceptURL)
	}
	if sec := lf.Secret; sec != nil {
		v := fmt.Sprintf("%s/%s, key %q: ", sec.Namespace, sec.Name, sec.Key)
		if sec.Found {
			v += "no such key (it has: " + dash(strings.Join(sec.Keys, ", ")) + ")"
		} else {
			v += "no such secret"
		}
		add("Secret", v)
	}
	if lf.BytesNeeded > 0 {
		add("Space", fmt.Sprintf("need %s, %s free on %s", modelinfo.FormatBytes(lf.BytesNeeded), modelinfo.FormatBytes(lf.BytesFree), dash(lf.Directory)))
	} else if lf.Directory != "" {
		add("Directory", lf.Directory)
	}
	if lf.Attempt > 0 {
		add("Attempt", fmt.Sprint(lf.Attempt))
	}
	return rows
}

func progressLine(done, total, rate int64, filesDone, filesTotal int32) string {
	if total <= 0 {
		return "no download started"
	}
	s := fmt.Sprintf("%s of %s (%.1f%%)", modelinfo.FormatBytes(done), modelinfo.FormatBytes(total), 100*float64(done)/float64(total))
	if filesTotal > 0 {
		s += fmt.Sprintf(", %d/%d files", filesDone, filesTotal)
	}
	if rate > 0 && done < total {
		eta := time.Duration(float64(total-done) / float64(rate) * float64(time.Second))
		s += fmt.Sprintf(", %s/s, ETA %s", modelinfo.FormatBytes(rate), humanAge(eta))
	}
	return s
}

func mapLine(m map[string]string) string {
	if len(m) == 0 {
		return "<none>"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + m[k]
	}
	return strings.Join(parts, ", ")
}

// titleKeys capitalises the top-level key ("spec:" → "Spec:").
func titleKeys(y string) string {
	if y == "" {
		return y
	}
	return strings.ToUpper(y[:1]) + y[1:]
}

func printEvents(w io.Writer, evs []v1.Event, withObject bool, now time.Time, indent string) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	hdr := indent + "LAST SEEN\tTYPE\tREASON\t"
	if withObject {
		hdr += "OBJECT\t"
	}
	fmt.Fprintln(tw, hdr+"COUNT\tMESSAGE")
	for _, ev := range evs {
		seen := "-"
		if ev.LastTimestamp != nil {
			seen = humanAge(now.Sub(ev.LastTimestamp.Time))
		}
		row := fmt.Sprintf("%s%s\t%s\t%s\t", indent, seen, ev.Type, ev.Reason)
		if withObject {
			obj := strings.ToLower(ev.Kind) + "/" + ev.Name
			if ev.Namespace != "" {
				obj = strings.ToLower(ev.Kind) + "/" + ev.Namespace + "/" + ev.Name
			}
			row += obj + "\t"
		}
		fmt.Fprintf(tw, "%s%d\t%s\n", row, ev.Count, ev.Message)
	}
	return tw.Flush()
}
