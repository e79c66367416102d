package agent

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"

	v1 "citadel.dev/citadel/api/v1"
	"citadel.dev/citadel/internal/kube"
	"citadel.dev/citadel/internal/resource"
	"citadel.dev/citadel/internal/store"
)

// ManagedBy is the per-node ConfigMaps' models.ome.io/managed-by annotation.
const ManagedBy = "citadel-agent"

func labelsEverything() labels.Selector { return labels.Everything() }

func base64Encode(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// onLocal copies a status the local agent wrote out as this node's entry.
func (a *Agent) onLocal(ctx context.Context, ev store.WatchEvent) {
	so := ev.Object
	if ev.Type == store.Deleted || (so.Kind != v1.KindClusterBaseModel && so.Kind != v1.KindBaseModel) {
		return
	}
	k := v1.Key{Kind: so.Kind, Namespace: so.Namespace, Name: so.Name}
	t := a.tracked[k]
	if t == nil || len(so.Status) == 0 {
		return
	}
	o, err := resource.FromStore(so)
	if err != nil {
		return
	}
	var st *v1.ModelStatus
	switch m := o.(type) {
	case *v1.ClusterBaseModel:
		st = &m.Status
	case *v1.BaseModel:
		st = &m.Status
	}
	t.localUID = so.UID
	t.eventsTill = time.Now().Add(5 * time.Second)
	if e, ok := a.entry(k, t, st); ok {
		e.Config = filledConfig(so)
		a.offer(ctx, k, t, e)
	}
	a.forwardEvents(ctx, k, t)
}

// entry is the node's entry of a model from the local agent's status, with
// the host prefix taken out of paths and messages.
func (a *Agent) entry(k v1.Key, t *tracked, st *v1.ModelStatus) (kube.NodeEntry, bool) {
	// The local agent fills spec fields from the files, which moves the
	// local generation past the last apply: that is still the same spec.
	gen, ok := t.gens[st.ObservedGeneration]
	if st.ObservedGeneration >= t.localGen {
		gen, ok = t.remoteGen, true
	}
	if len(st.Nodes) == 0 || !ok {
		return kube.NodeEntry{}, false // not written yet, or of a spec the API object no longer has
	}
	n := st.Nodes[0]
	n.Node = a.opts.Node
	n.Path, n.Store, n.Message = a.unprefix(n.Path), a.unprefix(n.Store), a.unprefix(n.Message)
	if f := n.LastFailure; f != nil {
		c := *f
		c.Directory = a.unprefix(c.Directory)
		n.LastFailure = &c
	}
	if msg, ok := a.secretMessage(n); ok {
		n.Message = msg
	}
	e := kube.NodeEntry{Name: k.Name, Status: kube.EntryStatus(n.Phase), UID: t.uid, Generation: gen, Citadel: n}
	if n.Phase == v1.ModelDownloading || n.Phase == v1.ModelVerifying {
		p := &kube.EntryProgress{Phase: "Downloading", TotalBytes: st.BytesTotal, CompletedBytes: st.BytesDone,
			TotalFiles: st.FilesTotal, CompletedFiles: st.FilesDone, SpeedBytesPerSec: st.BytesPerSecond}
		switch {
		case n.Phase == v1.ModelVerifying:
			p.Phase = "Finalizing"
		case n.Reason == v1.ReasonResolving:
			p.Phase = "Scanning"
		}
		if st.LastProgressTime != nil {
			p.LastUpdated = st.LastProgressTime.UTC().Format(time.RFC3339)
		}
		e.Progress = p
	}
	return e, true
}

// secretMessage says why a token Secret could not be read, in Kubernetes'
// terms: missing (kubectl create secret) or forbidden to the agent.
func (a *Agent) secretMessage(n v1.NodeModelStatus) (string, bool) {
	f := n.LastFailure
	if n.Reason != v1.ReasonSecretNotFound || f == nil || f.Secret == nil || f.Secret.Found {
		return "", false
	}
	ref := f.Secret.Namespace + "/" + f.Secret.Name
	s, ok := a.secrets[ref]
	switch {
	case !ok:
		return "", false
	case s.forbidden != "":
		return fmt.Sprintf("spec.storage.key names secret %s, which the agent's service account may not read (%s); nothing is downloaded anonymously in its place: grant the agent's service account get on secrets in namespace %s (the chart: agent.secrets.clusterWide=true, or add %s to agent.secrets.namespaces); it is read again every %s",
			ref, s.forbidden, f.Secret.Namespace, f.Secret.Namespace, a.opts.Resync), true
	}
	return fmt.Sprintf("spec.storage.key names secret %s, which does not exist; nothing is downloaded anonymously in its place: kubectl create secret generic %s -n %s --from-literal=%s=<token>; the agent reads it again every %s",
		ref, f.Secret.Name, f.Secret.Namespace, f.Secret.Key, a.opts.Resync), true
}

// offer writes an entry at once when its phase, reason or generation
// moved, and otherwise (progress) at most every ProgressEvery.
func (a *Agent) offer(ctx context.Context, k v1.Key, t *tracked, e kube.NodeEntry) {
	if t.entry != nil && equalEntries(*t.entry, e) {
		t.pending = nil
		return
	}
	progressOnly := t.entry != nil && t.entry.Status == e.Status && t.entry.Generation == e.Generation &&
		t.entry.Citadel.Phase == e.Citadel.Phase && t.entry.Citadel.Reason == e.Citadel.Reason &&
		(e.Citadel.Phase == v1.ModelDownloading || e.Citadel.Phase == v1.ModelVerifying)
	if progressOnly && time.Since(t.written) < a.opts.ProgressEvery {
		t.pending = &e
		return
	}
	a.write(ctx, k, t, e)
}

func equalEntries(x, y kube.NodeEntry) bool {
	bx, _ := json.Marshal(x)
	by, _ := json.Marshal(y)
	return string(bx) == string(by)
}

// write writes the entry and the node label; on an error the entry stays
// pending and is tried again.
func (a *Agent) write(ctx context.Context, k v1.Key, t *tracked, e kube.NodeEntry) {
	t.written = time.Now()
	// The label first: whoever sees the entry Ready sees the label Ready.
	if t.label != e.Status {
		if err := a.patchLabel(ctx, kube.ModelLabel(k.Kind, k.Namespace, k.Name), e.Status); err != nil {
			a.log.Warn("writing this node's model label failed; trying again", "model", k.Name, "err", err)
			t.pending = &e
			return
		}
		t.label = e.Status
	}
	key := kube.ModelEntryKey(k.Kind, k.Namespace, k.Name)
	if err := a.patchEntry(ctx, key, &e); err != nil {
		a.log.Warn("writing this node's entry failed; trying again", "key", key, "err", err)
		t.pending = &e
		return
	}
	t.entry, t.pending = &e, nil
}

// flush writes pending progress entries that are due and forwards the
// local events of models that moved lately.
func (a *Agent) flush(ctx context.Context) {
	now := time.Now()
	for k, t := range a.tracked {
		if t.pending != nil && now.Sub(t.written) >= a.opts.ProgressEvery {
			a.write(ctx, k, t, *t.pending)
		}
		if now.Before(t.eventsTill) {
			a.forwardEvents(ctx, k, t)
		}
	}
}

// forwardEvents records the local agent's new events of a model as
// Events on the API object.
func (a *Agent) forwardEvents(ctx context.Context, k v1.Key, t *tracked) {
	if t.localUID == "" || a.rec == nil {
		return
	}
	evs, err := a.st.Events(ctx, store.EventFilter{Kind: k.Kind, Namespace: k.Namespace, Name: k.Name, UID: t.localUID, Limit: 50})
	if err != nil {
		return
	}
	for _, ev := range evs {
		if ev.ID <= t.lastEvent || ev.ID <= a.firstEvent {
			continue
		}
		t.lastEvent = ev.ID
		msg := a.unprefix(ev.Message)
		if ev.Reason == v1.ReasonSecretNotFound && t.entry != nil && t.entry.Citadel.Reason == v1.ReasonSecretNotFound {
			msg = t.entry.Citadel.Message
		}
		typ := corev1.EventTypeNormal
		if ev.Type == store.EventWarning {
			typ = corev1.EventTypeWarning
		}
		ref := t.ref
		a.rec.Event(&ref, typ, ev.Reason, msg)
	}
}

// readEntries reads this node's ConfigMap, to know which entries are there.
func (a *Agent) readEntries(ctx context.Context) error {
	cm, err := a.cs.CoreV1().ConfigMaps(a.opts.Namespace).Get(ctx, a.opts.Node, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return nil
	case err != nil:
		return fmt.Errorf("reading this node's ConfigMap %s/%s: %w", a.opts.Namespace, a.opts.Node, err)
	}
	for k, v := range cm.Data {
		a.entries[k] = v
	}
	return nil
}

// patchEntry sets one key of this node's ConfigMap (nil removes it) with a
// merge patch, so other keys are never touched; the ConfigMap is created
// when missing.
func (a *Agent) patchEntry(ctx context.Context, key string, e *kube.NodeEntry) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var val any
	if e != nil {
		b, err := json.Marshal(e)
		if err != nil {
			return err
		}
		val = string(b)
	}
	patch, _ := json.Marshal(map[string]any{
		"metadata": map[string]any{"labels": a.cmLabels(), "annotations": a.cmAnnotations()},
		"data":     map[string]any{key: val},
	})
	cms := a.cs.CoreV1().ConfigMaps(a.opts.Namespace)
	_, err := cms.Patch(ctx, a.opts.Node, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: ManagedBy})
	if apierrors.IsNotFound(err) {
		if e == nil {
			delete(a.entries, key)
			return nil
		}
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: a.opts.Node, Namespace: a.opts.Namespace, Labels: a.cmLabels(), Annotations: a.cmAnnotations()},
			Data: map[string]string{key: val.(string)}}
		_, err = cms.Create(ctx, cm, metav1.CreateOptions{FieldManager: ManagedBy})
		if apierrors.IsAlreadyExists(err) {
			_, err = cms.Patch(ctx, a.opts.Node, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: ManagedBy})
		}
	}
	if err != nil {
		return err
	}
	if e == nil {
		delete(a.entries, key)
	} else {
		a.entries[key] = val.(string)
	}
	return nil
}

