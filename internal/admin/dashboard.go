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
	"math"
	"net/http"
	"slices"
	"strings"
	"time"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/internal/resource"
	"citadel.dev/citadel/internal/store"
)

// The dashboard is a server-rendered page on the admin port at /: models with their
// download progress, InferenceServices with their endpoints and engine logs, a GPU memory
// map, Routes with each target's traffic, request rate, TTFT and error charts, the routes'
// objectives, the latest events and a playground that sends a request through the gateway.
// Its small script replaces the sections in place every 2 s from GET /api/v1/dashboard
// (without JavaScript the page reloads itself); nothing comes from outside the binary.

//go:embed dashboard/index.html dashboard/static
var dashboardFS embed.FS

var dashboardTmpl = template.Must(template.ParseFS(dashboardFS, "dashboard/index.html"))

// dashboardEvents is how many of the latest events the dashboard shows.
const dashboardEvents = 30

// dashboardCookie holds, for a browser that passed /?token=T once, a value derived from the
// admin token. It opens the dashboard (dashboardPath) only, not the rest of the API.
const dashboardCookie = "citadel_dashboard"

// staticHandler serves the dashboard's embedded CSS and script under /static/.
func staticHandler() http.Handler {
	sub, err := fs.Sub(dashboardFS, "dashboard")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	return http.FileServerFS(sub)
}

// favicon answers GET /favicon.ico, which browsers ask for whatever the page says, with the
// page's icon (an SVG).
func favicon(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "max-age=86400")
	http.ServeFileFS(w, r, dashboardFS, "dashboard/static/favicon.svg")
}

// dashboardPath reports whether a request is one the dashboard cookie opens: the page, its
// static files and icon, its data (GET /api/v1/dashboard) and the playground (POST
// /api/v1/playground, which also asks for the header playgroundHeader).
func dashboardPath(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		return r.URL.Path == "/" || r.URL.Path == "/api/v1/dashboard" || strings.HasPrefix(r.URL.Path, "/static/") || r.URL.Path == "/favicon.ico"
	case http.MethodPost:
		return r.URL.Path == "/api/v1/playground"
	}
	return false
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
	Ref         string              `json:"ref"`
	Name        string              `json:"name"`
	Phase       string              `json:"phase"`
	Class       string              `json:"-"`
	Reason      string              `json:"reason,omitempty"`
	Message     string              `json:"message,omitempty"`
	HasProgress bool                `json:"-"`
	Percent     int                 `json:"percent"` // of the bytes, 0 until the size is known
	Done        string              `json:"done,omitempty"`
	Total       string              `json:"total,omitempty"`
	Rate        string              `json:"rate,omitempty"`
	FilesDone   int32               `json:"filesDone,omitempty"`
	FilesTotal  int32               `json:"filesTotal,omitempty"`
	Failure     *v1.DownloadFailure `json:"lastFailure,omitempty"`
}

type dashService struct {
	Ref           string        `json:"ref"`
	Name          string        `json:"name"`
	Phase         string        `json:"phase"`
	Class         string        `json:"-"`
	Reason        string        `json:"reason,omitempty"`
	Message       string        `json:"message,omitempty"`
	Runtime       string        `json:"runtime,omitempty"`
	Replicas      int32         `json:"replicas"`
	ReadyReplicas int32         `json:"readyReplicas"`
	Endpoints     []v1.Endpoint `json:"endpoints,omitempty"`
	Log           []string      `json:"log,omitempty"` // the first replica's last engine lines
}

// dashboardLogLines is how many of an engine's last log lines the page shows per service.
const dashboardLogLines = 6

type dashGPU struct {
	Index   int          `json:"index"`
	Name    string       `json:"name,omitempty"`
	Note    string       `json:"note,omitempty"`
	Total   string       `json:"total"`
	Used    string       `json:"otherProcesses"`
	Planned string       `json:"planned"`
	Free    string       `json:"free"`
	Holders []dashHolder `json:"holders,omitempty"`
	// Bar is the memory map: other processes, each holder, free, in percent of the total.
	Bar []barPart `json:"-"`
}

type barPart struct {
	Class, Title string
	Percent      float64
}

type dashHolder struct {
	Service string `json:"service"`
	Name    string `json:"-"` // the service's name without its namespace
	Engine  string `json:"engine,omitempty"`
	Bytes   string `json:"bytes"`
	Replica int    `json:"replica"`
	PID     int    `json:"pid,omitempty"`
	Shared  bool   `json:"shared,omitempty"`
}

type dashRoute struct {
	Ref     string       `json:"ref"`
	Name    string       `json:"name"`
	Phase   string       `json:"phase"`
	Class   string       `json:"-"`
	Reason  string       `json:"reason,omitempty"`
	Message string       `json:"message,omitempty"`
	Models  []string     `json:"models"`
	Targets []dashTarget `json:"targets"`
	// Requests is what the gateway counted for the route's public names since it started.
	Requests int64 `json:"requests"`
}

// dashTarget is one destination of a route and the traffic it took.
type dashTarget struct {
	Target   string   `json:"target"`  // as the route names it: a service or a URL
	Service  string   `json:"service"` // as the gateway counts it: namespace/name, or the URL
	Models   []string `json:"models"`  // the route's names that lead to it
	Requests int64    `json:"requests"`
	Share    float64  `json:"share"` // percent of the route's requests
}

type dashEvent struct {
	When    string `json:"when"`
	Type    string `json:"type"`
	Object  string `json:"object"`
	Reason  string `json:"reason"`
	Message string `json:"message"`
	Count   int32  `json:"count"`
}

