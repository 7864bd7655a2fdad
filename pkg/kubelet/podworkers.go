package kubelet

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

	"github.com/skiff-project/skiff/pkg/kubelet/prober"
)

// maxSyncRetries bounds the rate-limited retries of a failing pod sync; the
// periodic resync picks the pod up again afterwards.
const maxSyncRetries = 15

// processNext syncs one pod key from the queue and returns false once the
// queue is shut down. The queue never hands the same key to two workers at
// once, which is what serialises all runtime calls for one pod.
func (k *Kubelet) processNext(ctx context.Context) bool {
	key, shutdown := k.queue.Get()
	if shutdown {
		return false
	}
	defer k.queue.Done(key)
	err := k.syncPod(ctx, key)
	switch {
	case err == nil:
		k.queue.Forget(key)
	case k.queue.NumRequeues(key) < maxSyncRetries:
		klog.FromContext(ctx).V(2).Info("pod sync failed, retrying", "pod", key, "err", err)
		k.queue.AddRateLimited(key)
	default:
		klog.FromContext(ctx).Error(err, "pod sync failed too often, waiting for the next resync", "pod", key)
		k.queue.Forget(key)
	}
	return true
}

// syncPod reconciles the runtime and the API status of the pod with key
// "namespace/name": it runs a live pod (with the ConfigMap and Secret
// references of its environment resolved), leaves a terminal one alone
// until it is deleted, kills a deleted one, finishes the deletion of a
// terminating one, and writes the pod status
// only when it changed, so a converged pod costs no API writes.
//
// A static pod (from Config.StaticPodPath) under key wins over any API pod
// of the same name; an API pod carrying the mirror annotation is never
// run: it is the static pod's mirror, or an orphan to delete.
func (k *Kubelet) syncPod(ctx context.Context, key string) error {
	static, isStatic := k.static.get(key)
	pod, exists := k.pods.get(key)
	if exists && pod.Spec.NodeName != k.cfg.NodeName {
		exists = false
	}
	var mirror *corev1.Pod
	if exists && IsMirrorPod(pod) {
		mirror, pod, exists = pod, nil, false
	}
	if isStatic {
		pod, exists = static, true
	}
	k.mu.Lock()
	knownUID, known := k.known[key]
	if !isStatic {
		delete(k.staticStatus, key) // its manifest went away
	}
	k.mu.Unlock()
	if known && (!exists || pod.UID != knownUID) {
		// The runtime runs a pod this key no longer names: deleted
		// from the API without us (force deletion), re-created under
		// the same name with a new UID, or a static pod whose manifest
		// changed or went away.
		if err := k.killOrphan(ctx, key, knownUID); err != nil {
			return err
		}
	}
	switch {
	case isStatic:
		return k.syncStaticPod(ctx, key, static, mirror)
	case mirror != nil:
		return k.deleteOrphanedMirrorPod(ctx, key, mirror)
	case !exists:
		return nil
	case pod.DeletionTimestamp != nil:
		return k.terminatePod(ctx, key, pod)
	case pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed:
		// A terminal pod never runs again, but its exited containers
		// stay in the runtime until the pod object is deleted, so that
		// their logs and exit states remain readable (upstream keeps
		// them for the same reason). The deletion (terminatePod) or a
		// force deletion (killOrphan) releases them.
		return nil
	}

	k.mu.Lock()
	k.known[key] = pod.UID
	k.mu.Unlock()
	status, next, syncErr := k.runPod(ctx, key, pod)
	if !podStatusEqual(&pod.Status, &status) {
		updated := pod.DeepCopy()
		updated.Status = status
		// The cached pod's resourceVersion makes the write conditional:
		// a conflict means the cache is behind, and the watch event
		// that brings it up to date queues this pod again.
		_, err := k.cfg.Client.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, updated, metav1.UpdateOptions{})
		switch {
		case apierrors.IsNotFound(err) || apierrors.IsConflict(err):
		case err != nil:
			return fmt.Errorf("updating status of pod %s: %w", key, err)
		}
	}
	if syncErr != nil {
		return fmt.Errorf("syncing pod %s: %w", key, syncErr)
	}
	if next > 0 {
		k.queue.AddAfter(key, next)
	}
	return nil
}

