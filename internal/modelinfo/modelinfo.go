package modelinfo

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"math"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Weight formats reported in Info.Format.
const (
	FormatSafetensors = "safetensors"
	FormatGGUF        = "gguf"
	FormatPyTorch     = "pytorch"
	FormatUnknown     = "unknown"
)

const (
	maxWalkDepth   = 3       // directory levels below the model directory that FromDir searches
	maxWalkEntries = 100_000 // directory entries FromDir looks at before giving up
	maxConfigSize  = 16 << 20
	maxIndexSize   = 64 << 20
)

// Info is what Citadel learns about a model from its files.
type Info struct {
	Format                  string // FormatSafetensors, FormatGGUF, FormatPyTorch or FormatUnknown (config only)
	Architecture            string // architectures[0] from config.json, else GGUF general.architecture
	ModelType               string // config.json model_type (top level), else GGUF general.architecture
	ParameterCount          int64  // exact from safetensors or GGUF headers, else estimated from config.json
	ParameterCountEstimated bool
	ParameterSize           string           // OME format: "7B", "8.29B", "500M"
	ParametersByDtype       map[string]int64 // e.g. {"BF16": 8292166656}; GGUF: by GGML type; nil when estimated
	ContextLength           int              // config.json (text_config first), else GGUF <arch>.context_length
	Vision                  bool             // image input: see Config.Vision; GGUF: an mmproj file
	Embedding               bool             // see Config.Embedding; also sentence-transformers files, GGUF pooling
	Dtype                   string           // config.json torch_dtype/dtype ("bfloat16"); GGUF: file type ("Q4_K_M")
	Quantization            string           // quantization_config.quant_method ("awq"); GGUF: quantised file type ("q4_k_m")
	TransformersVersion     string
	SizeBytes               int64    // bytes of the weight files on disk (symlinks followed; GGUF: with the mmproj)
	Capabilities            []string // OME names: IMAGE_TEXT_TO_TEXT, EMBEDDING or TEXT_TO_TEXT
	Files                   []string // weight files read, slash-separated, relative to the directory (GGUF: model parts, then mmproj)
	// StandIn reports a stand-in: a small file that declares the parameter count of the model it
	// stands in for (see StandInParameterCountKey). ParameterCount is the declared count.
	StandIn bool
}

// FromDir inspects a model directory, typically a Hugging Face snapshot whose files are symlinks
// into a blob store (they are followed). It looks for:
//
//   - config.json in the directory, else the first one found searching breadth-first, in name
//     order, up to 3 levels down (hidden directories are skipped);
//   - weights in config.json's directory, or when it has none (or there is no config.json), in the
//     first directory in the same order that has any: model.safetensors.index.json (or another
//     *.safetensors.index.json) and the shards its weight_map names, else every *.safetensors, else
//     *.gguf (the largest file whose name does not contain "mmproj" is the model, with all its
//     parts if it is split as NAME-00001-of-0000N.gguf; the largest mmproj file is the vision
//     projector), else pytorch_model.bin.index.json and its shards, else every *.bin except
//     training state (training_args.bin, optimizer.bin, …).
//
// The parameter count is exact when safetensors or GGUF headers were read (every header is
// validated, see ReadSafetensorsHeader and ReadGGUF; an mmproj's parameters are not counted), else
// estimated from config.json with EstimateParameters. config.json and sentence-transformers files
// (modules.json, config_sentence_transformers.json) drive Vision and Embedding, see ParseConfig.
//
// Errors: *NoModelError when there is neither config.json nor weights; a *FormatError (File
// relative to dir) for a malformed config.json, index or weight header; an error wrapping
// fs.ErrNotExist when dir, a shard named by an index or a split GGUF part is missing, or a weight
// file is a broken symlink. On error Info is empty.
func FromDir(dir string) (Info, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return Info{}, fmt.Errorf("inspecting model directory: %w", err)
	}
	if !fi.IsDir() {
		return Info{}, fmt.Errorf("inspecting model directory %q: not a directory", dir)
	}
	files, err := walk(dir)
	if err != nil {
		return Info{}, err
	}

	var cfg *Config
	var cfgDir string
	for _, f := range files {
		if path.Base(f.rel) == "config.json" {
			c, err := readConfig(dir, f)
			if err != nil {
				return Info{}, err
			}
			cfg, cfgDir = &c, path.Dir(f.rel)
			break
		}
	}

	wdir, ok := weightDir(files, cfgDir, cfg != nil)
	if !ok && cfg == nil {
		return Info{}, &NoModelError{Dir: dir}
	}
	info := Info{Format: FormatUnknown}
	var exact bool
	if ok {
		if exact, err = readWeights(dir, filesIn(files, wdir), &info); err != nil {
			return Info{}, err
		}
	}
	if info.Format == FormatUnknown && cfg == nil { // e.g. only an mmproj file
		return Info{}, &NoModelError{Dir: dir}
	}
	if cfg != nil {
		mergeConfig(&info, *cfg, filesIn(files, cfgDir), exact)
	}
	if info.Dtype == "" && info.Format == FormatSafetensors {
		info.Dtype = dominantFloat(info.ParametersByDtype)
	}
	if info.Vision {
		info.Embedding = false
	}
	info.ParameterSize = FormatParameterSize(info.ParameterCount)
	info.Capabilities = capabilities(info.Vision, info.Embedding)
	return info, nil
}

