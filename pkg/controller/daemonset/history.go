package daemonset

import (
	"context"
	"errors"
	"fmt"
	crhistory "github.com/skiff-project/skiff/pkg/controller/history"
	"sort"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/skiff-project/skiff/pkg/controller/deployment"
)

// defaultRevisionHistoryLimit is apps/v1's default spec.revisionHistoryLimit.
const defaultRevisionHistoryLimit = 10

// revisionPatch is the ControllerRevision data for ds, as upstream: a
// strategic merge patch that replaces the pod template.
func revisionPatch(ds *appsv1.DaemonSet) ([]byte, error) {
	return crhistory.TemplatePatch("daemonset", ds.Namespace, ds.Name, &ds.Spec.Template)
}

// templateHash is the controller-revision-hash of ds's current template.
func templateHash(ds *appsv1.DaemonSet) string {
	return deployment.ComputeHash(&ds.Spec.Template, ds.Status.CollisionCount)
}

// errHashCollision means a revision named like ds's current one holds
// another template; the sync bumps status.collisionCount and retries.
var errHashCollision = errors.New("controller revision hash collision")

// ensureRevision makes sure ds's current template is recorded as the
// newest ControllerRevision and returns its hash. An older revision with the
// same template (a rollback) is renumbered instead of duplicated. Old
// revisions beyond revisionHistoryLimit that no pod uses are deleted.
func (c *Controller) ensureRevision(ctx context.Context, ds *appsv1.DaemonSet, pods []*corev1.Pod) (string, error) {
	sel, err := metav1.LabelSelectorAsSelector(ds.Spec.Selector)
	if err != nil {
		return "", err
	}
	all, err := c.historyLister.ControllerRevisions(ds.Namespace).List(sel)
	if err != nil {
		return "", fmt.Errorf("listing revisions of daemonset %s/%s: %w", ds.Namespace, ds.Name, err)
	}
	var history []*appsv1.ControllerRevision
	for _, r := range all {
		if ref := metav1.GetControllerOf(r); ref != nil && ref.UID == ds.UID {
			history = append(history, r)
		}
	}
	sort.Slice(history, func(i, j int) bool { return history[i].Revision < history[j].Revision })
	var maxRev int64
	if len(history) > 0 {
		maxRev = history[len(history)-1].Revision
	}

	patch, err := revisionPatch(ds)
	if err != nil {
		return "", err
	}
	hash := templateHash(ds)
	name := ds.Name + "-" + hash
	var cur *appsv1.ControllerRevision
	for _, r := range history {
		if r.Name == name {
			cur = r
		}
	}
	switch {
	case cur != nil && !crhistory.EqualJSON(cur.Data.Raw, patch):
		return "", fmt.Errorf("revision %s/%s: %w", ds.Namespace, name, errHashCollision)
	case cur != nil && cur.Revision < maxRev:
		u := cur.DeepCopy()
		u.Revision = maxRev + 1
		if _, err := c.client.AppsV1().ControllerRevisions(ds.Namespace).Update(ctx, u, metav1.UpdateOptions{}); err != nil {
			return "", fmt.Errorf("renumbering revision %s/%s: %w", ds.Namespace, name, err)
		}
	case cur == nil:
		lbls := map[string]string{}
		for k, v := range ds.Spec.Template.Labels {
			lbls[k] = v
		}
		lbls[RevisionHashLabel] = hash
		rev := &appsv1.ControllerRevision{
			ObjectMeta: metav1.ObjectMeta{
				Name:            name,
				Namespace:       ds.Namespace,
				Labels:          lbls,
				OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(ds, appsv1.SchemeGroupVersion.WithKind("DaemonSet"))},
			},
			Data:     runtime.RawExtension{Raw: patch},
			Revision: maxRev + 1,
		}
		_, err := c.client.AppsV1().ControllerRevisions(ds.Namespace).Create(ctx, rev, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			// Our cache is behind, or another DaemonSet's revision has the
			// name: only the server copy can tell.
			live, gerr := c.client.AppsV1().ControllerRevisions(ds.Namespace).Get(ctx, name, metav1.GetOptions{})
			if gerr != nil {
				return "", fmt.Errorf("reading revision %s/%s: %w", ds.Namespace, name, gerr)
			}
			if ref := metav1.GetControllerOf(live); ref == nil || ref.UID != ds.UID || !crhistory.EqualJSON(live.Data.Raw, patch) {
				return "", fmt.Errorf("revision %s/%s: %w", ds.Namespace, name, errHashCollision)
			}
		} else if err != nil {
			return "", fmt.Errorf("creating revision %s/%s: %w", ds.Namespace, name, err)
		}
	}

	// Prune: keep revisions in use by pods, the current one, and the newest
	// revisionHistoryLimit others.
	limit := defaultRevisionHistoryLimit
	if ds.Spec.RevisionHistoryLimit != nil {
		limit = int(*ds.Spec.RevisionHistoryLimit)
	}
	inUse := map[string]bool{hash: true}
	for _, p := range pods {
		inUse[p.Labels[RevisionHashLabel]] = true
	}
	var stale []*appsv1.ControllerRevision
	for _, r := range history {
		if !inUse[r.Labels[RevisionHashLabel]] && r.Name != name {
			stale = append(stale, r)
		}
	}
	for _, r := range stale[:max(0, len(stale)-limit)] {
		err := c.client.AppsV1().ControllerRevisions(ds.Namespace).Delete(ctx, r.Name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return "", fmt.Errorf("deleting old revision %s/%s: %w", ds.Namespace, r.Name, err)
		}
	}
	return hash, nil
}

// selectorOrNothing parses sel, never matching everything.
func selectorOrNothing(sel *metav1.LabelSelector) (labels.Selector, error) {
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return nil, err
	}
	if s.Empty() {
		return labels.Nothing(), nil
	}
	return s, nil
}