func (a *Agent) cmLabels() map[string]string {
	return map[string]string{kube.NodeStatusLabel: "true", kube.NodeLabel: a.opts.Node}
}

func (a *Agent) cmAnnotations() map[string]string {
	return map[string]string{kube.NodeNameAnnotation: a.opts.Node, kube.ManagedByAnnotation: ManagedBy}
}

// patchLabel sets (or, with "", removes) a label of this node.
func (a *Agent) patchLabel(ctx context.Context, label, value string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var val any
	if value != "" {
		val = value
	}
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"labels": map[string]any{label: val}}})
	_, err := a.cs.CoreV1().Nodes().Patch(ctx, a.opts.Node, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: ManagedBy})
	if apierrors.IsNotFound(err) && value == "" {
		return nil
	}
	return err
}

// renewLease creates or renews the agent's heartbeat Lease.
func (a *Agent) renewLease(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	leases := a.cs.CoordinationV1().Leases(a.opts.Namespace)
	name := kube.AgentLease(a.opts.Node)
	now := metav1.NewMicroTime(time.Now())
	dur := int32(kube.AgentLeaseDurationSeconds)
	l, err := leases.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		l = &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: a.opts.Namespace, Labels: map[string]string{kube.NodeLabel: a.opts.Node, kube.ManagedByLabel: kube.ManagedBy}},
			Spec:       coordinationv1.LeaseSpec{HolderIdentity: &a.opts.Holder, LeaseDurationSeconds: &dur, AcquireTime: &now, RenewTime: &now},
		}
		_, err = leases.Create(ctx, l, metav1.CreateOptions{FieldManager: ManagedBy})
		return err
	}
	if err != nil {
		return err
	}
	if l.Spec.HolderIdentity == nil || *l.Spec.HolderIdentity != a.opts.Holder {
		l.Spec.HolderIdentity, l.Spec.AcquireTime = &a.opts.Holder, &now
		n := int32(1)
		if l.Spec.LeaseTransitions != nil {
			n = *l.Spec.LeaseTransitions + 1
		}
		l.Spec.LeaseTransitions = &n
	}
	l.Spec.LeaseDurationSeconds, l.Spec.RenewTime = &dur, &now
	_, err = leases.Update(ctx, l, metav1.UpdateOptions{FieldManager: ManagedBy})
	return err
}

