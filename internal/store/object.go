package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"
)

// Object is a stored resource. Kind, Namespace and Name identify it; the store assigns UID, Generation,
// ResourceVersion and CreationTimestamp.
type Object struct {
	Kind              string // e.g. "ClusterBaseModel"
	Namespace         string // "" for cluster-scoped kinds
	Name              string
	UID               string    // random UUIDv4, assigned on create
	Generation        int64     // 1 on create, +1 each time Spec changes
	ResourceVersion   int64     // store-wide counter value of this object's last write
	CreationTimestamp time.Time // UTC, full precision
	Labels            map[string]string
	Annotations       map[string]string
	Spec              json.RawMessage // opaque JSON, stored compacted
	Status            json.RawMessage // opaque JSON, stored compacted; written only through UpdateStatus
}

// clone returns a deep copy, so that the copy handed to a caller or a watcher shares nothing.
func (o Object) clone() Object {
	o.Labels = maps.Clone(o.Labels)
	o.Annotations = maps.Clone(o.Annotations)
	o.Spec = bytes.Clone(o.Spec)
	o.Status = bytes.Clone(o.Status)
	return o
}

type objectKey struct{ kind, namespace, name string }

// Action says what Apply did with an object.
type Action string

// Actions reported by Apply (ActionDeleted is for callers that report deletes alongside applies).
const (
	ActionCreated    Action = "created"
	ActionConfigured Action = "configured"
	ActionUnchanged  Action = "unchanged"
	ActionDeleted    Action = "deleted"
)

// Result is the outcome of applying one object.
type Result struct {
	Action Action
	Object Object
}

// ApplyOptions modify Apply.
type ApplyOptions struct {
	DryRun bool // check and compute everything, write nothing
}