// mergeConfig adds what config.json says to info: config.json wins for names and context length;
// for GGUF weights the file type wins for dtype and quantisation. siblings are the files beside
// config.json. exact reports whether info already has an exact parameter count.
func mergeConfig(info *Info, cfg Config, siblings []entry, exact bool) {
	if cfg.Architecture != "" {
		info.Architecture = cfg.Architecture
	}
	if cfg.ModelType != "" {
		info.ModelType = cfg.ModelType
	}
	info.TransformersVersion = cfg.TransformersVersion
	if cfg.ContextLength > 0 {
		info.ContextLength = cfg.ContextLength
	}
	if info.Format != FormatGGUF || info.Dtype == "" {
		info.Dtype = cfg.Dtype
	}
	if info.Format != FormatGGUF || info.Quantization == "" {
		info.Quantization = cfg.Quantization
	}
	info.Vision = info.Vision || cfg.Vision
	// A sentence-transformers pipeline (Qwen3-Embedding, e5-mistral, …) marks an embedding model
	// whatever its architecture, except a cross-encoder (reranker) head.
	var sentenceTransformers bool
	for _, f := range siblings {
		switch path.Base(f.rel) {
		case "modules.json", "config_sentence_transformers.json":
			sentenceTransformers = !strings.HasSuffix(cfg.Architecture, "ForSequenceClassification")
		}
	}
	info.Embedding = info.Embedding || cfg.Embedding || sentenceTransformers
	if !exact {
		if n := EstimateParameters(cfg); n > 0 {
			info.ParameterCount, info.ParameterCountEstimated = n, true
		}
	}
}

// filesIn returns the files directly in dir.
func filesIn(files []entry, dir string) []entry {
	var out []entry
	for _, f := range files {
		if path.Dir(f.rel) == dir {
			out = append(out, f)
		}
	}
	return out
}

// entry is a regular file found by walk.
type entry struct {
	rel  string // slash-separated, relative to the model directory
	size int64
}

// walk lists regular files (following symlinks) breadth-first, in name order, down to
// maxWalkDepth directory levels, skipping hidden entries. A weight file that is a broken symlink is
// an error; other broken symlinks are skipped.
func walk(root string) ([]entry, error) {
	type dir struct {
		rel   string
		depth int
	}
	var out []entry
	queue := []dir{{".", 0}}
	seen := 0
	for len(queue) > 0 {
		d := queue[0]
		queue = queue[1:]
		des, err := os.ReadDir(filepath.Join(root, filepath.FromSlash(d.rel)))
		if err != nil {
			if d.rel == "." {
				return nil, fmt.Errorf("inspecting model directory: %w", err)
			}
			continue // an unreadable subdirectory is not the model
		}
		for _, de := range des {
			if seen++; seen > maxWalkEntries {
				return nil, fmt.Errorf("inspecting model directory %q: more than %d entries within %d levels; point at the model's own directory", root, maxWalkEntries, maxWalkDepth)
			}
			name := de.Name()
			if strings.HasPrefix(name, ".") {
				continue
			}
			rel := path.Join(d.rel, name)
			fi, err := os.Stat(filepath.Join(root, filepath.FromSlash(rel)))
			if err != nil {
				if isWeight(name) && errors.Is(err, fs.ErrNotExist) {
					return nil, fmt.Errorf("weight file %q in %q is a broken symlink (its blob is missing): "+
						"the download is incomplete; pull the model again: %w", rel, root, fs.ErrNotExist)
				}
				continue
			}
			switch {
			case fi.IsDir():
				if d.depth < maxWalkDepth {
					queue = append(queue, dir{rel, d.depth + 1})
				}
			case fi.Mode().IsRegular():
				out = append(out, entry{rel, fi.Size()})
			}
		}
	}
	return out, nil
}

