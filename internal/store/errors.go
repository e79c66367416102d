package store

import (
	"errors"
	"fmt"
)

var (
	// ErrWatchOverflow is returned by [Watcher.Err] when the consumer fell too far behind and the store
	// closed the watcher rather than block writers.
	ErrWatchOverflow = errors.New("watch fell behind by more than the watch buffer and was closed: " +
		"start a new watch with SendInitial to resynchronise")

	// ErrClosed is returned by every method after [Store.Close], and by [Watcher.Err] for watchers the
	// close ended.
	ErrClosed = errors.New("store is closed")
)

// NotFoundError reports that no object has the given kind, namespace and name.
type NotFoundError struct {
	Kind, Namespace, Name string
}

func (e *NotFoundError) Error() string {
	return ref(e.Kind, e.Namespace, e.Name) + " not found"
}

// ConflictError reports that a write carried a ResourceVersion precondition (Want) that no longer matches
// the stored object (Have; 0 when the object no longer exists).
type ConflictError struct {
	Kind, Namespace, Name string
	Want, Have            int64
}

func (e *ConflictError) Error() string {
	if e.Have == 0 {
		return fmt.Sprintf("%s: the object has been deleted (resourceVersion %d no longer exists): "+
			"get it again and re-apply your change", ref(e.Kind, e.Namespace, e.Name), e.Want)
	}
	return fmt.Sprintf("%s: the object has been modified (resourceVersion %d is stale, current is %d): "+
		"get it again and re-apply your change", ref(e.Kind, e.Namespace, e.Name), e.Want, e.Have)
}

// ref formats an object reference the way kubectl does: `Kind "name"` or `Kind "namespace/name"`.
func ref(kind, namespace, name string) string {
	if namespace == "" {
		return fmt.Sprintf("%s %q", kind, name)
	}
	return fmt.Sprintf("%s %q", kind, namespace+"/"+name)
}

// DeleteBlockedError is a delete that a delete hook refused; the object is
// still there.
type DeleteBlockedError struct {
	Kind, Namespace, Name string
	Err                   error
}

func (e *DeleteBlockedError) Error() string {
	return fmt.Sprintf("%s was not deleted: %v", ref(e.Kind, e.Namespace, e.Name), e.Err)
}

func (e *DeleteBlockedError) Unwrap() error { return e.Err }