// runPod syncs pod (its environment resolved) in the runtime, applies its
// probes, records the runtime's events and returns the status the pod
// should have, when the runtime wants the next sync (0: no particular
// time), and the runtime's error.
func (k *Kubelet) runPod(ctx context.Context, key string, pod *corev1.Pod) (corev1.PodStatus, time.Duration, error) {
	resolved, envErrs := k.env.resolve(ctx, pod)
	rs, syncErr := k.syncRuntimePod(ctx, pod, resolved)
	explainEnvErrors(&rs, envErrs)
	if k.probes != nil && k.applyProbes(ctx, pod, &rs) {
		// Killed for failing a probe: the next sync restarts it.
		k.queue.Add(key)
	}
	for _, e := range rs.Events {
		k.recordPodEvent(pod, e)
	}
	return generatePodStatus(pod, rs, k.hostIPs, k.cfg.Clock.Now()), rs.NextSyncAfter, syncErr
}

// terminatePod kills a pod that has a deletionTimestamp within its grace
// period, then removes the object with grace period 0 and a UID
// precondition (upstream's final delete), so a pod re-created under the
// same name is never deleted by mistake.
func (k *Kubelet) terminatePod(ctx context.Context, key string, pod *corev1.Pod) error {
	grace := DefaultTerminationGracePeriod
	switch {
	case pod.DeletionGracePeriodSeconds != nil:
		grace = time.Duration(*pod.DeletionGracePeriodSeconds) * time.Second
	case pod.Spec.TerminationGracePeriodSeconds != nil:
		grace = time.Duration(*pod.Spec.TerminationGracePeriodSeconds) * time.Second
	}
	k.mu.Lock()
	_, running := k.known[key]
	k.mu.Unlock()
	if running {
		for _, c := range pod.Spec.Containers {
			k.recordPodEvent(pod, Event{Type: corev1.EventTypeNormal, Reason: "Killing",
				Message: "Stopping container " + c.Name, FieldPath: ContainerFieldPath(false, c.Name)})
		}
	}
	if err := k.cfg.Runtime.KillPod(ctx, pod, grace); err != nil {
		return fmt.Errorf("killing pod %s: %w", key, err)
	}
	if err := k.tearDownVolumes(pod.UID); err != nil {
		return fmt.Errorf("killing pod %s: %w", key, err)
	}
	k.forget(key, pod.UID)
	k.env.forget(pod.UID)
	if k.probes != nil {
		k.probes.Remove(pod.UID)
	}
	uid := pod.UID
	err := k.cfg.Client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
		GracePeriodSeconds: new(int64(0)),
		Preconditions:      &metav1.Preconditions{UID: &uid},
	})
	// NotFound: already gone. Conflict: the name now belongs to a new
	// pod, which is not ours to delete.
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return fmt.Errorf("deleting pod %s: %w", key, err)
	}
	return nil
}

// killOrphan kills the runtime pod with uid that was known under key.
func (k *Kubelet) killOrphan(ctx context.Context, key string, uid types.UID) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return fmt.Errorf("splitting pod key %q: %w", key, err)
	}
	orphan := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: uid}}
	if err := k.cfg.Runtime.KillPod(ctx, orphan, 0); err != nil {
		return fmt.Errorf("killing orphaned pod %s (uid %s): %w", key, uid, err)
	}
	if err := k.tearDownVolumes(uid); err != nil {
		return fmt.Errorf("killing orphaned pod %s (uid %s): %w", key, uid, err)
	}
	k.forget(key, uid)
	k.env.forget(uid)
	if k.probes != nil {
		k.probes.Remove(uid)
	}
	return nil
}

// applyProbes starts and stops the probes of the pod's containers for what
// the runtime observed, marks in rs which running containers their probes
// say are not started or not ready, and kills those that failed their
// liveness or startup probe. It reports whether it killed one.
func (k *Kubelet) applyProbes(ctx context.Context, pod *corev1.Pod, rs *PodRuntimeStatus) bool {
	observed := make([]prober.Container, 0, len(rs.Containers))
	for _, c := range rs.Containers {
		pc := prober.Container{Name: c.Name, ID: c.ID, Running: c.State.Running != nil}
		if pc.Running {
			pc.StartedAt = c.State.Running.StartedAt.Time
		}
		observed = append(observed, pc)
	}
	verdicts := k.probes.Sync(ctx, pod, rs.PodIPs, observed)
	killed := false
	for i := range rs.Containers {
		c := &rs.Containers[i]
		v, ok := verdicts[c.Name]
		if !ok {
			continue
		}
		c.Unready, c.NotStarted = !v.Ready, !v.Started
		if v.Kill == "" {
			continue
		}
		k.recordPodEvent(pod, Event{Type: corev1.EventTypeNormal, Reason: "Killing", Message: v.Kill, FieldPath: ContainerFieldPath(false, c.Name)})
		if err := k.cfg.Runtime.(ProbingRuntime).KillContainer(ctx, pod, c.ID, v.KillGrace); err != nil {
			klog.FromContext(ctx).Error(err, "killing unhealthy container", "pod", klog.KObj(pod), "container", c.Name)
			continue
		}
		killed = true
	}
	return killed
}

