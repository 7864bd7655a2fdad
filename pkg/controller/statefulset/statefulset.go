// Package statefulset is the StatefulSet controller: it runs replicas with
// stable identities <set>-<ordinal> (hostname, subdomain, identity labels),
// creates each replica's PersistentVolumeClaims <claim>-<set>-<ordinal>
// before its pod, scales in order (OrderedReady) or all at once (Parallel),
// and rolls template changes out in reverse ordinal order through
// ControllerRevisions named <set>-<hash>.
//
// The decision of what to do next is Decide, a pure function of a
// Snapshot; the sync gathers the snapshot and performs the actions.
package statefulset

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	crhistory "github.com/skiff-project/skiff/pkg/controller/history"
	"sort"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	appsinformers "k8s.io/client-go/informers/apps/v1"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	appslisters "k8s.io/client-go/listers/apps/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/clock"

	"github.com/skiff-project/skiff/pkg/controller"
	"github.com/skiff-project/skiff/pkg/controller/deployment"
)

// EventSource is the component name events are recorded under.
const EventSource = "statefulset-controller"

// Event reasons, as upstream.
const (
	ReasonSuccessfulCreate = "SuccessfulCreate"
	ReasonFailedCreate     = "FailedCreate"
	ReasonSuccessfulDelete = "SuccessfulDelete"
	ReasonFailedDelete     = "FailedDelete"
)

// defaultRevisionHistoryLimit is apps/v1's default spec.revisionHistoryLimit.
const defaultRevisionHistoryLimit = 10

var setKind = appsv1.SchemeGroupVersion.WithKind("StatefulSet")

// Controller reconciles StatefulSets with their pods and claims. Create it
// with New and start it with Run.
type Controller struct {
	client        kubernetes.Interface                    // immutable
	setLister     appslisters.StatefulSetLister           // immutable
	podLister     corelisters.PodLister                   // immutable
	pvcLister     corelisters.PersistentVolumeClaimLister // immutable
	historyLister appslisters.ControllerRevisionLister    // immutable
	recorder      record.EventRecorder                    // immutable; reports as EventSource
	clock         clock.PassiveClock                      // immutable
	loop          *controller.Loop                        // immutable
}

// New returns the StatefulSet controller and registers its handlers on the
// informers; the caller starts the informers, then calls Run.
func New(client kubernetes.Interface, setInformer appsinformers.StatefulSetInformer, podInformer coreinformers.PodInformer, pvcInformer coreinformers.PersistentVolumeClaimInformer, historyInformer appsinformers.ControllerRevisionInformer, recorder record.EventRecorder, clk clock.PassiveClock) (*Controller, error) {
	c := &Controller{
		client:        client,
		setLister:     setInformer.Lister(),
		podLister:     podInformer.Lister(),
		pvcLister:     pvcInformer.Lister(),
		historyLister: historyInformer.Lister(),
		recorder:      recorder,
		clock:         clk,
	}
	c.loop = controller.NewLoop("statefulset", c.sync)
	if err := c.loop.WatchAll(
		controller.On(setInformer.Informer(), c.loop.Handlers()),
		controller.On(podInformer.Informer(), cache.ResourceEventHandlerFuncs{AddFunc: c.enqueueOwner, UpdateFunc: c.updatePod, DeleteFunc: c.enqueueOwner}),
		controller.On(pvcInformer.Informer(), cache.ResourceEventHandlerFuncs{}),
		controller.On(historyInformer.Informer(), cache.ResourceEventHandlerFuncs{}),
	); err != nil {
		return nil, err
	}
	return c, nil
}

// Run waits for the informer caches, then syncs StatefulSets with workers
// goroutines until ctx is done.
func (c *Controller) Run(ctx context.Context, workers int) error {
	return c.loop.RunSynced(ctx, workers)
}

func (c *Controller) enqueueOwner(obj interface{}) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		tomb, ok := obj.(cache.DeletedFinalStateUnknown)
		if !ok {
			return
		}
		if pod, ok = tomb.Obj.(*corev1.Pod); !ok {
			return
		}
	}
	ref := metav1.GetControllerOf(pod)
	if ref == nil || ref.Kind != setKind.Kind || ref.APIVersion != setKind.GroupVersion().String() {
		return
	}
	set, err := c.setLister.StatefulSets(pod.Namespace).Get(ref.Name)
	if err != nil || set.UID != ref.UID {
		return
	}
	key := set.Namespace + "/" + set.Name
	c.loop.EnqueueKey(key)
}

