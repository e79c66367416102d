// Package telemetry exports the state of citadel serve as Prometheus metrics: models (phase,
// download progress), InferenceServices (phase, replicas), GPUs (memory by holder, utilisation
// when nvidia-smi reports it), the model agent's downloads, the store and the build. The admin
// API serves them on /metrics.
//
// Every value is read when Prometheus scrapes, from the store and from the functions the
// daemon passes (the serving controller's GPU inventory, the model agent's counters), so a
// scrape shows what citadel get shows at that moment; nothing polls in between. Label sets are
// bounded: objects by kind, namespace and name, GPUs by index, phases by the API's phase names.
package telemetry

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/internal/store"
)

// Options are where a Collector reads its values.
type Options struct {
	// Store holds the models and services.
	Store *store.Store
	// GPUs, when set, returns the GPU inventory and Citadel's plan on it, as GET /api/v1/gpus
	// does. Without it there are no citadel_gpu_* series (serve --engines=false).
	GPUs func(ctx context.Context) (v1.GPUList, error)
	// Utilization, when set, returns each GPU's utilisation (0–1) by index. A GPU it leaves
	// out, or an error, means no citadel_gpu_utilization_ratio series for it.
	Utilization func(ctx context.Context) (map[int]float64, error)
	// Agent, when set, returns the model agent's counters since serve started.
	Agent func() AgentCounters
	// Version labels citadel_build_info.
	Version v1.VersionInfo
	// Timeout bounds the reads of one scrape; default 5 s.
	Timeout time.Duration
	// Logger receives the errors of a scrape (they also set citadel_store_up or leave a
	// series out).
	Logger *slog.Logger
}

// AgentCounters are the model agent's totals since serve started.
type AgentCounters struct {
	// Downloads counts finished downloads by result: succeeded, failed (retried
	// automatically) or gave_up (not retried until something changes).
	Downloads map[string]float64
	// Retries counts automatic attempts after a failed one.
	Retries float64
	// Bytes counts bytes fetched by downloads that succeeded (not those a failed attempt
	// received, which the attempt that resumes them does not fetch again).
	Bytes float64
}

// Results of citadel_agent_downloads_total.
const (
	ResultSucceeded = "succeeded"
	ResultFailed    = "failed"
	ResultGaveUp    = "gave_up"
)

var (
	objLabels = []string{"kind", "namespace", "name"}
	svcLabels = []string{"namespace", "name"}

	buildInfo = prometheus.NewDesc("citadel_build_info",
		"Always 1; the labels say which citadel serves.", []string{"version", "goversion", "commit"}, nil)
	storeUp = prometheus.NewDesc("citadel_store_up",
		"1 when this scrape read the store, 0 when it could not (then no model or service series).", nil, nil)
	storeObjects = prometheus.NewDesc("citadel_store_objects",
		"Objects in the store by kind.", []string{"kind"}, nil)
	storeVersion = prometheus.NewDesc("citadel_store_resource_version",
		"The store's resource version: it grows by one with every write (rate() is writes per second).", nil, nil)

	modelPhase = prometheus.NewDesc("citadel_model_phase",
		"1 for the model's current phase (Pending, Downloading, Verifying, Ready, Failed), 0 for the others.",
		append(objLabels, "phase"), nil)
	modelDone = prometheus.NewDesc("citadel_model_download_bytes",
		"Bytes of the model on this host so far (the download's progress; its size once Ready).", objLabels, nil)
	modelSize = prometheus.NewDesc("citadel_model_size_bytes",
		"The model's size in bytes, once the download has listed its files.", objLabels, nil)
	modelRate = prometheus.NewDesc("citadel_model_download_bytes_per_second",
		"The download's current speed; 0 when no bytes are moving.", objLabels, nil)
	modelProgress = prometheus.NewDesc("citadel_model_download_last_progress_timestamp_seconds",
		"When the download last received bytes (Unix time).", objLabels, nil)
	modelAttempts = prometheus.NewDesc("citadel_model_download_failed_attempts",
		"Automatic download attempts that failed in a row (0 once Ready or after a spec change).", objLabels, nil)

	servicePhase = prometheus.NewDesc("citadel_service_phase",
		"1 for the InferenceService's current phase (Pending, Scheduling, Starting, Ready, Degraded, Failed), 0 for the others.",
		append(svcLabels, "phase"), nil)
	serviceReplicas = prometheus.NewDesc("citadel_service_replicas",
		"Engine replicas Citadel runs for the InferenceService.", svcLabels, nil)
	serviceReady = prometheus.NewDesc("citadel_service_replicas_ready",
		"Engine replicas that pass their readiness probe.", svcLabels, nil)
	serviceRestarts = prometheus.NewDesc("citadel_service_engine_restarts",
		"Engine restarts of the service's replicas, as the supervisor counts them (resets when serve restarts).", svcLabels, nil)

	gpuInfo = prometheus.NewDesc("citadel_gpu_info",
		"Always 1; the labels describe the GPU (join on gpu).", []string{"gpu", "uuid", "name", "profile"}, nil)
	gpuMemory = prometheus.NewDesc("citadel_gpu_memory_bytes",
		"GPU memory by kind: total; citadel (what Citadel's engines hold or reserve, by the planner); other (held by processes Citadel did not start); free (total less citadel and other).",
		[]string{"gpu", "kind"}, nil)
	gpuHolders = prometheus.NewDesc("citadel_gpu_engines",
		"Engine replicas (or shared models) Citadel placed on the GPU.", []string{"gpu"}, nil)
	gpuUtil = prometheus.NewDesc("citadel_gpu_utilization_ratio",
		"The GPU's utilisation (0–1) as nvidia-smi reports it; absent when it reports none (simulated GPUs).", []string{"gpu"}, nil)
	gpuInventoryUp = prometheus.NewDesc("citadel_gpu_inventory_up",
		"1 when the GPU inventory was read, 0 when reading it failed (citadel get gpus says why).", nil, nil)

	agentDownloads = prometheus.NewDesc("citadel_agent_downloads_total",
		"Finished model downloads by result: succeeded, failed (retried automatically), gave_up (waits for a fix).", []string{"result"}, nil)
	agentRetries = prometheus.NewDesc("citadel_agent_download_retries_total",
		"Automatic download attempts after a failed one.", nil, nil)
	agentBytes = prometheus.NewDesc("citadel_agent_fetched_bytes_total",
		"Bytes fetched from hubs, mirrors and registries by downloads that succeeded (a failed attempt's bytes are left out).", nil, nil)
)

