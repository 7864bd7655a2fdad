package replicaset

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/client-go/tools/cache"

	"github.com/skiff-project/skiff/pkg/controller"
)

// Event reasons, as upstream.
const (
	ReasonSuccessfulCreate = "SuccessfulCreate"
	ReasonFailedCreate     = "FailedCreate"
	ReasonSuccessfulDelete = "SuccessfulDelete"
	ReasonFailedDelete     = "FailedDelete"
)

// sync reconciles the owner named by key: claim pods, create or delete pods
// when no earlier writes are still in flight, then write status if it
// changed.
func (c *Controller) sync(ctx context.Context, key string) error {
	namespace, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return controller.Terminal(fmt.Errorf("invalid key %q: %w", key, err))
	}
	rs, err := c.owners.get(namespace, name)
	if apierrors.IsNotFound(err) {
		c.expectations.forget(key)
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading %s %s: %w", c.owners.gvk().Kind, key, err)
	}
	selector, err := metav1.LabelSelectorAsSelector(rs.Spec.Selector)
	if err != nil {
		return controller.Terminal(fmt.Errorf("%s %s has an invalid selector: %w", c.owners.gvk().Kind, key, err))
	}
	if selector.Empty() {
		// Validation forbids it; never let it adopt a whole namespace.
		selector = labels.Nothing()
	}

	// Read expectations before listing pods: a pod observed after this
	// point is at worst counted twice in a later sync, never missed.
	needsSync := c.expectations.satisfied(key) && rs.DeletionTimestamp == nil

	all, err := c.podLister.Pods(namespace).List(labels.Everything())
	if err != nil {
		return fmt.Errorf("listing pods in %s: %w", namespace, err)
	}
	var active []*corev1.Pod
	for _, p := range all {
		if isPodActive(p) {
			active = append(active, p)
		}
	}
	pods, err := c.claimPods(ctx, rs, selector, active)
	if err != nil {
		return err
	}

	now := c.clock.Now()
	var manageErr error
	if needsSync {
		manageErr = c.manageReplicas(ctx, key, rs, pods, now)
	}
	status := calculateStatus(rs, pods, manageErr, now)
	if !equality.Semantic.DeepEqual(rs.Status, status) {
		updated := rs.DeepCopy()
		updated.Status = status
		if err := c.owners.updateStatus(ctx, updated); err != nil {
			return errors.Join(manageErr, fmt.Errorf("updating status of %s %s: %w", c.owners.gvk().Kind, key, err))
		}
	}
	if manageErr == nil {
		if d, ok := nextAvailability(pods, rs.Spec.MinReadySeconds, now); ok {
			c.loop.EnqueueAfter(key, d)
		}
	}
	return manageErr
}

// claimPods returns the active pods rs owns after adopting matching orphans
// and releasing owned pods that no longer match. An owner being deleted
// neither adopts nor releases: the garbage collector is about to handle its
// pods.
func (c *Controller) claimPods(ctx context.Context, rs *appsv1.ReplicaSet, selector labels.Selector, pods []*corev1.Pod) ([]*corev1.Pod, error) {
	var (
		claimed  []*corev1.Pod
		errs     []error
		adoptErr error
		checked  bool
	)
	for _, pod := range pods {
		matches := selector.Matches(labels.Set(pod.Labels))
		if ref := metav1.GetControllerOf(pod); ref != nil {
			if ref.UID != rs.UID {
				continue
			}
			if matches {
				claimed = append(claimed, pod)
				continue
			}
			if rs.DeletionTimestamp != nil {
				continue
			}
			if err := c.releasePod(ctx, rs, pod); err != nil && !apierrors.IsNotFound(err) {
				errs = append(errs, err)
			}
			continue
		}
		if !matches || rs.DeletionTimestamp != nil || pod.DeletionTimestamp != nil {
			continue
		}
		if !checked {
			// The cache may be stale: re-read the owner from the server
			// once before adopting, so a just-deleted (or recreated) owner
			// never adopts pods.
			adoptErr = c.canAdopt(ctx, rs)
			checked = true
		}
		if adoptErr != nil {
			errs = append(errs, adoptErr)
			break
		}
		if err := c.adoptPod(ctx, rs, pod); err != nil {
			if !apierrors.IsNotFound(err) {
				errs = append(errs, err)
			}
			continue
		}
		claimed = append(claimed, pod)
	}
	return claimed, utilerrors.NewAggregate(errs)
}

