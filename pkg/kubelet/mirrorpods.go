package kubelet

import (
	"context"
	"fmt"
	"maps"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
)

// staticStatus is the last status the kubelet computed for a static pod:
// its own record, because the pod exists in the API only as a mirror,
// which may be missing (API server unreachable, mirror deleted).
type staticStatus struct {
	uid    types.UID
	status corev1.PodStatus
}

// noteNode records the UID of the registered Node, which mirror pods name
// as their owner. Until it is called, no mirror pod is created.
func (k *Kubelet) noteNode(node *corev1.Node) {
	if node == nil {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.nodeUID, k.nodeKnown = node.UID, true
}

// mirrorsEnabled reports whether mirror pods can be managed: the node is
// registered (its UID is known) and the pod cache is synced, so that a
// mirror missing from it is missing from the API.
func (k *Kubelet) mirrorsEnabled() (types.UID, bool) {
	k.mu.Lock()
	uid, known := k.nodeUID, k.nodeKnown
	k.mu.Unlock()
	return uid, known && k.pods.HasSynced()
}

// syncStaticPod runs the static pod with key, keeps its mirror pod in the
// API (when the API is reachable) and writes its status there. mirror is
// the cached API pod under key carrying the mirror annotation, or nil. The
// runtime is synced first, and the API only afterwards: a control plane
// made of static pods must start (and restart) while its API server is
// down.
func (k *Kubelet) syncStaticPod(ctx context.Context, key string, static, mirror *corev1.Pod) error {
	pod := *static // shallow: only Status is replaced, nothing is modified
	pod.Status = k.staticBaseStatus(key, static, mirror)
	status := pod.Status
	var next time.Duration
	var syncErr error
	if pod.Status.Phase != corev1.PodSucceeded && pod.Status.Phase != corev1.PodFailed {
		k.mu.Lock()
		k.known[key] = static.UID
		k.mu.Unlock()
		status, next, syncErr = k.runPod(ctx, key, &pod)
	}
	// A terminal static pod is not run again (its exited containers stay
	// for their logs until the manifest goes away), but its mirror still
	// shows its final status.
	k.mu.Lock()
	k.staticStatus[key] = staticStatus{uid: static.UID, status: status}
	k.mu.Unlock()

	mirror, mirrorErr := k.syncMirrorPod(ctx, key, static, mirror)
	if mirror != nil && !podStatusEqual(&mirror.Status, &status) {
		updated := mirror.DeepCopy()
		updated.Status = status
		_, err := k.cfg.Client.CoreV1().Pods(mirror.Namespace).UpdateStatus(ctx, updated, metav1.UpdateOptions{})
		switch {
		case apierrors.IsNotFound(err) || apierrors.IsConflict(err):
			// The cache is behind; its watch event queues the pod again.
		case err != nil && mirrorErr == nil:
			mirrorErr = fmt.Errorf("updating status of mirror pod %s: %w", key, err)
		}
	}
	if syncErr != nil {
		return fmt.Errorf("syncing static pod %s: %w", key, syncErr)
	}
	if next > 0 {
		// Even when the API failed: the runtime's cadence (restart
		// back-off, a container due to exit) must not depend on it.
		k.queue.AddAfter(key, next)
	}
	return mirrorErr
}

// staticBaseStatus is the status a sync of static starts from (for its
// transition and start times): the kubelet's own record, else the status
// of its mirror (written by an earlier run of the kubelet), else Pending.
func (k *Kubelet) staticBaseStatus(key string, static, mirror *corev1.Pod) corev1.PodStatus {
	k.mu.Lock()
	s, ok := k.staticStatus[key]
	k.mu.Unlock()
	switch {
	case ok && s.uid == static.UID:
		return s.status
	case mirror != nil && isMirrorOf(mirror, static):
		return *mirror.Status.DeepCopy()
	default:
		return static.Status
	}
}

// isMirrorOf reports whether mirror mirrors this version of static.
func isMirrorOf(mirror, static *corev1.Pod) bool {
	return mirror.Annotations[ConfigMirrorAnnotationKey] == static.Annotations[ConfigHashAnnotationKey]
}

// syncMirrorPod makes the API hold exactly one current mirror of static:
// a mirror of an older version of the manifest, or one being deleted (a
// user's `kubectl delete`), is deleted and created again. It returns the
// mirror to write the status to, or nil while mirrors cannot be managed
// (see mirrorsEnabled). A mirror kept by `skiff server` under the same name
// is left alone.
func (k *Kubelet) syncMirrorPod(ctx context.Context, key string, static, mirror *corev1.Pod) (*corev1.Pod, error) {
	nodeUID, ok := k.mirrorsEnabled()
	if !ok {
		return nil, nil
	}
	if mirror != nil && mirror.Annotations[ConfigSourceAnnotationKey] == ServerSource {
		klog.FromContext(ctx).V(2).Info("a skiff-server mirror pod has the name of a static pod; not mirroring it", "pod", key)
		return nil, nil
	}
	if mirror != nil && (mirror.DeletionTimestamp != nil || !isMirrorOf(mirror, static)) {
		if err := k.deleteMirrorPod(ctx, key, mirror); err != nil {
			return nil, err
		}
		mirror = nil
	}
	if mirror != nil {
		return mirror, nil
	}
	pods := k.cfg.Client.CoreV1().Pods(static.Namespace)
	created, err := pods.Create(ctx, newMirrorPod(static, k.cfg.NodeName, nodeUID), metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		// The cache has not seen our own create of an earlier sync yet,
		// or the name is taken by an ordinary pod.
		cur, getErr := pods.Get(ctx, static.Name, metav1.GetOptions{})
		if getErr == nil && IsMirrorPod(cur) && isMirrorOf(cur, static) && cur.DeletionTimestamp == nil {
			return cur, nil
		}
	}
	if err != nil {
		return nil, fmt.Errorf("creating mirror pod %s: %w", key, err)
	}
	return created, nil
}

// newMirrorPod returns the mirror pod of static to create: the same
// metadata and spec, the mirror annotation, and the Node as controlling
// owner (upstream since 1.20), so that deleting the node deletes it.
func newMirrorPod(static *corev1.Pod, nodeName string, nodeUID types.UID) *corev1.Pod {
	m := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:        static.Name,
			Namespace:   static.Namespace,
			Labels:      maps.Clone(static.Labels),
			Annotations: maps.Clone(static.Annotations),
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: corev1.SchemeGroupVersion.String(),
				Kind:       "Node",
				Name:       nodeName,
				UID:        nodeUID,
				Controller: new(true),
			}},
		},
		Spec: *static.Spec.DeepCopy(),
	}
	m.Annotations[ConfigMirrorAnnotationKey] = static.Annotations[ConfigHashAnnotationKey]
	return m
}

