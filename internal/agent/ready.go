package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/internal/modelinfo"
	"citadel.dev/citadel/internal/pull"
	"citadel.dev/citadel/internal/resource"
	"citadel.dev/citadel/internal/store"
)

// FilledAnnotation lists the spec fields the agent filled.
const FilledAnnotation = v1.AnnotationFilledFromFiles

// ready marks a pulled model Ready and fills its metadata: into the spec's
// empty fields (as OME's agent does) and into status. It returns false when
// the files cannot be a model (the status then says Failed and why).
func (a *Agent) ready(ctx context.Context, k v1.Key, s *spec, res *pull.Result) bool {
	msg := fmt.Sprintf("%d files, %s, verified; at %s", len(res.Files), gb(res.Bytes), res.Dir)
	if res.Path != "" {
		msg += fmt.Sprintf(" (storage.path %s)", res.Path)
	}
	if res.OllamaName != "" {
		msg += fmt.Sprintf("; Ollama name %s in store %s", res.OllamaName, res.Store)
	}
	if res.PathNote != "" {
		msg += "; " + res.PathNote
		a.event(ctx, k, s, v1.EventNormal, v1.ReasonStoragePathNotUsed, res.PathNote)
	}
	var info *modelinfo.Info
	if i, err := pull.CheckFiles(res); err != nil {
		var pe *pull.Error
		if errors.As(err, &pe) && pe.Reason == v1.ReasonInvalidModelFiles {
			// The bytes are what the hub published, but no engine can load
			// them: the model is not Ready.
			a.fail(ctx, k, s, pe.Reason, pe.Message, failureOf(pe))
			return false
		}
		msg += "; metadata not read: " + err.Error()
	} else {
		info = &i
		msg += fmt.Sprintf("; %s %s, %s parameters, context %d", i.Format, firstNonEmpty(i.Architecture, i.ModelType, "model"), firstNonEmpty(i.ParameterSize, "?"), i.ContextLength)
	}
	// Fill the spec before announcing Ready, so that whoever sees Ready sees
	// the metadata too.
	if info != nil {
		a.fillSpec(ctx, k, *info)
		if fresh, err := a.load(ctx, k); err == nil {
			s = fresh
		}
	}
	st := *s.status
	st.BytesDone, st.BytesTotal, st.BytesPerSecond = res.Bytes, res.Bytes, 0
	st.FilesDone, st.FilesTotal = int32(len(res.Files)), int32(len(res.Files))
	st.LastProgressTime = v1.NewTime(a.opts.Now())
	if res.Commit != "" {
		st.Revision = res.Commit
	}
	*s.status = st
	a.write(ctx, k, s, v1.ModelReady, v1.ReasonReady, msg, nil)
	return true
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// fillSpec writes metadata into the spec fields the user left empty, with
// the stored resourceVersion as precondition (a concurrent apply wins and
// the next reconcile sees a Ready model whose spec is the user's).
func (a *Agent) fillSpec(ctx context.Context, k v1.Key, info modelinfo.Info) {
	s, err := a.load(ctx, k)
	if err != nil {
		return
	}
	filled := Fill(s.spec, info)
	if len(filled) == 0 {
		return
	}
	if s.meta.Annotations == nil {
		s.meta.Annotations = map[string]string{}
	}
	prev := strings.Split(s.meta.Annotations[FilledAnnotation], ",")
	all := map[string]bool{}
	for _, f := range append(prev, filled...) {
		if f != "" {
			all[f] = true
		}
	}
	names := make([]string, 0, len(all))
	for f := range all {
		names = append(names, f)
	}
	sort.Strings(names)
	s.meta.Annotations[FilledAnnotation] = strings.Join(names, ",")
	so, err := resource.ToStore(s.obj)
	if err != nil {
		return
	}
	so.ResourceVersion = s.storeRV
	if _, err := a.st.Apply(ctx, []store.Object{so}, store.ApplyOptions{}); err != nil {
		a.log.Info("filling model metadata skipped", "model", k.Name, "err", err)
		return
	}
	a.event(ctx, k, s, v1.EventNormal, v1.ReasonMetadataFilled, "filled from the model's files: "+strings.Join(filled, ", "))
}

// Fill sets the empty spec fields from info and returns their names.
func Fill(spec *v1.BaseModelSpec, info modelinfo.Info) []string {
	var filled []string
	str := func(name string, dst **string, v string) {
		if *dst == nil && v != "" {
			*dst = &v
			filled = append(filled, name)
		}
	}
	str("modelArchitecture", &spec.ModelArchitecture, info.Architecture)
	str("modelType", &spec.ModelType, info.ModelType)
	if spec.ModelParameterSize == nil && info.ParameterSize != "" {
		ps := v1.ParameterSize(info.ParameterSize)
		spec.ModelParameterSize = &ps
		filled = append(filled, "modelParameterSize")
	}
	if spec.ModelFormat.Name == "" && info.Format != "" && info.Format != "unknown" {
		ver := "1.0.0"
		spec.ModelFormat = v1.ModelFormat{Name: info.Format, Version: &ver, Weight: 1}
		filled = append(filled, "modelFormat")
	}
	if spec.ModelFramework == nil && info.TransformersVersion != "" {
		v := info.TransformersVersion
		spec.ModelFramework = &v1.ModelFrameworkSpec{Name: "transformers", Version: &v, Weight: 1}
		filled = append(filled, "modelFramework")
	}
	if spec.MaxTokens == nil && info.ContextLength > 0 && info.ContextLength <= 1<<31-1 {
		n := int32(info.ContextLength)
		spec.MaxTokens = &n
		filled = append(filled, "maxTokens")
	}
	if len(spec.ModelCapabilities) == 0 && len(info.Capabilities) > 0 {
		spec.ModelCapabilities = append([]string(nil), info.Capabilities...)
		filled = append(filled, "modelCapabilities")
	}
	if spec.Quantization == nil && info.Quantization != "" {
		q := strings.ToLower(info.Quantization)
		if v1.KnownQuantization(q) {
			spec.Quantization = &q
			filled = append(filled, "quantization")
		}
	}
	if len(spec.ModelConfiguration) == 0 {
		cfg := map[string]any{
			"model_type": info.ModelType, "architecture": info.Architecture, "context_length": info.ContextLength,
			"parameter_count": info.ParameterSize, "has_vision": info.Vision, "is_embedding": info.Embedding,
			"transformers_version": info.TransformersVersion, "torch_dtype": info.Dtype, "model_size_bytes": info.SizeBytes,
		}
		if b, err := json.Marshal(cfg); err == nil {
			spec.ModelConfiguration = b
			filled = append(filled, "modelConfiguration")
		}
	}
	return filled
}

// gc removes blobs, snapshots and partial files of the HF cache and
// Ollama's blobs that no recorded model uses, in repositories Citadel
// pulled. It never touches a running pull's partial files.
func (a *Agent) gc() {
	keep := map[string]bool{}
	var repos []string
	entries, _ := os.ReadDir(a.opts.RecordsDir)
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(a.opts.RecordsDir, e.Name()))
		if err != nil {
			continue
		}
		var r record
		if json.Unmarshal(b, &r) != nil {
			continue
		}
		for _, f := range r.Result.Files {
			p := filepath.Join(r.Result.Dir, filepath.FromSlash(f))
			if t, err := filepath.EvalSymlinks(p); err == nil {
				keep[t] = true
			}
			keep[p] = true
		}
		if strings.Contains(r.Result.Dir, string(filepath.Separator)+"snapshots"+string(filepath.Separator)) {
			repos = append(repos, filepath.Dir(filepath.Dir(r.Result.Dir)))
		}
	}
	for _, m := range a.models {
		if m.running {
			return // a pull in flight may be about to use anything: collect later
		}
	}
	for _, repo := range a.gcRepos(repos) {
		blobs, _ := os.ReadDir(filepath.Join(repo, "blobs"))
		for _, b := range blobs {
			p := filepath.Join(repo, "blobs", b.Name())
			if !keep[p] {
				os.Remove(p)
				a.log.Info("gc removed unused blob", "path", p)
			}
		}
		snaps, _ := os.ReadDir(filepath.Join(repo, "snapshots"))
		for _, s := range snaps {
			dir := filepath.Join(repo, "snapshots", s.Name())
			used := false
			_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
				if err == nil && keep[p] {
					used = true
				}
				return nil
			})
			if !used {
				os.RemoveAll(dir)
			}
		}
	}
}

// gcRepos is every repository directory of the HF cache Citadel has records
// for now or had before (remembered in gc-repos.json), so a deleted model's
// repository is collected too.
func (a *Agent) gcRepos(current []string) []string {
	path := filepath.Join(a.opts.RecordsDir, "..", "gc-repos.json")
	var known []string
	if b, err := os.ReadFile(path); err == nil {
		_ = json.Unmarshal(b, &known)
	}
	set := map[string]bool{}
	for _, r := range append(known, current...) {
		set[r] = true
	}
	out := make([]string, 0, len(set))
	for r := range set {
		out = append(out, r)
	}
	sort.Strings(out)
	if b, err := json.Marshal(out); err == nil {
		_ = os.WriteFile(path, b, 0o644)
	}
	return out
}