func (c *Controller) canAdopt(ctx context.Context, rs *appsv1.ReplicaSet) error {
	fresh, err := c.owners.getLive(ctx, rs.Namespace, rs.Name)
	if err != nil {
		return fmt.Errorf("rechecking %s %s/%s before adoption: %w", c.owners.gvk().Kind, rs.Namespace, rs.Name, err)
	}
	if fresh.UID != rs.UID {
		return fmt.Errorf("%s %s/%s is gone: got uid %s, wanted %s", c.owners.gvk().Kind, rs.Namespace, rs.Name, fresh.UID, rs.UID)
	}
	if fresh.DeletionTimestamp != nil {
		return fmt.Errorf("%s %s/%s is being deleted, not adopting", c.owners.gvk().Kind, rs.Namespace, rs.Name)
	}
	return nil
}

// adoptPod adds rs as pod's controller with a strategic merge patch; the uid
// precondition makes the patch fail rather than touch a recreated pod.
func (c *Controller) adoptPod(ctx context.Context, rs *appsv1.ReplicaSet, pod *corev1.Pod) error {
	gvk := c.owners.gvk()
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{
		"ownerReferences": []metav1.OwnerReference{*metav1.NewControllerRef(rs, gvk)},
		"uid":             pod.UID,
	}})
	if err != nil {
		return fmt.Errorf("encoding adoption patch: %w", err)
	}
	if _, err := c.client.CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("adopting pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	return nil
}

// releasePod removes rs's ownerReference from pod.
func (c *Controller) releasePod(ctx context.Context, rs *appsv1.ReplicaSet, pod *corev1.Pod) error {
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{
		"ownerReferences": []map[string]any{{"$patch": "delete", "uid": rs.UID}},
		"uid":             pod.UID,
	}})
	if err != nil {
		return fmt.Errorf("encoding release patch: %w", err)
	}
	if _, err := c.client.CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("releasing pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	return nil
}

// manageReplicas creates or deletes pods so that len(pods) moves towards
// spec.replicas, recording expectations first so that the informer catching
// up cannot trigger the same writes twice.
func (c *Controller) manageReplicas(ctx context.Context, key string, rs *appsv1.ReplicaSet, pods []*corev1.Pod, now time.Time) error {
	want := int32(1)
	if rs.Spec.Replicas != nil {
		want = *rs.Spec.Replicas
	}
	diff := len(pods) - int(want)
	switch {
	case diff < 0:
		n := min(-diff, c.burst)
		c.expectations.expectCreations(key, n)
		created, err := slowStartBatch(n, 1, func() error { return c.createPod(ctx, rs) })
		// Creations that never happened will never be observed.
		for range n - created {
			c.expectations.creationObserved(key)
		}
		return err
	case diff > 0:
		n := min(diff, c.burst)
		victims := podsToDelete(append([]*corev1.Pod(nil), pods...), pods, n, now)
		keys := make([]string, len(victims))
		for i, p := range victims {
			keys[i] = podKey(p)
		}
		c.expectations.expectDeletions(key, keys)
		errs := make([]error, len(victims))
		var wg sync.WaitGroup
		for i, p := range victims {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := c.deletePodFor(ctx, rs, p); err != nil {
					c.expectations.deletionObserved(key, podKey(p))
					if !apierrors.IsNotFound(err) {
						errs[i] = err
					}
				}
			}()
		}
		wg.Wait()
		return errors.Join(errs...)
	}
	return nil
}

// createPod creates one pod from rs's template, controlled by rs.
func (c *Controller) createPod(ctx context.Context, rs *appsv1.ReplicaSet) error {
	pod := podFromTemplate(rs, c.owners.gvk().GroupVersion().String(), c.owners.gvk().Kind)
	created, err := c.client.CoreV1().Pods(rs.Namespace).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		if apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
			// Every create will fail until the namespace is gone; that is
			// not a failure of this owner.
			return errNamespaceTerminating
		}
		c.recorder.Eventf(rs, corev1.EventTypeWarning, ReasonFailedCreate, "Error creating: %v", err)
		return fmt.Errorf("creating pod for %s/%s: %w", rs.Namespace, rs.Name, err)
	}
	c.recorder.Eventf(rs, corev1.EventTypeNormal, ReasonSuccessfulCreate, "Created pod: %v", created.Name)
	return nil
}

var errNamespaceTerminating = errors.New("namespace is terminating")

