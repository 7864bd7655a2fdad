package garbagecollector

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// ownerState is what the collector found behind one ownerReference.
type ownerState int

const (
	// ownerSolid: the owner exists (with the referenced UID) and is not
	// waiting for its dependents to go.
	ownerSolid ownerState = iota
	// ownerDangling: no object with the referenced UID exists (verified
	// against the API server), or the reference can never resolve (a
	// cluster-scoped dependent naming a namespaced owner).
	ownerDangling
	// ownerWaiting: the owner is being deleted in the foreground and waits
	// for its dependents.
	ownerWaiting
)

// actionKind is what the collector must do to one dependent.
type actionKind int

const (
	actionNone actionKind = iota
	// actionDelete deletes the dependent with action.policy.
	actionDelete
	// actionRemoveRefs removes the references to action.uids from the
	// dependent, which keeps living thanks to another, solid owner.
	actionRemoveRefs
)

// action is the outcome of decideDependent.
type action struct {
	kind   actionKind
	policy metav1.DeletionPropagation // for actionDelete
	uids   []types.UID                // for actionRemoveRefs, in reference order
}

// decideDependent is the collector's verdict on one object given the state
// of each of its owners (keyed by owner UID). It is a pure function:
//   - an object already being deleted is left alone;
//   - with at least one solid owner the object lives, but references to
//     dangling and waiting owners are removed (a waiting owner must not
//     wait on a dependent that is not going away);
//   - with no solid owner the object is garbage: deleted in the foreground
//     when an owner waits for it and it has dependents of its own (so the
//     owner's wait covers the whole chain), in the background otherwise.
func decideDependent(deleting bool, refs []metav1.OwnerReference, states map[types.UID]ownerState, hasDependents bool) action {
	if deleting || len(refs) == 0 {
		return action{}
	}
	var solid, waiting int
	var stale []types.UID
	for _, r := range refs {
		switch states[r.UID] {
		case ownerSolid:
			solid++
		case ownerWaiting:
			waiting++
			stale = append(stale, r.UID)
		case ownerDangling:
			stale = append(stale, r.UID)
		}
	}
	switch {
	case solid > 0 && len(stale) == 0:
		return action{}
	case solid > 0:
		return action{kind: actionRemoveRefs, uids: stale}
	case waiting > 0 && hasDependents:
		return action{kind: actionDelete, policy: metav1.DeletePropagationForeground}
	default:
		return action{kind: actionDelete, policy: metav1.DeletePropagationBackground}
	}
}

// blocking reports whether ref, found on a dependent, makes a foreground
// deletion of its owner wait for that dependent.
func blocking(ref metav1.OwnerReference) bool {
	return ref.BlockOwnerDeletion != nil && *ref.BlockOwnerDeletion
}
