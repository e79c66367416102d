package admin

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"slices"
	"strings"
	"time"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/internal/resource"
	"citadel.dev/citadel/internal/store"
)

// The dashboard is a server-rendered page on the admin port at /: models with their
// download progress, InferenceServices with their endpoints, the GPU inventory, Routes and
// the latest events. It reloads itself every 3 s; it needs no JavaScript and nothing from
// outside the binary.

//go:embed dashboard/index.html dashboard/static
var dashboardFS embed.FS

var dashboardTmpl = template.Must(template.ParseFS(dashboardFS, "dashboard/index.html"))

// dashboardEvents is how many of the latest events the dashboard shows.
const dashboardEvents = 30

// dashboardCookie holds, for a browser that passed /?token=T once, a value derived from the
// admin token. It opens the dashboard page and its static files only, not the API.
const dashboardCookie = "citadel_dashboard"

// staticHandler serves the dashboard's embedded CSS under /static/.
func staticHandler() http.Handler {
	sub, err := fs.Sub(dashboardFS, "dashboard")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	return http.FileServerFS(sub)
}

// dashboardPath reports whether a request is for the dashboard page or its static files,
// the only paths the dashboard cookie opens.
func dashboardPath(r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	return r.URL.Path == "/" || strings.HasPrefix(r.URL.Path, "/static/")
}

func cookieValue(token string) string {
	sum := sha256.Sum256([]byte("citadel dashboard cookie\x00" + token))
	return hex.EncodeToString(sum[:])
}