type dashPage struct {
	Version    string        `json:"version"`
	Now        string        `json:"now"`
	Errors     []string      `json:"errors,omitempty"`
	Models     []dashModel   `json:"models"`
	Services   []dashService `json:"services"`
	HasGPUs    bool          `json:"-"`
	NoGPUs     string        `json:"noGPUs,omitempty"`
	GPUError   string        `json:"gpuError,omitempty"`
	GPUSource  string        `json:"gpuSource,omitempty"`
	GPUs       []dashGPU     `json:"gpus"`
	Routes     []dashRoute   `json:"routes"`
	Traffic    dashTraffic   `json:"traffic"`
	Charts     []dashChart   `json:"-"`
	SLOs       []dashSLO     `json:"slos"`
	Events     []dashEvent   `json:"events"`
	EventLimit int           `json:"-"`
	// HTML is each live section's inner HTML, as the page renders it, for the page's script.
	HTML map[string]template.HTML `json:"html,omitempty"`
}

// liveSections are the page's sections the script replaces in place, by id.
var liveSections = []string{"problems", "models", "services", "gpus", "routes", "charts", "slos", "events"}

// dashboard is GET /: the page.
func (s *Server) dashboard(w http.ResponseWriter, r *http.Request) {
	p := s.dashboardPage(r.Context(), false)
	var buf bytes.Buffer
	if err := dashboardTmpl.Execute(&buf, p); err != nil {
		s.log.Error("rendering the dashboard", "err", err)
		http.Error(w, "rendering the dashboard: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; style-src-attr 'unsafe-inline'; script-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(buf.Bytes())
}

// dashboardJSON is GET /api/v1/dashboard: the page's data, and each live section's HTML.
// Each public model and service's points come with ?seriesPoints=true (they are many: the
// page draws the totals).
func (s *Server) dashboardJSON(w http.ResponseWriter, r *http.Request) {
	p := s.dashboardPage(r.Context(), r.URL.Query().Get("seriesPoints") == "true")
	p.HTML = map[string]template.HTML{}
	for _, id := range liveSections {
		var buf bytes.Buffer
		if err := dashboardTmpl.ExecuteTemplate(&buf, id, p); err != nil {
			s.log.Error("rendering the dashboard", "section", id, "err", err)
			writeError(w, http.StatusInternalServerError, v1.ReasonInternal, "rendering the dashboard's "+id+": "+err.Error(), nil)
			return
		}
		p.HTML[id] = template.HTML(buf.String()) // rendered (and escaped) by html/template
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, p)
}

// dashboardPage reads everything the page shows: the store as the list and events handlers
// read it (resource.FromStore, redacted; ToAPIEvent), the GPU inventory, engine logs and
// the gateway's traffic.
func (s *Server) dashboardPage(ctx context.Context, seriesPoints bool) dashPage {
	p := dashPage{Version: s.opts.Version.Version, Now: time.Now().UTC().Format("2006-01-02 15:04:05 UTC"), EventLimit: dashboardEvents,
		Models: []dashModel{}, Services: []dashService{}, GPUs: []dashGPU{}, Routes: []dashRoute{}, SLOs: []dashSLO{}, Events: []dashEvent{}}
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
			d := dashboardModel(ref(o), st)
			d.Name = o.GetObjectMeta().Name
			p.Models = append(p.Models, d)
		}
	}
	for _, o := range objects(v1.KindInferenceService) {
		isvc, ok := o.(*v1.InferenceService)
		if !ok {
			continue
		}
		st := isvc.Status
		p.Services = append(p.Services, dashService{Ref: ref(o), Name: isvc.Name, Phase: st.Phase, Class: phaseClass(st.Phase), Reason: st.Reason,
			Message: st.Message, Runtime: st.Runtime, Replicas: st.Replicas, ReadyReplicas: st.ReadyReplicas, Endpoints: st.Endpoints,
			Log: s.dashboardLog(ctx, isvc.Namespace, isvc.Name)})
	}
	var routes []*v1.Route
	for _, o := range objects(v1.KindRoute) {
		if rt, ok := o.(*v1.Route); ok {
			routes = append(routes, rt)
		}
	}
	s.dashboardGPUs(ctx, &p)
	s.dashboardTraffic(&p, routes, seriesPoints)
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
	return p
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
		part := func(class, title string, n int64) {
			if g.MemoryTotal > 0 && n > 0 {
				d.Bar = append(d.Bar, barPart{Class: class, Title: title, Percent: math.Round(float64(n)*1000/float64(g.MemoryTotal)) / 10})
			}
		}
		part("other", "other processes: "+humanBytes(g.MemoryUsed), g.MemoryUsed)
		held, sharedPeak, color := int64(0), int64(0), 0
		var shared []string
		for _, h := range g.Holders {
			_, name, _ := strings.Cut(h.Service, "/")
			if name == "" {
				name = h.Service
			}
			d.Holders = append(d.Holders, dashHolder{Service: h.Service, Name: name, Engine: h.Engine, Bytes: humanBytes(h.Bytes), Replica: h.Replica, PID: h.PID, Shared: h.Shared})
			if h.Shared { // a shared server holds one of its models at a time: its largest counts
				sharedPeak = max(sharedPeak, h.Bytes)
				shared = append(shared, name)
				continue
			}
			part(fmt.Sprintf("held c%d", color%4), fmt.Sprintf("%s #%d: %s", h.Service, h.Replica, humanBytes(h.Bytes)), h.Bytes)
			color++
			held += h.Bytes
		}
		part(fmt.Sprintf("held c%d", color%4), "shared server, one model at a time ("+strings.Join(shared, ", ")+"): up to "+humanBytes(sharedPeak), sharedPeak)
		part("planned", "planned, not held yet: "+humanBytes(g.Planned-held-sharedPeak), g.Planned-held-sharedPeak)
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