func isWeight(name string) bool {
	switch path.Ext(name) {
	case ".safetensors", ".gguf":
		return true
	case ".bin":
		return !nonWeightBin(name)
	}
	return false
}

// nonWeightBin reports .bin files that are training state, not weights.
func nonWeightBin(name string) bool {
	base := path.Base(name)
	for _, p := range []string{"training_args", "optimizer", "scheduler", "rng_state", "scaler"} {
		if strings.HasPrefix(base, p) {
			return true
		}
	}
	return false
}

// weightDir picks the directory to read weights from: config.json's if it holds any, else the
// first directory (breadth-first, name order) that does.
func weightDir(files []entry, cfgDir string, haveCfg bool) (string, bool) {
	if haveCfg {
		for _, f := range files {
			if path.Dir(f.rel) == cfgDir && isWeight(f.rel) {
				return cfgDir, true
			}
		}
	}
	for _, f := range files {
		if isWeight(f.rel) {
			return path.Dir(f.rel), true
		}
	}
	return "", false
}

func readConfig(root string, f entry) (Config, error) {
	if f.size > maxConfigSize {
		return Config{}, &FormatError{Format: "config.json", File: f.rel, Offset: -1,
			Msg: fmt.Sprintf("%d bytes is more than the %d-byte limit", f.size, maxConfigSize)}
	}
	data, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(f.rel)))
	if err != nil {
		return Config{}, fmt.Errorf("reading model config: %w", err)
	}
	c, err := ParseConfig(data)
	if fe := (*FormatError)(nil); errors.As(err, &fe) {
		fe.File = f.rel
	}
	return c, err
}

// readWeights fills the weight fields of info from the weight files of one directory. It reports
// whether the parameter count is exact.
func readWeights(root string, files []entry, info *Info) (bool, error) {
	byName := make(map[string]entry)
	for _, f := range files {
		byName[path.Base(f.rel)] = f
	}
	pick := func(suffix string) []entry {
		var out []entry
		for _, f := range files {
			if strings.HasSuffix(f.rel, suffix) && isWeight(f.rel) {
				out = append(out, f)
			}
		}
		return out
	}

	// Safetensors: an index (model.safetensors.index.json first), else every file.
	i := slices.IndexFunc(files, func(f entry) bool { return path.Base(f.rel) == "model.safetensors.index.json" })
	if i < 0 {
		i = slices.IndexFunc(files, func(f entry) bool { return strings.HasSuffix(f.rel, ".safetensors.index.json") })
	}
	if i >= 0 {
		shards, err := readIndex(root, files[i], byName)
		if err != nil {
			return false, err
		}
		info.Format = FormatSafetensors
		return true, readSafetensors(root, shards, info)
	}
	if st := pick(".safetensors"); len(st) > 0 {
		info.Format = FormatSafetensors
		return true, readSafetensors(root, st, info)
	}

	if gg := pick(".gguf"); len(gg) > 0 {
		var models, projectors []entry
		for _, f := range gg {
			if strings.Contains(strings.ToLower(path.Base(f.rel)), "mmproj") {
				projectors = append(projectors, f)
			} else {
				models = append(models, f)
			}
		}
		if len(models) > 0 {
			info.Format = FormatGGUF
			return true, readGGUFModel(root, models, largest(projectors), byName, info)
		}
	}

	// PyTorch pickles are not parsed (unpickling is unsafe); the count is estimated from config.json.
	var bins []entry
	if idx, ok := byName["pytorch_model.bin.index.json"]; ok {
		var err error
		if bins, err = readIndex(root, idx, byName); err != nil {
			return false, err
		}
	} else {
		bins = pick(".bin")
	}
	if len(bins) > 0 {
		info.Format = FormatPyTorch
		for _, f := range bins {
			info.Files = append(info.Files, f.rel)
			info.SizeBytes += f.size
		}
	}
	return false, nil
}