func (c *Controller) updatePod(oldObj, curObj interface{}) {
	old, ok1 := oldObj.(*corev1.Pod)
	cur, ok2 := curObj.(*corev1.Pod)
	if !ok1 || !ok2 || old.ResourceVersion == cur.ResourceVersion {
		return
	}
	c.enqueueOwner(cur)
}

func (c *Controller) sync(ctx context.Context, key string) error {
	namespace, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return controller.Terminal(fmt.Errorf("invalid key %q: %w", key, err))
	}
	set, err := c.setLister.StatefulSets(namespace).Get(name)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading statefulset %s: %w", key, err)
	}
	if set.DeletionTimestamp != nil {
		return nil
	}
	selector, err := metav1.LabelSelectorAsSelector(set.Spec.Selector)
	if err != nil {
		return controller.Terminal(fmt.Errorf("statefulset %s has an invalid selector: %w", key, err))
	}
	if selector.Empty() {
		selector = labels.Nothing()
	}
	all, err := c.podLister.Pods(namespace).List(selector)
	if err != nil {
		return fmt.Errorf("listing pods of statefulset %s: %w", key, err)
	}
	var pods []*corev1.Pod
	for _, p := range all {
		if ref := metav1.GetControllerOf(p); ref != nil && ref.UID == set.UID && ordinal(p) >= 0 {
			pods = append(pods, p)
		}
	}

	revs, err := c.ensureRevisions(ctx, set, pods)
	if err != nil {
		return err
	}
	snap := Snapshot{Set: set, Pods: pods, CurrentRevision: revs.current.Name, UpdateRevision: revs.update.Name, Now: c.clock.Now()}
	actErr := c.perform(ctx, set, revs, Decide(snap))

	status := calculateStatus(snap)
	if !equality.Semantic.DeepEqual(set.Status, status) {
		u := set.DeepCopy()
		u.Status = status
		if _, err := c.client.AppsV1().StatefulSets(namespace).UpdateStatus(ctx, u, metav1.UpdateOptions{}); err != nil {
			return errors.Join(actErr, fmt.Errorf("updating status of statefulset %s: %w", key, err))
		}
	}
	if actErr == nil && set.Spec.MinReadySeconds > 0 && status.AvailableReplicas < status.ReadyReplicas {
		// Nothing announces the moment a ready pod becomes available.
		c.loop.EnqueueAfter(key, time.Duration(set.Spec.MinReadySeconds)*time.Second)
	}
	return actErr
}