// Apply creates or updates every object in one transaction: all or nothing. Results are in input order.
//
// An absent object is created (UID, Generation 1, CreationTimestamp now, no Status). A present object is
// updated from the input's Labels, Annotations and Spec: a Spec change bumps Generation, any change bumps
// ResourceVersion and is "configured", no change is "unchanged" and writes nothing. Input Status, UID,
// Generation and CreationTimestamp are ignored. A non-zero input ResourceVersion is a precondition: if it is
// not the stored one (or the object no longer exists) Apply returns a *ConflictError and writes nothing.
//
// With DryRun nothing is written and created objects have an empty UID and ResourceVersion 0; updated
// objects keep their current ResourceVersion.
func (s *Store) Apply(ctx context.Context, objs []Object, opts ApplyOptions) ([]Result, error) {
	in := make([]Object, len(objs))
	seen := make(map[objectKey]int, len(objs))
	for i, o := range objs {
		n, err := normalize(o)
		if err != nil {
			return nil, fmt.Errorf("objects[%d]: %w", i, err)
		}
		k := objectKey{o.Kind, o.Namespace, o.Name}
		if j, dup := seen[k]; dup {
			return nil, fmt.Errorf("objects[%d]: %s appears twice in the batch (also objects[%d]): merge them into one",
				i, ref(o.Kind, o.Namespace, o.Name), j)
		}
		seen[k] = i
		in[i] = n
	}

	var results []Result
	err := s.write(ctx, func(t *txn) error {
		results = make([]Result, 0, len(in))
		for _, o := range in {
			cur, err := getObject(ctx, t, o.Kind, o.Namespace, o.Name)
			var nf *NotFoundError
			switch {
			case errors.As(err, &nf):
				if o.ResourceVersion != 0 {
					return &ConflictError{Kind: o.Kind, Namespace: o.Namespace, Name: o.Name, Want: o.ResourceVersion}
				}
				created, err := s.create(ctx, t, o, opts.DryRun)
				if err != nil {
					return err
				}
				results = append(results, Result{ActionCreated, created})
				continue
			case err != nil:
				return err
			}
			if err := checkRV(cur, o.ResourceVersion); err != nil {
				return err
			}
			next := cur.clone()
			next.Labels, next.Annotations, next.Spec = o.Labels, o.Annotations, o.Spec
			specChanged := !bytes.Equal(cur.Spec, o.Spec)
			if !specChanged && maps.Equal(cur.Labels, o.Labels) && maps.Equal(cur.Annotations, o.Annotations) {
				results = append(results, Result{ActionUnchanged, cur})
				continue
			}
			if specChanged {
				next.Generation++
			}
			if !opts.DryRun {
				next.ResourceVersion = t.nextRV()
				if err := updateObject(ctx, t, next); err != nil {
					return err
				}
				t.emit(Modified, next)
			}
			results = append(results, Result{ActionConfigured, next})
		}
		if opts.DryRun {
			return errRollback
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return results, nil
}

// create inserts a new object built from o (or, for a dry run, only builds it).
func (s *Store) create(ctx context.Context, t *txn, o Object, dryRun bool) (Object, error) {
	o.Generation = 1
	o.CreationTimestamp = s.opts.Now().UTC()
	o.Status = nil
	if dryRun {
		o.UID, o.ResourceVersion = "", 0
		return o, nil
	}
	o.UID = newUID()
	o.ResourceVersion = t.nextRV()
	labels, annotations := encodeMap(o.Labels), encodeMap(o.Annotations)
	_, err := t.ExecContext(ctx, `INSERT INTO objects (kind, namespace, name, uid, generation, resource_version,
		created, labels, annotations, spec, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)`,
		o.Kind, o.Namespace, o.Name, o.UID, o.Generation, o.ResourceVersion,
		o.CreationTimestamp.UnixNano(), labels, annotations, nullJSON(o.Spec))
	if err != nil {
		return Object{}, fmt.Errorf("creating %s: %w", ref(o.Kind, o.Namespace, o.Name), err)
	}
	t.emit(Added, o)
	return o, nil
}

// updateObject writes every mutable column of o.
func updateObject(ctx context.Context, t *txn, o Object) error {
	_, err := t.ExecContext(ctx, `UPDATE objects SET generation = ?, resource_version = ?, labels = ?,
		annotations = ?, spec = ?, status = ? WHERE kind = ? AND namespace = ? AND name = ?`,
		o.Generation, o.ResourceVersion, encodeMap(o.Labels), encodeMap(o.Annotations),
		nullJSON(o.Spec), nullJSON(o.Status), o.Kind, o.Namespace, o.Name)
	if err != nil {
		return fmt.Errorf("updating %s: %w", ref(o.Kind, o.Namespace, o.Name), err)
	}
	return nil
}

// Get returns the object, or a *NotFoundError.
func (s *Store) Get(ctx context.Context, kind, namespace, name string) (Object, error) {
	if s.closed.Load() {
		return Object{}, ErrClosed
	}
	return getObject(ctx, s.rdb, kind, namespace, name)
}

// ListOptions filter List.
type ListOptions struct {
	Namespace string   // "" = all namespaces
	Selector  Selector // zero value matches everything
}

// List returns the objects of kind ("" = every kind) matching opts, sorted by namespace, name (then kind),
// with the store's resourceVersion at the moment of the read: a later Watch of changes after that version
// misses nothing.
func (s *Store) List(ctx context.Context, kind string, opts ListOptions) ([]Object, int64, error) {
	if s.closed.Load() {
		return nil, 0, ErrClosed
	}
	// One read transaction, so the objects and the resourceVersion come from the same snapshot.
	tx, err := s.rdb.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, 0, fmt.Errorf("listing %s: %w", kind, err)
	}
	defer tx.Rollback() //nolint:errcheck // read-only
	var rv int64
	if err := tx.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'resource_version'`).Scan(&rv); err != nil {
		return nil, 0, fmt.Errorf("listing %s: reading resourceVersion: %w", kind, err)
	}
	cond, args := where("kind", kind, "namespace", opts.Namespace)
	rows, err := tx.QueryContext(ctx, `SELECT `+objectColumns+` FROM objects`+cond+` ORDER BY namespace, name, kind`, args...)
	if err != nil {
		return nil, 0, fmt.Errorf("listing %s: %w", kind, err)
	}
	defer rows.Close()
	var objs []Object
	for rows.Next() {
		o, err := scanObject(rows)
		if err != nil {
			return nil, 0, fmt.Errorf("listing %s: %w", kind, err)
		}
		if opts.Selector.Matches(o.Labels) {
			objs = append(objs, o)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("listing %s: %w", kind, err)
	}
	return objs, rv, nil
}

// UpdateStatus replaces the object's status. rv 0 writes unconditionally; otherwise rv must be the stored
// ResourceVersion or the result is a *ConflictError. An identical status (after JSON compaction) is a
// no-op that returns the stored object unchanged.
func (s *Store) UpdateStatus(ctx context.Context, kind, namespace, name string, rv int64, status json.RawMessage) (Object, error) {
	st, err := compactJSON(status)
	if err != nil {
		return Object{}, fmt.Errorf("status of %s is not valid JSON: %w", ref(kind, namespace, name), err)
	}
	var out Object
	err = s.write(ctx, func(t *txn) error {
		cur, err := getObject(ctx, t, kind, namespace, name)
		if err != nil {
			return err
		}
		if err := checkRV(cur, rv); err != nil {
			return err
		}
		if bytes.Equal(cur.Status, st) {
			out = cur
			return nil
		}
		out = cur
		out.Status = st
		out.ResourceVersion = t.nextRV()
		if err := updateObject(ctx, t, out); err != nil {
			return err
		}
		t.emit(Modified, out)
		return nil
	})
	if err != nil {
		return Object{}, err
	}
	return out, nil
}

// deleteHook is registered by OnDelete.
type deleteHook struct {
	kind string
	fn   func(ctx context.Context, obj Object) error
}

// OnDelete registers hook to run before an object of kind ("" = every kind) is deleted. Hooks run in
// registration order, outside the store's write lock (so they may call the store), and an error from any
// of them aborts the delete. A hook may run more than once for one delete if the object changes while the
// hooks run, so it must be idempotent.
func (s *Store) OnDelete(kind string, hook func(ctx context.Context, obj Object) error) {
	s.hookMu.Lock()
	defer s.hookMu.Unlock()
	s.hooks = append(s.hooks, deleteHook{kind, hook})
}

// deleteAttempts bounds how often an unconditional Delete re-runs the hooks when the object keeps changing.
const deleteAttempts = 5

// Delete runs the delete hooks and removes the object, returning its last state with the resourceVersion
// of the deletion. rv 0 deletes unconditionally; otherwise rv must be the stored ResourceVersion or the
// result is a *ConflictError. The object's events are kept.
func (s *Store) Delete(ctx context.Context, kind, namespace, name string, rv int64) (Object, error) {
	for attempt := 1; ; attempt++ {
		cur, err := s.Get(ctx, kind, namespace, name)
		if err != nil {
			return Object{}, err
		}
		if err := checkRV(cur, rv); err != nil {
			return Object{}, err
		}
		if err := s.runDeleteHooks(ctx, cur); err != nil {
			return Object{}, &DeleteBlockedError{Kind: kind, Namespace: namespace, Name: name, Err: err}
		}

		// Delete the version the hooks saw, and only that one.
		var deleted Object
		err = s.write(ctx, func(t *txn) error {
			now, err := getObject(ctx, t, kind, namespace, name)
			if err != nil {
				return err
			}
			if err := checkRV(now, cur.ResourceVersion); err != nil {
				return err
			}
			if _, err := t.ExecContext(ctx, `DELETE FROM objects WHERE kind = ? AND namespace = ? AND name = ?`,
				kind, namespace, name); err != nil {
				return fmt.Errorf("deleting %s: %w", ref(kind, namespace, name), err)
			}
			deleted = now
			deleted.ResourceVersion = t.nextRV()
			t.emit(Deleted, deleted)
			return nil
		})
		var conflict *ConflictError
		if errors.As(err, &conflict) {
			if rv == 0 && attempt < deleteAttempts {
				continue // changed while the hooks ran: run them again on the new version
			}
		}
		if err != nil {
			return Object{}, err
		}
		return deleted, nil
	}
}

func (s *Store) runDeleteHooks(ctx context.Context, obj Object) error {
	s.hookMu.Lock()
	hooks := append([]deleteHook(nil), s.hooks...)
	s.hookMu.Unlock()
	for _, h := range hooks {
		if h.kind != "" && h.kind != obj.Kind {
			continue
		}
		if err := h.fn(ctx, obj.clone()); err != nil {
			return err
		}
	}
	return nil
}

// checkRV enforces an optimistic-concurrency precondition; want 0 means none.
func checkRV(cur Object, want int64) error {
	if want != 0 && want != cur.ResourceVersion {
		return &ConflictError{Kind: cur.Kind, Namespace: cur.Namespace, Name: cur.Name, Want: want, Have: cur.ResourceVersion}
	}
	return nil
}

// where builds a WHERE clause matching each column to its value, skipping empty values (which match
// anything). pairs alternate column name and value; column names are constants, never user input.
func where(pairs ...string) (string, []any) {
	var (
		conds []string
		args  []any
	)
	for i := 0; i < len(pairs); i += 2 {
		if pairs[i+1] != "" {
			conds = append(conds, pairs[i]+" = ?")
			args = append(args, pairs[i+1])
		}
	}
	if len(conds) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args
}

const objectColumns = `kind, namespace, name, uid, generation, resource_version, created, labels, annotations, spec, status`

func getObject(ctx context.Context, q queryer, kind, namespace, name string) (Object, error) {
	row := q.QueryRowContext(ctx, `SELECT `+objectColumns+` FROM objects
		WHERE kind = ? AND namespace = ? AND name = ?`, kind, namespace, name)
	o, err := scanObject(row)
	if errors.Is(err, sql.ErrNoRows) {
		return Object{}, &NotFoundError{Kind: kind, Namespace: namespace, Name: name}
	}
	if err != nil {
		return Object{}, fmt.Errorf("reading %s: %w", ref(kind, namespace, name), err)
	}
	return o, nil
}

func scanObject(row interface{ Scan(...any) error }) (Object, error) {
	var (
		o                   Object
		created             int64
		labels, annotations []byte
		spec, status        []byte
	)
	err := row.Scan(&o.Kind, &o.Namespace, &o.Name, &o.UID, &o.Generation, &o.ResourceVersion, &created,
		&labels, &annotations, &spec, &status)
	if err != nil {
		return Object{}, err
	}
	o.Spec, o.Status = spec, status
	o.CreationTimestamp = time.Unix(0, created).UTC()
	if o.Labels, err = decodeMap(labels); err != nil {
		return Object{}, fmt.Errorf("decoding labels: %w", err)
	}
	if o.Annotations, err = decodeMap(annotations); err != nil {
		return Object{}, fmt.Errorf("decoding annotations: %w", err)
	}
	return o, nil
}

// normalize validates an input object and puts it in stored form: compact JSON, no empty maps, copies of
// everything the caller owns.
func normalize(o Object) (Object, error) {
	if o.Kind == "" || o.Name == "" {
		return Object{}, fmt.Errorf("%s: kind and name are required", ref(o.Kind, o.Namespace, o.Name))
	}
	spec, err := compactJSON(o.Spec)
	if err != nil {
		return Object{}, fmt.Errorf("spec of %s is not valid JSON: %w", ref(o.Kind, o.Namespace, o.Name), err)
	}
	n := Object{Kind: o.Kind, Namespace: o.Namespace, Name: o.Name, ResourceVersion: o.ResourceVersion, Spec: spec}
	if len(o.Labels) > 0 {
		n.Labels = maps.Clone(o.Labels)
	}
	if len(o.Annotations) > 0 {
		n.Annotations = maps.Clone(o.Annotations)
	}
	return n, nil
}

// compactJSON returns raw without insignificant whitespace; empty input and "null" become nil.
func compactJSON(raw json.RawMessage) (json.RawMessage, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, nil
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return nil, err
	}
	if buf.String() == "null" {
		return nil, nil
	}
	return buf.Bytes(), nil
}

// nullJSON maps absent JSON to SQL NULL.
func nullJSON(raw json.RawMessage) any {
	if raw == nil {
		return nil
	}
	return string(raw)
}

func encodeMap(m map[string]string) any {
	if len(m) == 0 {
		return nil
	}
	b, _ := json.Marshal(m) // cannot fail for map[string]string
	return string(b)
}

func decodeMap(b []byte) (map[string]string, error) {
	if len(b) == 0 {
		return nil, nil
	}
	var m map[string]string
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	if len(m) == 0 {
		return nil, nil
	}
	return m, nil
}

// newUID returns a random (version 4) UUID.
func newUID() string {
	var b [16]byte
	rand.Read(b[:]) // never returns an error
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