// readIndex returns the shards named by a *.index.json weight_map, in name order.
func readIndex(root string, idx entry, byName map[string]entry) ([]entry, error) {
	ferr := func(format string, args ...any) error {
		return &FormatError{Format: "weight index", File: idx.rel, Offset: -1, Msg: fmt.Sprintf(format, args...)}
	}
	if idx.size > maxIndexSize {
		return nil, ferr("%d bytes is more than the %d-byte limit", idx.size, maxIndexSize)
	}
	data, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(idx.rel)))
	if err != nil {
		return nil, fmt.Errorf("reading weight index: %w", err)
	}
	var index struct {
		WeightMap map[string]string `json:"weight_map"`
	}
	if err := json.Unmarshal(data, &index); err != nil {
		return nil, ferr("not valid JSON with a weight_map object of strings: %v", err)
	}
	if len(index.WeightMap) == 0 {
		return nil, ferr("weight_map is missing or empty")
	}
	set := make(map[string]bool)
	for _, shard := range index.WeightMap {
		set[shard] = true
	}
	var out []entry
	for _, shard := range slices.Sorted(maps.Keys(set)) {
		if !filepath.IsLocal(shard) || strings.ContainsAny(shard, `/\`) {
			return nil, ferr("shard %q is not a file name in the model directory", shard)
		}
		f, ok := byName[shard]
		if !ok {
			return nil, fmt.Errorf("%s lists shard %q, which is not in the model directory: "+
				"the download is incomplete; pull the model again: %w", idx.rel, shard, fs.ErrNotExist)
		}
		out = append(out, f)
	}
	return out, nil
}

func readSafetensors(root string, files []entry, info *Info) error {
	info.ParametersByDtype = make(map[string]int64)
	var declared map[string]int64 // a stand-in's declaration, from the first file that has one
	for _, f := range files {
		h, err := readHeader(root, f, ReadSafetensorsHeader)
		if err != nil {
			return err
		}
		if d, err := h.standIn(); err != nil {
			err.File = f.rel
			return fmt.Errorf("reading weights: %w", err)
		} else if d != nil && declared == nil {
			declared = d
		}
		for dt, n := range h.ParametersByDtype() {
			if !addCount(&info.ParametersByDtype, dt, n, &info.ParameterCount) {
				return fmt.Errorf("reading weights: parameter count over all shards overflows int64")
			}
		}
		info.Files = append(info.Files, f.rel)
		info.SizeBytes += f.size
	}
	if declared != nil {
		info.ParametersByDtype, info.ParameterCount, info.StandIn = declared, 0, true
		for _, n := range declared {
			info.ParameterCount += n
		}
	}
	return nil
}

// addCount adds n to m[key] and *total, reporting false on overflow.
func addCount(m *map[string]int64, key string, n int64, total *int64) bool {
	if *total > math.MaxInt64-n || (*m)[key] > math.MaxInt64-n {
		return false
	}
	(*m)[key] += n
	*total += n
	return true
}

// readHeader opens a weight file and reads its header with read, naming the file in errors.
func readHeader[T any](root string, f entry, read func(r io.ReaderAt, size int64) (T, error)) (T, error) {
	var zero T
	fh, err := os.Open(filepath.Join(root, filepath.FromSlash(f.rel)))
	if err != nil {
		return zero, fmt.Errorf("reading weights: %w", err)
	}
	defer fh.Close()
	fi, err := fh.Stat()
	if err != nil {
		return zero, fmt.Errorf("reading weights: %w", err)
	}
	h, err := read(fh, fi.Size())
	if err != nil {
		if fe := (*FormatError)(nil); errors.As(err, &fe) {
			fe.File = f.rel
		}
		return zero, fmt.Errorf("reading weights: %w (the file is damaged or incomplete; pull the model again)", err)
	}
	return h, nil
}

// splitName matches llama.cpp split files: NAME-00001-of-00003.gguf.
var splitName = regexp.MustCompile(`^(.*)-(\d{5})-of-(\d{5})\.gguf$`)

func readGGUFModel(root string, models []entry, projector *entry, byName map[string]entry, info *Info) error {
	model := *largest(models)
	parts := []entry{model}
	if m := splitName.FindStringSubmatch(path.Base(model.rel)); m != nil && m[3] != "00000" && m[2] <= m[3] {
		parts = parts[:0]
		n, _ := strconv.Atoi(m[3]) // five digits: cannot fail
		for i := 1; i <= n; i++ {
			name := fmt.Sprintf("%s-%05d-of-%s.gguf", m[1], i, m[3])
			f, ok := byName[name]
			if !ok {
				return fmt.Errorf("split GGUF model %q: part %q is missing: the download is incomplete; pull the model again: %w",
					path.Base(model.rel), name, fs.ErrNotExist)
			}
			parts = append(parts, f)
		}
	}
	info.ParametersByDtype = make(map[string]int64)
	var g0 GGUFInfo
	for i, f := range parts {
		g, err := readHeader(root, f, ReadGGUF)
		if err != nil {
			return err
		}
		if i == 0 {
			g0 = g
		}
		if i == 0 { // the first part carries the model's metadata
			info.StandIn = g.StandInParameterCount > 0
			info.Architecture = g.Architecture
			info.ModelType = g.Architecture
			info.ContextLength = g.ContextLength
			info.Dtype = g.FileTypeName
			if quantizedFileType(g.FileTypeName) {
				info.Quantization = strings.ToLower(g.FileTypeName)
			}
			info.Embedding = ggufEmbedding(g)
		}
		for typ, n := range g.ParametersByType() {
			if !addCount(&info.ParametersByDtype, typ, n, &info.ParameterCount) {
				return fmt.Errorf("reading weights: parameter count over all parts overflows int64")
			}
		}
		info.Files = append(info.Files, f.rel)
		info.SizeBytes += f.size
	}
	if info.StandIn {
		info.ParameterCount = g0.StandInParameterCount
		info.ParametersByDtype = map[string]int64{g0.FileTypeName: g0.StandInParameterCount}
	}
	if projector != nil {
		if _, err := readHeader(root, *projector, ReadGGUF); err != nil {
			return err
		}
		info.Vision = true
		info.Files = append(info.Files, projector.rel)
		info.SizeBytes += projector.size
	}
	return nil
}

// largest returns the biggest file (the first in order on ties), or nil.
func largest(files []entry) *entry {
	var best *entry
	for i := range files {
		if best == nil || files[i].size > best.size {
			best = &files[i]
		}
	}
	return best
}

// quantizedFileType reports whether a GGUF file type is quantised (not plain F32/F16/BF16).
func quantizedFileType(name string) bool {
	switch name {
	case "", "F32", "F16", "BF16":
		return false
	}
	return true
}

// ggufEmbeddingArchs are llama.cpp architectures of embedding encoders.
var ggufEmbeddingArchs = map[string]bool{
	"bert": true, "nomic-bert": true, "nomic-bert-moe": true, "jina-bert-v2": true, "jina-bert-v3": true,
	"modern-bert": true, "neo-bert": true, "t5encoder": true,
}

// ggufEmbedding reports an embedding model: an encoder architecture, or a pooling type of mean, cls
// or last (rank, 4, is a reranker).
func ggufEmbedding(g GGUFInfo) bool {
	if g.PoolingType == 4 {
		return false
	}
	return ggufEmbeddingArchs[g.Architecture] || (g.PoolingType >= 1 && g.PoolingType <= 3)
}

// dominantFloat names the float dtype holding most parameters, in config.json's spelling, or "".
func dominantFloat(by map[string]int64) string {
	var best string
	var bestN int64 = -1
	for _, dt := range slices.Sorted(maps.Keys(by)) {
		if by[dt] > bestN {
			best, bestN = dt, by[dt]
		}
	}
	return map[string]string{"BF16": "bfloat16", "F16": "float16", "F32": "float32"}[best]
}