var (
	modelPhases   = []string{v1.ModelPending, v1.ModelDownloading, v1.ModelVerifying, v1.ModelReady, v1.ModelFailed}
	servicePhases = []string{v1.ServicePending, v1.ServiceScheduling, v1.ServiceStarting, v1.ServiceReady, v1.ServiceDegraded, v1.ServiceFailed}
	results       = []string{ResultSucceeded, ResultFailed, ResultGaveUp}
)

// Collector is a prometheus.Collector of citadel serve's state.
type Collector struct {
	opts Options
}

// New returns a Collector reading from opts.
func New(opts Options) *Collector {
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Collector{opts: opts}
}

// Handler serves the Collector's series, with the Go runtime's, the process's and those of
// more (the residency manager's), in the Prometheus text format (or OpenMetrics, as the
// scraper asks).
func Handler(c *Collector, more ...prometheus.Gatherer) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(c, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return promhttp.HandlerFor(append(prometheus.Gatherers{reg}, more...), promhttp.HandlerOpts{
		ErrorLog:          slog.NewLogLogger(c.opts.Logger.Handler(), slog.LevelWarn),
		ErrorHandling:     promhttp.ContinueOnError,
		EnableOpenMetrics: true,
	})
}

// Describe sends every series' description.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{buildInfo, storeUp, storeObjects, storeVersion,
		modelPhase, modelDone, modelSize, modelRate, modelProgress, modelAttempts,
		servicePhase, serviceReplicas, serviceReady, serviceRestarts,
		gpuInfo, gpuMemory, gpuHolders, gpuUtil, gpuInventoryUp,
		agentDownloads, agentRetries, agentBytes} {
		ch <- d
	}
}

// Collect reads the store, the GPUs and the agent and sends their series.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.Timeout)
	defer cancel()
	v := c.opts.Version
	ch <- prometheus.MustNewConstMetric(buildInfo, prometheus.GaugeValue, 1, v.Version, v.GoVersion, v.Commit)
	c.collectStore(ctx, ch)
	c.collectGPUs(ctx, ch)
	if c.opts.Agent != nil {
		a := c.opts.Agent()
		for _, r := range results {
			ch <- prometheus.MustNewConstMetric(agentDownloads, prometheus.CounterValue, a.Downloads[r], r)
		}
		ch <- prometheus.MustNewConstMetric(agentRetries, prometheus.CounterValue, a.Retries)
		ch <- prometheus.MustNewConstMetric(agentBytes, prometheus.CounterValue, a.Bytes)
	}
}

func gauge(ch chan<- prometheus.Metric, d *prometheus.Desc, v float64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
}

// phases sends 1 for phase and 0 for the other known phases; a phase the list lacks (none
// today) gets its own series, and no phase yet counts as the first (Pending).
func phases(ch chan<- prometheus.Metric, d *prometheus.Desc, known []string, phase string, labels ...string) {
	if phase == "" {
		phase = known[0]
	}
	all := known
	if !slices.Contains(known, phase) {
		all = append(slices.Clip(known), phase)
	}
	for _, p := range all {
		v := 0.0
		if p == phase {
			v = 1
		}
		gauge(ch, d, v, append(labels, p)...)
	}
}

