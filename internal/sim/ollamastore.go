package sim

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"citadel.dev/citadel/internal/modelinfo"
	"citadel.dev/citadel/internal/perfmodel"
	"citadel.dev/citadel/internal/registry"
)

// Media types of an Ollama manifest's weights layer.
const ollamaModelMediaType = "application/vnd.ollama.image.model"

// maxManifestSize bounds a manifest read from the store.
const maxManifestSize = 4 << 20

// OllamaStoreModels reads the models of an Ollama models directory (what OLLAMA_MODELS names:
// manifests/<host>/<namespace>/<model>/<tag> and blobs/sha256-<hex>) and sizes each from its
// GGUF blob as the planner does (modelinfo.Inspect, perfmodel.ModelFromInfo; a stand-in is sized as
// the model it declares). Each is planned with opts on gpu, in its file's quantisation, and split
// over free as Ollama would (OllamaModelFor). A manifest that cannot be used (unreadable, no
// weights layer, a missing or damaged blob) is left out and reported in skipped, as ollama serve
// logs and skips it; err is for a store that cannot be read at all. A directory without
// manifests/ holds no models.
func OllamaStoreModels(dir string, gpu perfmodel.GPU, opts perfmodel.Options, free []int64) (models []OllamaModel, skipped []error, err error) {
	files, err := storeManifests(dir)
	if err != nil {
		return nil, nil, err
	}
	for _, name := range slices.Sorted(maps.Keys(files)) {
		m, err := storeModel(dir, files[name], gpu, opts, free)
		if err != nil {
			skipped = append(skipped, err)
			continue
		}
		models = append(models, m)
	}
	return models, skipped, nil
}

// OllamaStore is where a simulated Ollama server finds its models again while it runs
// (OllamaConfig.Store): the store and how its models are planned (see OllamaStoreModels).
type OllamaStore struct {
	Dir     string
	GPU     perfmodel.GPU
	Options perfmodel.Options
}

// storeManifests maps the names of a store's manifests, as Ollama shows them, to their files.
func storeManifests(dir string) (map[string]string, error) {
	root := filepath.Join(dir, "manifests")
	files := make(map[string]string)
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == root && errors.Is(err, fs.ErrNotExist) {
				return fs.SkipAll
			}
			return err
		}
		if strings.HasPrefix(d.Name(), ".") && p != root {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		parts := strings.Split(filepath.ToSlash(rel), "/")
		if d.IsDir() || len(parts) != 4 {
			return nil
		}
		n, err := registry.ParseName(parts[0] + "/" + parts[1] + "/" + parts[2] + ":" + parts[3])
		if err != nil {
			return nil // not a name Ollama would list either
		}
		files[displayShortest(n)] = p
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading the Ollama store %s: %w", dir, err)
	}
	return files, nil
}