// deleteMirrorPod deletes mirror at once (grace period 0: nothing runs for
// it) and only that instance (UID precondition).
func (k *Kubelet) deleteMirrorPod(ctx context.Context, key string, mirror *corev1.Pod) error {
	uid := mirror.UID
	err := k.cfg.Client.CoreV1().Pods(mirror.Namespace).Delete(ctx, mirror.Name, metav1.DeleteOptions{
		GracePeriodSeconds: new(int64(0)),
		Preconditions:      &metav1.Preconditions{UID: &uid},
	})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return fmt.Errorf("deleting mirror pod %s: %w", key, err)
	}
	return nil
}

// deleteOrphanedMirrorPod deletes a mirror pod bound here whose static pod
// does not exist (its manifest was removed, possibly while the kubelet was
// down), unless `skiff server` keeps it.
func (k *Kubelet) deleteOrphanedMirrorPod(ctx context.Context, key string, mirror *corev1.Pod) error {
	if mirror.Annotations[ConfigSourceAnnotationKey] == ServerSource {
		return nil
	}
	if _, ok := k.mirrorsEnabled(); !ok {
		return nil
	}
	klog.FromContext(ctx).V(2).Info("deleting orphaned mirror pod", "pod", key)
	return k.deleteMirrorPod(ctx, key, mirror)
}