func (a *Agent) leaseLoop(ctx context.Context) {
	t := time.NewTicker(a.opts.LeaseRenew)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return // the Lease is left to expire
		case <-t.C:
			if err := a.renewLease(ctx); err != nil && ctx.Err() == nil {
				a.log.Warn("renewing the agent's Lease failed", "lease", kube.AgentLease(a.opts.Node), "err", err)
			}
		}
	}
}

// filledConfig is the spec fields the local agent filled from the model's files (listed in
// its annotation), as a JSON object for the entry's config; nil when it filled none.
func filledConfig(so store.Object) json.RawMessage {
	names := strings.Split(so.Annotations[v1.AnnotationFilledFromFiles], ",")
	var spec map[string]json.RawMessage
	if len(names) == 0 || names[0] == "" || json.Unmarshal(so.Spec, &spec) != nil {
		return nil
	}
	if inner, ok := spec["spec"]; ok { // the store keeps everything but metadata and status
		spec = nil
		if json.Unmarshal(inner, &spec) != nil {
			return nil
		}
	}
	out := map[string]json.RawMessage{}
	for _, n := range names {
		if v, ok := spec[n]; ok {
			out[n] = v
		}
	}
	if len(out) == 0 {
		return nil
	}
	b, err := json.Marshal(out)
	if err != nil {
		return nil
	}
	return b
}