// syncRuntimePod sets up the volumes of pod (when the kubelet has a volume
// manager), recording a FailedMount event for a failure, then syncs
// resolved, pod with its environment resolved, in the runtime. While a
// volume is missing the runtime is not called, so the containers stay
// waiting with reason ContainerCreating, and the error asks for a retry.
func (k *Kubelet) syncRuntimePod(ctx context.Context, pod, resolved *corev1.Pod) (PodRuntimeStatus, error) {
	if k.cfg.Volumes != nil {
		ready, err := k.cfg.Volumes.SetUp(ctx, pod)
		if err != nil {
			k.recordPodEvent(pod, Event{Type: corev1.EventTypeWarning, Reason: ReasonFailedMount, Message: err.Error()})
		}
		if !ready {
			return PodRuntimeStatus{}, fmt.Errorf("setting up volumes: %w", err)
		}
	}
	return k.cfg.Runtime.SyncPod(ctx, resolved)
}

// ReasonFailedMount is the reason of the event recorded when a pod volume
// cannot be set up, as upstream spells it.
const ReasonFailedMount = "FailedMount"

// tearDownVolumes removes the volumes of the pod with uid, if the kubelet
// has a volume manager.
func (k *Kubelet) tearDownVolumes(uid types.UID) error {
	if k.cfg.Volumes == nil {
		return nil
	}
	if err := k.cfg.Volumes.TearDown(uid); err != nil {
		return fmt.Errorf("tearing down volumes: %w", err)
	}
	return nil
}

// forget drops key from the known pods if it still maps to uid.
func (k *Kubelet) forget(key string, uid types.UID) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.known[key] == uid {
		delete(k.known, key)
	}
	if k.staticStatus[key].uid == uid {
		delete(k.staticStatus, key)
	}
}

// adoptRuntimePods is called once at start, after the pod cache synced: it
// adopts the runtime's pods that are still bound here (or are current
// static pods) and kills those deleted while the kubelet was down. Static
// pods may already be syncing (they start before the API is reachable):
// a runtime pod a worker already tracks is the worker's to handle.
func (k *Kubelet) adoptRuntimePods(ctx context.Context) error {
	running, err := k.cfg.Runtime.ListPods(ctx)
	if err != nil {
		return fmt.Errorf("listing runtime pods: %w", err)
	}
	for _, rp := range running {
		key := rp.Namespace + "/" + rp.Name
		pod, ok := k.pods.get(key)
		current := ok && pod.UID == rp.UID && pod.Spec.NodeName == k.cfg.NodeName && !IsMirrorPod(pod)
		if sp, ok := k.static.get(key); ok {
			current = sp.UID == rp.UID
		}
		k.mu.Lock()
		tracked := k.known[key] == rp.UID
		if current {
			k.known[key] = rp.UID
		}
		k.mu.Unlock()
		if current || tracked {
			continue
		}
		if err := k.killOrphan(ctx, key, rp.UID); err != nil {
			return err
		}
	}
	return nil
}

// RecordPodEvent records e against pod with source "kubelet": for runtime
// events that happen outside a pod sync (a failed preStop hook while a pod
// is killed). Safe for concurrent use.
func (k *Kubelet) RecordPodEvent(pod *corev1.Pod, e Event) { k.recordPodEvent(pod, e) }

// recordPodEvent records e against pod with source "kubelet".
func (k *Kubelet) recordPodEvent(pod *corev1.Pod, e Event) {
	ref := &corev1.ObjectReference{
		Kind:            "Pod",
		APIVersion:      "v1",
		Namespace:       pod.Namespace,
		Name:            pod.Name,
		UID:             pod.UID,
		ResourceVersion: pod.ResourceVersion,
		FieldPath:       e.FieldPath,
	}
	k.recorder.Event(ref, e.Type, e.Reason, e.Message)
}