// dashboardAuth lets a browser in by the dashboard cookie, or by /?token=T once: a right
// token sets the cookie (HttpOnly, SameSite=Strict) and redirects to /, so the token does not
// stay in the address bar or the history. It reports whether it answered the request
// (ok false: the caller answers 401 unless the Authorization header is right).
func (s *Server) dashboardAuth(w http.ResponseWriter, r *http.Request) (handled, ok bool) {
	if !dashboardPath(r) {
		return false, false
	}
	if r.URL.Path == "/" && r.URL.Query().Has("token") {
		if subtle.ConstantTimeCompare([]byte(r.URL.Query().Get("token")), []byte(s.opts.Token)) != 1 {
			return false, false
		}
		http.SetCookie(w, &http.Cookie{Name: dashboardCookie, Value: cookieValue(s.opts.Token), Path: "/",
			HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return true, true
	}
	c, err := r.Cookie(dashboardCookie)
	if err != nil {
		return false, false
	}
	return false, subtle.ConstantTimeCompare([]byte(c.Value), []byte(cookieValue(s.opts.Token))) == 1
}

type dashModel struct {
	Ref, Phase, Class, Reason, Message string
	HasProgress                        bool
	Percent                            int
	Done, Total, Rate                  string
	FilesDone, FilesTotal              int32
	Failure                            *v1.DownloadFailure
}

type dashService struct {
	Ref, Phase, Class, Reason, Message, Runtime string
	Replicas, ReadyReplicas                     int32
	Endpoints                                   []v1.Endpoint
	Log                                         []string // the first replica's last engine lines
}

// dashboardLogLines is how many of an engine's last log lines the page shows per service.
const dashboardLogLines = 6

type dashGPU struct {
	Index                      int
	Name, Note                 string
	Total, Used, Planned, Free string
	Holders                    []dashHolder
}

type dashHolder struct {
	Service, Engine, Bytes string
	Replica, PID           int
	Shared                 bool
}

type dashRoute struct {
	Ref, Phase, Class, Reason, Message string
	Models                             []string
}

type dashEvent struct {
	When, Type, Object, Reason, Message string
	Count                               int32
}

type dashPage struct {
	Version, Now string
	Errors       []string
	Models       []dashModel
	Services     []dashService
	HasGPUs      bool
	NoGPUs       string
	GPUError     string
	GPUSource    string
	GPUs         []dashGPU
	Routes       []dashRoute
	Events       []dashEvent
	EventLimit   int
}

// dashboard is GET /: the page, rendered from the store as the list and events handlers
// read it (resource.FromStore, redacted; ToAPIEvent).
func (s *Server) dashboard(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	p := dashPage{Version: s.opts.Version.Version, Now: time.Now().UTC().Format("2006-01-02 15:04:05 UTC"), EventLimit: dashboardEvents}
	objects := func(kind string) []v1.Object {
		objs, err := s.dashboardList(ctx, kind)
		if err != nil {
			p.Errors = append(p.Errors, fmt.Sprintf("listing %s: %v", kind, err))
		}
		return objs
	}
	for _, kind := range []string{v1.KindClusterBaseModel, v1.KindBaseModel} {
		for _, o := range objects(kind) {
			var st v1.ModelStatus
			switch m := o.(type) {
			case *v1.ClusterBaseModel:
				st = m.Status
			case *v1.BaseModel:
				st = m.Status
			}
			p.Models = append(p.Models, dashboardModel(ref(o), st))
		}
	}
	for _, o := range objects(v1.KindInferenceService) {
		isvc, ok := o.(*v1.InferenceService)
		if !ok {
			continue
		}
		st := isvc.Status
		p.Services = append(p.Services, dashService{Ref: ref(o), Phase: st.Phase, Class: phaseClass(st.Phase), Reason: st.Reason,
			Message: st.Message, Runtime: st.Runtime, Replicas: st.Replicas, ReadyReplicas: st.ReadyReplicas, Endpoints: st.Endpoints,
			Log: s.dashboardLog(ctx, isvc.Namespace, isvc.Name)})
	}
	for _, o := range objects(v1.KindRoute) {
		rt, ok := o.(*v1.Route)
		if !ok {
			continue
		}
		d := dashRoute{Ref: ref(o), Phase: rt.Status.Phase, Class: phaseClass(rt.Status.Phase), Reason: rt.Status.Reason, Message: rt.Status.Message}
		for _, m := range rt.Spec.Models {
			d.Models = append(d.Models, m.Name)
		}
		p.Routes = append(p.Routes, d)
	}
	s.dashboardGPUs(ctx, &p)
	if evs, err := s.st.Events(ctx, store.EventFilter{Limit: dashboardEvents}); err != nil {
		p.Errors = append(p.Errors, "reading events: "+err.Error())
	} else {
		for _, se := range slices.Backward(evs) { // newest first
			e := ToAPIEvent(se)
			obj := e.Kind + " " + e.Name
			if e.Namespace != "" {
				obj = e.Kind + " " + e.Namespace + "/" + e.Name
			}
			when := ""
			if e.LastTimestamp != nil {
				when = e.LastTimestamp.UTC().Format("15:04:05")
			}
			p.Events = append(p.Events, dashEvent{When: when, Type: e.Type, Object: obj, Reason: e.Reason, Message: e.Message, Count: e.Count})
		}
	}
	var buf bytes.Buffer
	if err := dashboardTmpl.Execute(&buf, p); err != nil {
		s.log.Error("rendering the dashboard", "err", err)
		http.Error(w, "rendering the dashboard: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; style-src-attr 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(buf.Bytes())
}

// dashboardLog is the last lines of a service's first engine replica, as citadel logs shows
// them; none when no engine runs it (or the server runs no serving controller).
func (s *Server) dashboardLog(ctx context.Context, namespace, name string) []string {
	if s.opts.Logs == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	var b bytes.Buffer
	if err := s.opts.Logs(ctx, namespace, name, 0, dashboardLogLines, false, &b); err != nil {
		return nil
	}
	return strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
}

// dashboardList reads every object of a kind as the list handler does: from the store,
// through resource.FromStore, with secrets redacted.
func (s *Server) dashboardList(ctx context.Context, kind string) ([]v1.Object, error) {
	objs, _, err := s.st.List(ctx, kind, store.ListOptions{})
	if err != nil {
		return nil, err
	}
	out := make([]v1.Object, 0, len(objs))
	for _, so := range objs {
		o, err := resource.FromStore(so)
		if err != nil {
			return out, err
		}
		out = append(out, resource.Redact(o))
	}
	return out, nil
}

func (s *Server) dashboardGPUs(ctx context.Context, p *dashPage) {
	if s.opts.GPUs == nil {
		p.NoGPUs = NoGPUInventory
		return
	}
	p.HasGPUs = true
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	l, err := s.opts.GPUs(ctx)
	if err != nil {
		p.GPUError = "reading the GPU inventory: " + err.Error()
		return
	}
	p.GPUError, p.GPUSource = l.Error, l.Source
	for _, g := range l.Items {
		d := dashGPU{Index: g.Index, Name: g.Name, Note: g.Note, Total: humanBytes(g.MemoryTotal), Used: humanBytes(g.MemoryUsed),
			Planned: humanBytes(g.Planned), Free: "–"}
		if g.MemoryTotal > 0 {
			d.Free = humanBytes(max(g.MemoryTotal-g.MemoryUsed-g.Planned, 0)) // as citadel get gpus: less other processes and the plan
		}
		for _, h := range g.Holders {
			d.Holders = append(d.Holders, dashHolder{Service: h.Service, Engine: h.Engine, Bytes: humanBytes(h.Bytes), Replica: h.Replica, PID: h.PID, Shared: h.Shared})
		}
		p.GPUs = append(p.GPUs, d)
	}
}

func dashboardModel(name string, st v1.ModelStatus) dashModel {
	d := dashModel{Ref: name, Phase: st.Phase, Class: phaseClass(st.Phase), Reason: st.Reason, Message: st.Message,
		FilesDone: st.FilesDone, FilesTotal: st.FilesTotal, Failure: st.LastFailure, Rate: "–"}
	if st.BytesTotal > 0 {
		d.HasProgress = true
		d.Percent = int(min(max(st.BytesDone, 0)*100/st.BytesTotal, 100))
		d.Done, d.Total = humanBytes(st.BytesDone), humanBytes(st.BytesTotal)
	}
	if st.BytesPerSecond > 0 {
		d.Rate = humanBytes(st.BytesPerSecond) + "/s"
	}
	return d
}

func ref(o v1.Object) string {
	m := o.GetObjectMeta()
	if m.Namespace == "" {
		return m.Name
	}
	return m.Namespace + "/" + m.Name
}

// phaseClass picks a colour for a phase.
func phaseClass(phase string) string {
	switch phase {
	case "Ready", "Serving", "Running", "Active", "Accepted":
		return "ok"
	case "Failed", "CrashLoopBackOff", "Error":
		return "bad"
	case "", "Pending":
		return ""
	}
	return "busy"
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