// perform executes actions in order, stopping at the first failure: with
// OrderedReady a later action must not run when an earlier one did not.
func (c *Controller) perform(ctx context.Context, set *appsv1.StatefulSet, revs revisions, actions []Action) error {
	for _, a := range actions {
		var err error
		switch a.Type {
		case CreatePod:
			tmpl := revs.update.template
			if a.Revision == revs.current.Name {
				tmpl = revs.current.template
			}
			err = c.createReplica(ctx, set, newPod(set, tmpl, a.Revision, a.Ordinal), a.Ordinal)
		case DeletePod:
			err = c.deleteReplica(ctx, set, a.Pod, a.Scaled)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// createReplica creates ord's missing claims, then its pod.
func (c *Controller) createReplica(ctx context.Context, set *appsv1.StatefulSet, pod *corev1.Pod, ord int) error {
	for _, pvc := range newClaims(set, ord) {
		if _, err := c.pvcLister.PersistentVolumeClaims(set.Namespace).Get(pvc.Name); err == nil {
			continue
		}
		_, err := c.client.CoreV1().PersistentVolumeClaims(set.Namespace).Create(ctx, pvc, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			c.recorder.Eventf(set, corev1.EventTypeWarning, ReasonFailedCreate, "create Claim %s Pod %s in StatefulSet %s failed error: %s", pvc.Name, pod.Name, set.Name, err)
			return fmt.Errorf("creating claim %s/%s: %w", pvc.Namespace, pvc.Name, err)
		}
		if err == nil {
			c.recorder.Eventf(set, corev1.EventTypeNormal, ReasonSuccessfulCreate, "create Claim %s Pod %s in StatefulSet %s success", pvc.Name, pod.Name, set.Name)
		}
	}
	_, err := c.client.CoreV1().Pods(set.Namespace).Create(ctx, pod, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) || apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause) {
		// Our cache is behind, or the namespace is going away.
		return nil
	}
	if err != nil {
		c.recorder.Eventf(set, corev1.EventTypeWarning, ReasonFailedCreate, "create Pod %s in StatefulSet %s failed error: %s", pod.Name, set.Name, err)
		return fmt.Errorf("creating pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	c.recorder.Eventf(set, corev1.EventTypeNormal, ReasonSuccessfulCreate, "create Pod %s in StatefulSet %s successful", pod.Name, set.Name)
	return nil
}

// deleteReplica deletes pod. A replica removed by a scale-down under the
// WhenScaled=Delete policy first hands its claims to the pod as owner, so
// the garbage collector deletes them once the pod is gone.
func (c *Controller) deleteReplica(ctx context.Context, set *appsv1.StatefulSet, pod *corev1.Pod, scaled bool) error {
	if scaled && retainPolicy(set).WhenScaled == appsv1.DeletePersistentVolumeClaimRetentionPolicyType {
		for _, t := range set.Spec.VolumeClaimTemplates {
			pvc, err := c.pvcLister.PersistentVolumeClaims(set.Namespace).Get(claimName(t.Name, set, ordinal(pod)))
			if err != nil {
				continue
			}
			if hasOwner(pvc.OwnerReferences, pod.UID) {
				continue
			}
			u := pvc.DeepCopy()
			u.OwnerReferences = append(u.OwnerReferences, metav1.OwnerReference{APIVersion: "v1", Kind: "Pod", Name: pod.Name, UID: pod.UID})
			if _, err := c.client.CoreV1().PersistentVolumeClaims(set.Namespace).Update(ctx, u, metav1.UpdateOptions{}); err != nil {
				return fmt.Errorf("handing claim %s/%s to pod %s: %w", u.Namespace, u.Name, pod.Name, err)
			}
		}
	}
	err := c.client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &pod.UID}})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		c.recorder.Eventf(set, corev1.EventTypeWarning, ReasonFailedDelete, "delete Pod %s in StatefulSet %s failed error: %s", pod.Name, set.Name, err)
		return fmt.Errorf("deleting pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	c.recorder.Eventf(set, corev1.EventTypeNormal, ReasonSuccessfulDelete, "delete Pod %s in StatefulSet %s successful", pod.Name, set.Name)
	return nil
}

func hasOwner(refs []metav1.OwnerReference, uid types.UID) bool {
	for _, r := range refs {
		if r.UID == uid {
			return true
		}
	}
	return false
}

// revision is a ControllerRevision name with the pod template it records.
type revision struct {
	Name     string
	template *corev1.PodTemplateSpec
}

type revisions struct{ current, update revision }

// revisionPatch is the ControllerRevision data for set, as upstream: a
// strategic merge patch that replaces the pod template.
func revisionPatch(set *appsv1.StatefulSet) ([]byte, error) {
	return crhistory.TemplatePatch("statefulset", set.Namespace, set.Name, &set.Spec.Template)
}

// revisionName is the ControllerRevision name of set's current template,
// <set>-<hash>; it is also the controller-revision-hash label of its pods.
// The collision count always takes part in the hash, 0 when unset, because
// status always carries it once written: a nil and a zero count must name
// the same revision.
func revisionName(set *appsv1.StatefulSet) string {
	n := ptrOr(set.Status.CollisionCount, 0)
	return set.Name + "-" + deployment.ComputeHash(&set.Spec.Template, &n)
}

// templateOf decodes the pod template a revision recorded.
func templateOf(r *appsv1.ControllerRevision) (*corev1.PodTemplateSpec, error) {
	var data struct {
		Spec struct {
			Template corev1.PodTemplateSpec `json:"template"`
		} `json:"spec"`
	}
	if err := json.Unmarshal(r.Data.Raw, &data); err != nil {
		return nil, fmt.Errorf("decoding revision %s/%s: %w", r.Namespace, r.Name, err)
	}
	return &data.Spec.Template, nil
}

// ensureRevisions records set's template as the newest revision (the update
// revision) and resolves the current revision from status. Old revisions
// beyond revisionHistoryLimit that neither a pod nor the status uses are
// deleted.
func (c *Controller) ensureRevisions(ctx context.Context, set *appsv1.StatefulSet, pods []*corev1.Pod) (revisions, error) {
	sel, err := metav1.LabelSelectorAsSelector(set.Spec.Selector)
	if err != nil {
		return revisions{}, err
	}
	all, err := c.historyLister.ControllerRevisions(set.Namespace).List(sel)
	if err != nil {
		return revisions{}, fmt.Errorf("listing revisions of statefulset %s/%s: %w", set.Namespace, set.Name, err)
	}
	var history []*appsv1.ControllerRevision
	for _, r := range all {
		if ref := metav1.GetControllerOf(r); ref != nil && ref.UID == set.UID {
			history = append(history, r)
		}
	}
	sort.Slice(history, func(i, j int) bool { return history[i].Revision < history[j].Revision })
	var maxRev int64
	byName := map[string]*appsv1.ControllerRevision{}
	for _, r := range history {
		byName[r.Name] = r
		maxRev = max(maxRev, r.Revision)
	}

	patch, err := revisionPatch(set)
	if err != nil {
		return revisions{}, err
	}
	updateName := revisionName(set)
	update := revision{Name: updateName, template: &set.Spec.Template}
	revs := c.client.AppsV1().ControllerRevisions(set.Namespace)
	if r, ok := byName[updateName]; ok {
		if !crhistory.EqualJSON(r.Data.Raw, patch) {
			return revisions{}, c.bumpCollisionCount(ctx, set)
		}
		if r.Revision < maxRev {
			// A rollback: the old revision becomes the newest again.
			u := r.DeepCopy()
			u.Revision = maxRev + 1
			if _, err := revs.Update(ctx, u, metav1.UpdateOptions{}); err != nil {
				return revisions{}, fmt.Errorf("renumbering revision %s/%s: %w", set.Namespace, updateName, err)
			}
		}
	} else {
		lbls := map[string]string{}
		for k, v := range set.Spec.Template.Labels {
			lbls[k] = v
		}
		lbls[RevisionHashLabel] = updateName
		r := &appsv1.ControllerRevision{
			ObjectMeta: metav1.ObjectMeta{Name: updateName, Namespace: set.Namespace, Labels: lbls,
				OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(set, setKind)}},
			Data:     runtime.RawExtension{Raw: patch},
			Revision: maxRev + 1,
		}
		if _, err := revs.Create(ctx, r, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return revisions{}, fmt.Errorf("creating revision %s/%s: %w", set.Namespace, updateName, err)
		}
	}

	current := update
	if r, ok := byName[set.Status.CurrentRevision]; ok && r.Name != updateName {
		t, err := templateOf(r)
		if err != nil {
			return revisions{}, err
		}
		current = revision{Name: r.Name, template: t}
	}

	limit := defaultRevisionHistoryLimit
	if set.Spec.RevisionHistoryLimit != nil {
		limit = int(*set.Spec.RevisionHistoryLimit)
	}
	inUse := map[string]bool{updateName: true, current.Name: true}
	for _, p := range pods {
		inUse[p.Labels[RevisionHashLabel]] = true
	}
	var stale []*appsv1.ControllerRevision
	for _, r := range history {
		if !inUse[r.Name] {
			stale = append(stale, r)
		}
	}
	for _, r := range stale[:max(0, len(stale)-limit)] {
		if err := revs.Delete(ctx, r.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return revisions{}, fmt.Errorf("deleting old revision %s/%s: %w", set.Namespace, r.Name, err)
		}
	}
	return revisions{current: current, update: update}, nil
}

// bumpCollisionCount records a revision name collision in status; the
// retry computes a new name.
func (c *Controller) bumpCollisionCount(ctx context.Context, set *appsv1.StatefulSet) error {
	u := set.DeepCopy()
	n := ptrOr(u.Status.CollisionCount, 0) + 1
	u.Status.CollisionCount = &n
	if _, err := c.client.AppsV1().StatefulSets(set.Namespace).UpdateStatus(ctx, u, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("bumping collisionCount of statefulset %s/%s: %w", set.Namespace, set.Name, err)
	}
	return fmt.Errorf("statefulset %s/%s: controller revision name collision, retrying with collisionCount %d", set.Namespace, set.Name, n)
}