// storeModel reads one manifest.
func storeModel(dir, file string, gpu perfmodel.GPU, opts perfmodel.Options, free []int64) (OllamaModel, error) {
	rel, _ := filepath.Rel(filepath.Join(dir, "manifests"), file)
	parts := strings.Split(filepath.ToSlash(rel), "/")
	n, err := registry.ParseName(parts[0] + "/" + parts[1] + "/" + parts[2] + ":" + parts[3])
	if err != nil || len(parts) != 4 {
		return OllamaModel{}, fmt.Errorf("manifest %s: not at manifests/<host>/<namespace>/<model>/<tag>", file)
	}
	name := displayShortest(n)
	fail := func(format string, args ...any) (OllamaModel, error) {
		return OllamaModel{}, fmt.Errorf("model %s (%s): %s", name, file, fmt.Sprintf(format, args...))
	}
	fi, err := os.Stat(file)
	if err != nil {
		return fail("%v", err)
	}
	if fi.Size() > maxManifestSize {
		return fail("the manifest is %d bytes, more than %d", fi.Size(), maxManifestSize)
	}
	raw, err := os.ReadFile(file)
	if err != nil {
		return fail("%v", err)
	}
	var man registry.Manifest
	if err := json.Unmarshal(raw, &man); err != nil {
		return fail("the manifest is not JSON: %v; pull the model again", err)
	}
	blob := func(digest string) string {
		return filepath.Join(dir, "blobs", strings.Replace(digest, ":", "-", 1))
	}
	var weights string
	var weightsSize, size int64
	for _, l := range append([]registry.Layer{man.Config}, man.Layers...) {
		if _, ok := strings.CutPrefix(l.Digest, "sha256:"); !ok || strings.ContainsAny(l.Digest, `/\`) {
			return fail("layer digest %q is not sha256:<hex>", l.Digest)
		}
		size += l.Size
		if l.MediaType == ollamaModelMediaType && weights == "" {
			weights, weightsSize = blob(l.Digest), l.Size
		}
	}
	if weights == "" {
		return fail("the manifest has no %s layer", ollamaModelMediaType)
	}
	info, cfg, err := modelinfo.Inspect(weights)
	if err != nil {
		return fail("its weights %s cannot be read: %v; pull the model again", filepath.Base(weights), err)
	}
	pm, err := perfmodel.ModelFromInfo(name, cfg, info)
	if err != nil {
		return fail("%v", err)
	}
	m, err := OllamaModelFor(name, pm, gpu, opts, free)
	if err != nil {
		return fail("%v", err)
	}
	sum := sha256.Sum256(raw)
	m.Digest = hex.EncodeToString(sum[:])
	m.Modified = fi.ModTime()
	m.Size = size
	if info.StandIn {
		// A stand-in lists at the size of the weights it stands in for.
		m.Size += pm.WeightBytes(m.Plan.Options.Quant) - weightsSize
	}
	m.StandIn = info.StandIn
	m.Manifest = file
	m.Family = info.Architecture
	m.ParameterSize = modelinfo.OllamaParameterSize(info.ParameterCount)
	m.QuantizationLevel = info.Dtype
	// Ollama's /api/tags reads its details from the config blob; prefer them when present.
	if b, err := os.ReadFile(blob(man.Config.Digest)); err == nil && len(b) < maxManifestSize {
		var c struct {
			Family   string `json:"model_family"`
			Type     string `json:"model_type"`
			FileType string `json:"file_type"`
		}
		if json.Unmarshal(b, &c) == nil {
			m.Family = cmpOr(c.Family, m.Family)
			m.ParameterSize = cmpOr(c.Type, m.ParameterSize)
			m.QuantizationLevel = cmpOr(c.FileType, m.QuantizationLevel)
		}
	}
	return m, nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// OllamaModelFor plans model m for the Ollama personality: opts (Parallel slots of
// MaxModelLen tokens; the model's own quantisation unless opts says) on gpu, and, when free is
// given (the memory of each visible GPU), the split of its layers over those GPUs and the CPU
// (perfmodel.PlanOffloadOn). A model that does not fit free runs with layers on the CPU, as Ollama
// does, Offload.Slowdown times slower; its engine plan is then computed as if the GPU were large
// enough, since only the step times matter to it. Without free, a model that does not fit gpu is
// an error (*perfmodel.PlanError).
func OllamaModelFor(name string, m perfmodel.Model, gpu perfmodel.GPU, opts perfmodel.Options, free []int64) (OllamaModel, error) {
	opts.TP = 1 // Ollama splits layers between GPUs; it does not shard them
	plan, err := perfmodel.NewPlan(gpu, m, opts)
	if err != nil && len(free) > 0 {
		var pe *perfmodel.PlanError
		if !errors.As(err, &pe) {
			return OllamaModel{}, err
		}
		big := gpu
		for i := 0; i < 16 && err != nil; i++ {
			big.MemoryBytes *= 2
			plan, err = perfmodel.NewPlan(big, m, opts)
		}
	}
	if err != nil {
		return OllamaModel{}, err
	}
	om := OllamaModel{Name: name, Plan: plan}
	if len(free) > 0 {
		om.Offload = perfmodel.PlanOffloadOn(gpu, 0, m, plan.Options.Quant, plan.Options.MaxModelLen, plan.Options.Parallel, free)
	}
	return om, nil
}

// displayShortest is how Ollama shows a name (types/model/name.go DisplayShortest): the default
// registry and the library namespace are left out.
func displayShortest(n registry.Name) string {
	switch {
	case !strings.EqualFold(n.Host, registry.DefaultHost):
		return n.Host + "/" + n.Namespace + "/" + n.Model + ":" + n.Tag
	case !strings.EqualFold(n.Namespace, registry.DefaultNamespace):
		return n.Namespace + "/" + n.Model + ":" + n.Tag
	}
	return n.Model + ":" + n.Tag
}
