package storage

import (
	"errors"
	"fmt"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
)

// Sentinel errors. Errors returned by this package wrap them together with the
// key or revision involved; match them with errors.Is.
var (
	// ErrNotFound: the key does not exist (API: 404 NotFound).
	ErrNotFound = errors.New("not found")
	// ErrKeyExists: Create found the key already present (API: 409 AlreadyExists).
	ErrKeyExists = errors.New("key exists")
	// ErrConflict: a precondition on resourceVersion or UID failed
	// (API: 409 Conflict). See Preconditions.
	ErrConflict = errors.New("conflict")
	// ErrExpired: the requested resourceVersion is compacted in etcd or older
	// than the watch cache's history (API: 410 Gone / Expired).
	ErrExpired = errors.New("resource version expired")
	// ErrTooLargeResourceVersion: the requested resourceVersion is newer than
	// the store reached within a few seconds (API: 504 Timeout with
	// Retry-After: 1 and cause ResourceVersionTooLarge, as upstream).
	ErrTooLargeResourceVersion = errors.New("too large resource version")
	// ErrInvalid: the request is malformed, such as an unparsable
	// resourceVersion or continue token (API: 400 BadRequest).
	ErrInvalid = errors.New("invalid request")
	// ErrClosed: the Store was closed.
	ErrClosed = errors.New("storage closed")
)

// revisionError is an error whose text is exactly upstream's message (API
// servers put it into the Status they return) while errors.Is still matches
// its sentinel.
type revisionError struct {
	sentinel error
	msg      string
}

func (e *revisionError) Error() string { return e.msg }
func (e *revisionError) Unwrap() error { return e.sentinel }

// tooOldError is upstream's 410 for a watch older than the cache's history.
func tooOldError(requested, oldest int64) error {
	return &revisionError{ErrExpired, fmt.Sprintf("too old resource version: %d (%d)", requested, oldest)}
}

// tooLargeError is upstream's error for a revision the store has not reached.
func tooLargeError(requested, current int64) error {
	return &revisionError{ErrTooLargeResourceVersion,
		fmt.Sprintf("Too large resource version: %d, current: %d", requested, current)}
}

// conflictMessage is upstream's message for an optimistic-concurrency failure,
// which kubectl and client-go users recognise.
const conflictMessage = "the object has been modified; please apply your changes to the latest version and try again"

// Preconditions are checks on the current object that Update's tryUpdate or
// Delete's precondition can run: a nil field is not checked.
type Preconditions struct {
	UID             *types.UID
	ResourceVersion *string
}

// Check returns nil if obj satisfies p, otherwise an error wrapping
// ErrConflict with upstream's wording. key only decorates the message.
func (p Preconditions) Check(key string, obj runtime.Object) error {
	if p.UID == nil && p.ResourceVersion == nil {
		return nil
	}
	acc, err := meta.Accessor(obj)
	if err != nil {
		return fmt.Errorf("precondition on %s: %w", key, err)
	}
	if p.UID != nil && *p.UID != acc.GetUID() {
		return fmt.Errorf("%w: precondition failed for %s: UID in precondition: %v, UID in object meta: %v",
			ErrConflict, key, *p.UID, acc.GetUID())
	}
	if p.ResourceVersion != nil && *p.ResourceVersion != acc.GetResourceVersion() {
		return fmt.Errorf("%w: precondition failed for %s: %s: ResourceVersion in precondition: %v, ResourceVersion in object meta: %v",
			ErrConflict, key, conflictMessage, *p.ResourceVersion, acc.GetResourceVersion())
	}
	return nil
}