func (c *Controller) deletePodFor(ctx context.Context, rs *appsv1.ReplicaSet, pod *corev1.Pod) error {
	err := c.client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{})
	if err != nil {
		if apierrors.IsNotFound(err) {
			return err
		}
		c.recorder.Eventf(rs, corev1.EventTypeWarning, ReasonFailedDelete, "Error deleting: %v", err)
		return fmt.Errorf("deleting pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	c.recorder.Eventf(rs, corev1.EventTypeNormal, ReasonSuccessfulDelete, "Deleted pod: %v", pod.Name)
	return nil
}

// podFromTemplate builds the pod the owner creates: template labels,
// annotations, finalizers and spec; name generated from "<owner>-"; the owner
// as controller with blockOwnerDeletion so foreground deletion waits for it.
func podFromTemplate(rs *appsv1.ReplicaSet, apiVersion, kind string) *corev1.Pod {
	t := rs.Spec.Template.DeepCopy()
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: rs.Name + "-",
			Namespace:    rs.Namespace,
			Labels:       t.Labels,
			Annotations:  t.Annotations,
			Finalizers:   t.Finalizers,
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion:         apiVersion,
				Kind:               kind,
				Name:               rs.Name,
				UID:                rs.UID,
				Controller:         ptrTo(true),
				BlockOwnerDeletion: ptrTo(true),
			}},
		},
		Spec: t.Spec,
	}
}

func ptrTo[T any](v T) *T { return &v }

// slowStartBatch calls fn count times, in parallel batches of initial, then
// twice as many each round, stopping after the first batch with a failure.
// A quota or admission error thus costs one call, not count calls. It
// returns the number of successful calls and the batch's errors.
func slowStartBatch(count, initial int, fn func() error) (int, error) {
	remaining, successes := count, 0
	for batch := min(remaining, initial); batch > 0; batch = min(2*batch, remaining) {
		errs := make([]error, batch)
		var wg sync.WaitGroup
		for i := range batch {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = fn()
			}()
		}
		wg.Wait()
		var failed []error
		for _, err := range errs {
			if err == nil {
				successes++
			} else if !errors.Is(err, errNamespaceTerminating) {
				failed = append(failed, err)
			}
		}
		if len(failed) > 0 {
			return successes, errors.Join(failed...)
		}
		remaining -= batch
	}
	return successes, nil
}

// calculateStatus derives rs's status from the pods it owned at the start of
// the sync (writes of this sync show up in the next one).
func calculateStatus(rs *appsv1.ReplicaSet, pods []*corev1.Pod, manageErr error, now time.Time) appsv1.ReplicaSetStatus {
	st := *rs.Status.DeepCopy()
	templateLabels := labels.SelectorFromSet(rs.Spec.Template.Labels)
	var fully, ready, available int32
	for _, p := range pods {
		if templateLabels.Matches(labels.Set(p.Labels)) {
			fully++
		}
		if isPodReady(p) {
			ready++
			if isPodAvailable(p, rs.Spec.MinReadySeconds, now) {
				available++
			}
		}
	}
	st.Replicas = int32(len(pods))
	st.FullyLabeledReplicas = fully
	st.ReadyReplicas = ready
	st.AvailableReplicas = available
	st.ObservedGeneration = rs.Generation

	idx := -1
	for i, cond := range st.Conditions {
		if cond.Type == appsv1.ReplicaSetReplicaFailure {
			idx = i
		}
	}
	switch {
	case manageErr != nil && idx < 0:
		want := int32(1)
		if rs.Spec.Replicas != nil {
			want = *rs.Spec.Replicas
		}
		reason := ReasonFailedCreate
		if len(pods) > int(want) {
			reason = ReasonFailedDelete
		}
		st.Conditions = append(st.Conditions, appsv1.ReplicaSetCondition{
			Type:               appsv1.ReplicaSetReplicaFailure,
			Status:             corev1.ConditionTrue,
			LastTransitionTime: metav1.NewTime(now),
			Reason:             reason,
			Message:            manageErr.Error(),
		})
	case manageErr == nil && idx >= 0:
		st.Conditions = append(st.Conditions[:idx:idx], st.Conditions[idx+1:]...)
		if len(st.Conditions) == 0 {
			st.Conditions = nil
		}
	}
	return st
}

// nextAvailability returns how long until the first ready-but-not-yet
// available pod becomes available, so the owner is synced right then.
func nextAvailability(pods []*corev1.Pod, minReadySeconds int32, now time.Time) (time.Duration, bool) {
	if minReadySeconds == 0 {
		return 0, false
	}
	var next time.Time
	for _, p := range pods {
		at, ready := availableAt(p, minReadySeconds)
		if !ready || at.IsZero() || at.Before(now) {
			continue
		}
		if next.IsZero() || at.Before(next) {
			next = at
		}
	}
	if next.IsZero() {
		return 0, false
	}
	return next.Sub(now) + availabilitySlack, true
}
