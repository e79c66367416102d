package daemon

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/examples"
	"citadel.dev/citadel/internal/config"
	"citadel.dev/citadel/internal/resource"
	"citadel.dev/citadel/internal/store"
)

// builtInAction says what installBuiltIns did with one runtime.
type builtInAction string

const (
	builtInCreated   builtInAction = "created"
	builtInUpdated   builtInAction = "updated"
	builtInUnchanged builtInAction = "unchanged"
	// builtInUsers: a runtime of that name is the user's (applied by them,
	// or a built-in they edited): left as it is.
	builtInUsers builtInAction = "kept the user's"
)

// installBuiltIns installs Citadel's built-in runtimes (examples/runtimes,
// one ClusterServingRuntime per engine) into st: it creates a missing one,
// updates one that is still a built-in as Citadel wrote it (annotation
// citadel.dev/built-in: "true" and its content hash matching its spec) when
// the shipped file changed, and never touches a runtime of the same name
// that the user applied or edited. It returns what it did per runtime.
func installBuiltIns(ctx context.Context, st *store.Store, files fs.FS, log *slog.Logger) (map[string]builtInAction, error) {
	rts, err := builtInRuntimes(files)
	if err != nil {
		return nil, err
	}
	done := map[string]builtInAction{}
	for _, r := range rts {
		want, hash, err := builtInObject(r)
		if err != nil {
			return nil, err
		}
		action := builtInCreated
		cur, err := st.Get(ctx, v1.KindClusterServingRuntime, "", r.Name)
		var nf *store.NotFoundError
		switch {
		case errors.As(err, &nf):
		case err != nil:
			return nil, fmt.Errorf("reading runtime %s: %w", r.Name, err)
		case !untouched(cur):
			done[r.Name] = builtInUsers
			log.Info("built-in runtime not installed: a runtime of that name is the user's", "runtime", r.Name)
			continue
		case cur.Annotations[v1.AnnotationBuiltInHash] == hash:
			done[r.Name] = builtInUnchanged
			continue
		default:
			action = builtInUpdated
			want.ResourceVersion = cur.ResourceVersion // not if the user applies meanwhile
		}
		if _, err := st.Apply(ctx, []store.Object{want}, store.ApplyOptions{}); err != nil {
			return nil, fmt.Errorf("installing built-in runtime %s: %w", r.Name, err)
		}
		done[r.Name] = action
		log.Info("built-in runtime "+string(action), "runtime", r.Name, "engine", r.Spec.Engine.Name)
	}
	return done, nil
}

// builtInRuntimes decodes the shipped runtime files.
func builtInRuntimes(files fs.FS) ([]*v1.ClusterServingRuntime, error) {
	names, err := fs.Glob(files, "*.yaml")
	if err != nil {
		return nil, err
	}
	var out []*v1.ClusterServingRuntime
	for _, n := range names {
		f, err := files.Open(n)
		if err != nil {
			return nil, err
		}
		items, errs := config.Decode(f, n)
		f.Close()
		if err := errs.Err(); err != nil {
			return nil, fmt.Errorf("built-in runtime file %s: %w", n, err)
		}
		for _, it := range items {
			r, ok := it.Object.(*v1.ClusterServingRuntime)
			if !ok || r.Spec.Engine == nil {
				return nil, fmt.Errorf("built-in runtime file %s: want a ClusterServingRuntime with engine: {name: ...}, got %s", n, it.Key())
			}
			out = append(out, r)
		}
	}
	return out, nil
}

// builtInObject is r as stored, annotated as built-in with its hash.
func builtInObject(r *v1.ClusterServingRuntime) (store.Object, string, error) {
	so, err := resource.ToStore(r)
	if err != nil {
		return store.Object{}, "", err
	}
	hash := specHash(so.Spec)
	so.Annotations = maps.Clone(so.Annotations)
	if so.Annotations == nil {
		so.Annotations = map[string]string{}
	}
	so.Annotations[v1.AnnotationBuiltIn] = "true"
	so.Annotations[v1.AnnotationBuiltInHash] = hash
	return so, hash, nil
}

// untouched reports whether a stored runtime is a built-in as Citadel wrote
// it: marked, and its spec still the one its hash was taken of.
func untouched(cur store.Object) bool {
	if cur.Annotations[v1.AnnotationBuiltIn] != "true" {
		return false
	}
	o, err := resource.FromStore(cur)
	if err != nil {
		return false
	}
	so, err := resource.ToStore(o) // the same canonical form builtInObject hashes
	if err != nil {
		return false
	}
	return cur.Annotations[v1.AnnotationBuiltInHash] == specHash(so.Spec)
}

func specHash(spec []byte) string {
	sum := sha256.Sum256(spec)
	return hex.EncodeToString(sum[:8])
}

// installShippedRuntimes installs the runtimes shipped in the binary
// (examples/runtimes) when citadel serve starts.
func installShippedRuntimes(ctx context.Context, st *store.Store, log *slog.Logger) error {
	_, err := installBuiltIns(ctx, st, examples.Runtimes(), log.With("component", "builtin"))
	return err
}