func (c *Collector) collectStore(ctx context.Context, ch chan<- prometheus.Metric) {
	if c.opts.Store == nil {
		return
	}
	objs, rv, err := c.opts.Store.List(ctx, "", store.ListOptions{})
	if err != nil {
		c.opts.Logger.Warn("metrics: reading the store", "err", err)
		gauge(ch, storeUp, 0)
		return
	}
	gauge(ch, storeUp, 1)
	gauge(ch, storeVersion, float64(rv))
	count := map[string]int{}
	for _, o := range objs {
		count[o.Kind]++
		switch o.Kind {
		case v1.KindClusterBaseModel, v1.KindBaseModel:
			var st v1.ModelStatus
			if err := decodeStatus(o, &st); err != nil {
				c.opts.Logger.Warn("metrics: reading a model's status", "kind", o.Kind, "namespace", o.Namespace, "name", o.Name, "err", err)
				continue
			}
			labels := []string{o.Kind, o.Namespace, o.Name}
			phases(ch, modelPhase, modelPhases, st.Phase, labels...)
			gauge(ch, modelDone, float64(st.BytesDone), labels...)
			gauge(ch, modelRate, float64(st.BytesPerSecond), labels...)
			if st.BytesTotal > 0 {
				gauge(ch, modelSize, float64(st.BytesTotal), labels...)
			}
			if st.LastProgressTime != nil {
				gauge(ch, modelProgress, float64(st.LastProgressTime.UnixMilli())/1e3, labels...)
			}
			attempts := 0.0
			if st.LastFailure != nil {
				attempts = float64(st.LastFailure.Attempt)
			}
			gauge(ch, modelAttempts, attempts, labels...)
		case v1.KindInferenceService:
			var st v1.InferenceServiceStatus
			if err := decodeStatus(o, &st); err != nil {
				c.opts.Logger.Warn("metrics: reading a service's status", "namespace", o.Namespace, "name", o.Name, "err", err)
				continue
			}
			labels := []string{o.Namespace, o.Name}
			phases(ch, servicePhase, servicePhases, st.Phase, labels...)
			gauge(ch, serviceReplicas, float64(st.Replicas), labels...)
			gauge(ch, serviceReady, float64(st.ReadyReplicas), labels...)
			restarts := 0
			for _, e := range st.Endpoints {
				restarts += e.Restarts
			}
			gauge(ch, serviceRestarts, float64(restarts), labels...)
		}
	}
	for _, k := range v1.Kinds {
		gauge(ch, storeObjects, float64(count[k.Kind]), k.Kind)
	}
}

func decodeStatus(o store.Object, into any) error {
	if len(o.Status) == 0 || string(o.Status) == "null" {
		return nil
	}
	return json.Unmarshal(o.Status, into)
}

func (c *Collector) collectGPUs(ctx context.Context, ch chan<- prometheus.Metric) {
	if c.opts.GPUs == nil {
		return
	}
	l, err := c.opts.GPUs(ctx)
	if err != nil || l.Error != "" {
		if err != nil {
			c.opts.Logger.Warn("metrics: reading the GPU inventory", "err", err)
		}
		gauge(ch, gpuInventoryUp, 0)
	} else {
		gauge(ch, gpuInventoryUp, 1)
	}
	var util map[int]float64
	if c.opts.Utilization != nil && len(l.Items) > 0 {
		if util, err = c.opts.Utilization(ctx); err != nil {
			c.opts.Logger.Warn("metrics: reading GPU utilisation", "err", err)
		}
	}
	for _, g := range l.Items {
		idx := strconv.Itoa(g.Index)
		gauge(ch, gpuInfo, 1, idx, g.UUID, g.Name, g.Profile)
		gauge(ch, gpuHolders, float64(len(g.Holders)), idx)
		if u, ok := util[g.Index]; ok {
			gauge(ch, gpuUtil, u, idx)
		}
		if g.MemoryTotal <= 0 {
			continue // the driver does not say (unified memory): no memory series rather than zeros
		}
		gauge(ch, gpuMemory, float64(g.MemoryTotal), idx, "total")
		gauge(ch, gpuMemory, float64(g.Planned), idx, "citadel")
		gauge(ch, gpuMemory, float64(g.MemoryUsed), idx, "other")
		gauge(ch, gpuMemory, float64(max(g.MemoryTotal-g.MemoryUsed-g.Planned, 0)), idx, "free")
	}
}

// AgentRecorder counts the model agent's downloads (it is the agent's Metrics); its Counters
// are Options.Agent.
type AgentRecorder struct {
	succeeded, failed, gaveUp, retries, bytes atomic.Int64
}

// Started counts a download's start; retry counts it as a retry.
func (r *AgentRecorder) Started(retry bool) {
	if retry {
		r.retries.Add(1)
	}
}

// Finished counts a download's end by its result, and the bytes it fetched.
func (r *AgentRecorder) Finished(err error, retryable bool, fetched int64) {
	switch {
	case err == nil:
		r.succeeded.Add(1)
	case retryable:
		r.failed.Add(1)
	default:
		r.gaveUp.Add(1)
	}
	r.bytes.Add(fetched)
}

// Counters returns the totals so far.
func (r *AgentRecorder) Counters() AgentCounters {
	return AgentCounters{
		Downloads: map[string]float64{ResultSucceeded: float64(r.succeeded.Load()), ResultFailed: float64(r.failed.Load()), ResultGaveUp: float64(r.gaveUp.Load())},
		Retries:   float64(r.retries.Load()),
		Bytes:     float64(r.bytes.Load()),
	}
}
