package deployment

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Annotations and labels shared with kubectl and upstream controllers.
const (
	RevisionAnnotation        = "deployment.kubernetes.io/revision"
	RevisionHistoryAnnotation = "deployment.kubernetes.io/revision-history"
	DesiredReplicasAnnotation = "deployment.kubernetes.io/desired-replicas"
	MaxReplicasAnnotation     = "deployment.kubernetes.io/max-replicas"
	// PodTemplateHashLabel is added to a ReplicaSet's selector, template and
	// pods so ReplicaSets of one Deployment never select each other's pods.
	PodTemplateHashLabel = appsv1.DefaultDeploymentUniqueLabelKey

	lastAppliedAnnotation   = "kubectl.kubernetes.io/last-applied-configuration"
	deprecatedRollbackTo    = "deprecated.deployment.rollback.to"
	maxRevisionHistoryChars = 2000
)

// Condition reasons, as upstream (kubectl rollout status matches on some).
const (
	ReasonNewReplicaSetCreated     = "NewReplicaSetCreated"
	ReasonFoundNewReplicaSet       = "FoundNewReplicaSet"
	ReasonReplicaSetUpdated        = "ReplicaSetUpdated"
	ReasonNewReplicaSetAvailable   = "NewReplicaSetAvailable"
	ReasonProgressDeadlineExceeded = "ProgressDeadlineExceeded"
	ReasonFailedReplicaSetCreate   = "ReplicaSetCreateError"
	ReasonDeploymentPaused         = "DeploymentPaused"
	ReasonDeploymentResumed        = "DeploymentResumed"
	ReasonMinimumReplicasAvailable = "MinimumReplicasAvailable"
	ReasonMinimumReplicasUnavail   = "MinimumReplicasUnavailable"

	// ReasonScalingReplicaSet is the event reason of every replica change.
	ReasonScalingReplicaSet = "ScalingReplicaSet"
)

// Snapshot is everything one sync decides from. Nothing in it is mutated.
type Snapshot struct {
	// Deployment is the object being synced, from the cache.
	Deployment *appsv1.Deployment
	// ReplicaSets are the ReplicaSets the Deployment controls.
	ReplicaSets []*appsv1.ReplicaSet
	// Pods maps a ReplicaSet UID to its pods; only the Recreate strategy
	// reads it (it waits until every old pod is gone).
	Pods map[types.UID][]*corev1.Pod
	// Now is the time decisions are made at (conditions, deadlines).
	Now time.Time
}

// Verb is the kind of write an Action makes.
type Verb string

// The writes a plan can ask for.
const (
	Create Verb = "create"
	Update Verb = "update"
	Delete Verb = "delete"
)

// Event is an event to record on the Deployment once its write succeeded.
type Event struct {
	Type, Reason, Message string
}

// Action is one ReplicaSet write.
type Action struct {
	Verb Verb
	// ReplicaSet is the full desired object (Create, Update) or the object
	// to delete.
	ReplicaSet *appsv1.ReplicaSet
	// Events are recorded after the write succeeds.
	Events []Event
}

// Plan is what one sync must do, in order: the Actions, then writing
// Deployment (status and revision annotation) if it is non-nil.
type Plan struct {
	Actions []Action
	// Deployment is the Deployment with the new status and annotations, or
	// nil when neither changed.
	Deployment *appsv1.Deployment
	// RequeueAfter, when positive, asks for another sync after that long
	// (to notice a progress deadline passing); zero means none.
	RequeueAfter time.Duration
}

// planner accumulates a Plan; it owns deep copies of the snapshot's objects
// and edits them as the plan progresses, exactly like upstream's sync edits
// the objects it has just written.
type planner struct {
	d    *appsv1.Deployment
	orig *appsv1.Deployment
	now  time.Time
	pods map[types.UID][]*corev1.Pod
	plan Plan
	// updated maps a ReplicaSet name to its index in plan.Actions so that a
	// ReplicaSet changed twice in one sync is written once.
	updated map[string]int
}

// Decide computes the writes that move the snapshot one step towards the
// Deployment's desired state. It is a pure function of s.
func Decide(s Snapshot) Plan {
	p := &planner{
		d:       s.Deployment.DeepCopy(),
		orig:    s.Deployment,
		now:     s.Now,
		pods:    s.Pods,
		updated: map[string]int{},
	}
	rss := make([]*appsv1.ReplicaSet, 0, len(s.ReplicaSets))
	for _, rs := range s.ReplicaSets {
		rss = append(rss, rs.DeepCopy())
	}
	p.decide(rss)
	if !equality.Semantic.DeepEqual(p.d.Status, p.orig.Status) || !equality.Semantic.DeepEqual(p.d.Annotations, p.orig.Annotations) {
		p.plan.Deployment = p.d
	}
	return p.plan
}

func (p *planner) decide(rss []*appsv1.ReplicaSet) {
	d := p.d
	if d.DeletionTimestamp != nil {
		newRS, old := p.newAndOld(rss, false)
		p.syncStatus(newRS, old)
		return
	}
	p.pausedConditions()
	newRS, old := p.newAndOld(rss, false)
	if d.Spec.Paused || p.isScalingEvent(newRS, old) {
		p.scale(newRS, old)
		if d.Spec.Paused {
			p.cleanup(old)
		}
		p.syncStatus(newRS, old)
		return
	}
	if d.Spec.Strategy.Type == appsv1.RecreateDeploymentStrategyType {
		p.recreate(rss, newRS, old)
		return
	}
	p.rolling(rss)
}

func replicas(d *appsv1.Deployment) int32 {
	if d.Spec.Replicas == nil {
		return 1
	}
	return *d.Spec.Replicas
}

func rsReplicas(rs *appsv1.ReplicaSet) int32 {
	if rs == nil || rs.Spec.Replicas == nil {
		return 0
	}
	return *rs.Spec.Replicas
}

// ---- ReplicaSet bookkeeping -------------------------------------------------

// newAndOld finds the ReplicaSet whose template equals the Deployment's
// (ignoring the hash label), syncs its revision annotations, and, when create
// is set and there is none, plans its creation.
func (p *planner) newAndOld(rss []*appsv1.ReplicaSet, create bool) (*appsv1.ReplicaSet, []*appsv1.ReplicaSet) {
	d := p.d
	sorted := append([]*appsv1.ReplicaSet(nil), rss...)
	sort.SliceStable(sorted, func(i, j int) bool { return olderRS(sorted[i], sorted[j]) })
	var existing *appsv1.ReplicaSet
	var old []*appsv1.ReplicaSet
	for _, rs := range sorted {
		if existing == nil && equalIgnoreHash(&rs.Spec.Template, &d.Spec.Template) {
			existing = rs
			continue
		}
		old = append(old, rs)
	}
	newRevision := strconv.FormatInt(maxRevision(old)+1, 10)

	if existing != nil {
		changed := setNewRSAnnotations(d, existing, newRevision, true)
		if existing.Spec.MinReadySeconds != d.Spec.MinReadySeconds {
			existing.Spec.MinReadySeconds = d.Spec.MinReadySeconds
			changed = true
		}
		if changed {
			p.write(existing)
		}
		setDeploymentRevision(d, existing.Annotations[RevisionAnnotation])
		if hasProgressDeadline(d) && getCondition(d.Status, appsv1.DeploymentProgressing) == nil {
			p.setCondition(appsv1.DeploymentProgressing, corev1.ConditionTrue, ReasonFoundNewReplicaSet,
				fmt.Sprintf("Found new replica set %q", existing.Name))
		}
		return existing, old
	}
	if !create {
		return nil, old
	}

	hash := ComputeHash(&d.Spec.Template, d.Status.CollisionCount)
	template := *d.Spec.Template.DeepCopy()
	template.Labels = withLabel(d.Spec.Template.Labels, PodTemplateHashLabel, hash)
	selector := d.Spec.Selector.DeepCopy()
	if selector == nil {
		selector = &metav1.LabelSelector{}
	}
	selector.MatchLabels = withLabel(selector.MatchLabels, PodTemplateHashLabel, hash)
	newRS := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{
			Name:            d.Name + "-" + hash,
			Namespace:       d.Namespace,
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(d, appsv1.SchemeGroupVersion.WithKind("Deployment"))},
			Labels:          template.Labels,
		},
		Spec: appsv1.ReplicaSetSpec{
			Replicas:        new(int32),
			MinReadySeconds: d.Spec.MinReadySeconds,
			Selector:        selector,
			Template:        template,
		},
	}
	n := p.newRSReplicas(append(append([]*appsv1.ReplicaSet(nil), old...), newRS), newRS)
	*newRS.Spec.Replicas = n
	setNewRSAnnotations(d, newRS, newRevision, false)
	action := Action{Verb: Create, ReplicaSet: newRS}
	if n > 0 {
		action.Events = []Event{{corev1.EventTypeNormal, ReasonScalingReplicaSet,
			fmt.Sprintf("Scaled up replica set %s from 0 to %d", newRS.Name, n)}}
	}
	p.plan.Actions = append(p.plan.Actions, action)
	setDeploymentRevision(d, newRevision)
	if hasProgressDeadline(d) {
		p.setCondition(appsv1.DeploymentProgressing, corev1.ConditionTrue, ReasonNewReplicaSetCreated,
			fmt.Sprintf("Created new replica set %q", newRS.Name))
	}
	return newRS, old
}

// write plans an update of rs (already edited in place), merging with an
// earlier update of the same ReplicaSet in this plan.
func (p *planner) write(rs *appsv1.ReplicaSet, events ...Event) {
	if i, ok := p.updated[rs.Name]; ok {
		p.plan.Actions[i].ReplicaSet = rs
		p.plan.Actions[i].Events = append(p.plan.Actions[i].Events, events...)
		return
	}
	for _, a := range p.plan.Actions {
		if a.Verb == Create && a.ReplicaSet == rs {
			// Not yet created: the create carries the latest state.
			return
		}
	}
	p.updated[rs.Name] = len(p.plan.Actions)
	p.plan.Actions = append(p.plan.Actions, Action{Verb: Update, ReplicaSet: rs, Events: events})
}

// scaleRS sets rs's replicas (and the replica annotations) and plans the
// write and the ScalingReplicaSet event; it reports whether the size changed.
func (p *planner) scaleRS(rs *appsv1.ReplicaSet, to int32) bool {
	from := rsReplicas(rs)
	sizeChanged := from != to
	annChanged := setReplicasAnnotations(rs, replicas(p.d), replicas(p.d)+maxSurge(p.d))
	if !sizeChanged && !annChanged {
		return false
	}
	var events []Event
	if sizeChanged {
		dir := "up"
		if to < from {
			dir = "down"
		}
		events = append(events, Event{corev1.EventTypeNormal, ReasonScalingReplicaSet,
			fmt.Sprintf("Scaled %s replica set %s from %d to %d", dir, rs.Name, from, to)})
	}
	rs.Spec.Replicas = &to
	p.write(rs, events...)
	return sizeChanged
}

// ---- strategies -------------------------------------------------------------

func (p *planner) rolling(rss []*appsv1.ReplicaSet) {
	newRS, old := p.newAndOld(rss, true)
	all := append(append([]*appsv1.ReplicaSet(nil), old...), newRS)
	if p.reconcileNewRS(all, newRS) {
		p.syncRolloutStatus(newRS, old)
		return
	}
	if p.reconcileOldRSs(all, old, newRS) {
		p.syncRolloutStatus(newRS, old)
		return
	}
	if deploymentComplete(p.d, p.calculateStatus(newRS, old)) {
		p.cleanup(old)
	}
	p.syncRolloutStatus(newRS, old)
}

func (p *planner) recreate(rss []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet, old []*appsv1.ReplicaSet) {
	scaledDown := false
	for _, rs := range old {
		if rsReplicas(rs) != 0 && p.scaleRS(rs, 0) {
			scaledDown = true
		}
	}
	if scaledDown || p.oldPodsRunning(newRS, old) {
		p.syncRolloutStatus(newRS, old)
		return
	}
	if newRS == nil {
		newRS, old = p.newAndOld(rss, true)
	}
	p.scaleRS(newRS, replicas(p.d))
	if deploymentComplete(p.d, p.calculateStatus(newRS, old)) {
		p.cleanup(old)
	}
	p.syncRolloutStatus(newRS, old)
}

// oldPodsRunning reports whether any pod of an old ReplicaSet may still run:
// Recreate must not start new pods before then.
func (p *planner) oldPodsRunning(newRS *appsv1.ReplicaSet, old []*appsv1.ReplicaSet) bool {
	var total int32
	for _, rs := range old {
		total += rs.Status.Replicas
	}
	if total > 0 {
		return true
	}
	for _, rs := range old {
		if newRS != nil && rs.UID == newRS.UID {
			continue
		}
		for _, pod := range p.pods[rs.UID] {
			switch pod.Status.Phase {
			case corev1.PodFailed, corev1.PodSucceeded:
			default:
				// Pending, Running and Unknown pods may hold resources
				// or even run: keep waiting.
				return true
			}
		}
	}
	return false
}

// newRSReplicas is how many replicas the new ReplicaSet may have now.
func (p *planner) newRSReplicas(all []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet) int32 {
	d := p.d
	if d.Spec.Strategy.Type == appsv1.RecreateDeploymentStrategyType {
		return replicas(d)
	}
	current := sumSpec(all)
	maxTotal := replicas(d) + maxSurge(d)
	if current >= maxTotal {
		return rsReplicas(newRS)
	}
	up := min(maxTotal-current, max(replicas(d)-rsReplicas(newRS), 0))
	return rsReplicas(newRS) + up
}

func (p *planner) reconcileNewRS(all []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet) bool {
	want := replicas(p.d)
	switch have := rsReplicas(newRS); {
	case have == want:
		return false
	case have > want:
		return p.scaleRS(newRS, want)
	}
	return p.scaleRS(newRS, p.newRSReplicas(all, newRS))
}

func (p *planner) reconcileOldRSs(all, old []*appsv1.ReplicaSet, newRS *appsv1.ReplicaSet) bool {
	if sumSpec(old) == 0 {
		return false
	}
	minAvailable := replicas(p.d) - maxUnavailable(p.d)
	newUnavailable := rsReplicas(newRS) - newRS.Status.AvailableReplicas
	maxScaledDown := sumSpec(all) - minAvailable - newUnavailable
	if maxScaledDown <= 0 {
		return false
	}
	// Unhealthy old replicas go first: removing them costs no availability.
	sorted := append([]*appsv1.ReplicaSet(nil), old...)
	sort.SliceStable(sorted, func(i, j int) bool { return olderRS(sorted[i], sorted[j]) })
	var cleaned int32
	for _, rs := range sorted {
		if cleaned >= maxScaledDown {
			break
		}
		n := rsReplicas(rs)
		if n == 0 || n == rs.Status.AvailableReplicas {
			continue
		}
		down := min(maxScaledDown-cleaned, n-rs.Status.AvailableReplicas)
		if down <= 0 {
			continue
		}
		p.scaleRS(rs, n-down)
		cleaned += down
	}

	// Then healthy ones, as far as availability allows.
	var available int32
	for _, rs := range all {
		available += rs.Status.AvailableReplicas
	}
	var scaled int32
	if budget := available - minAvailable; budget > 0 {
		for _, rs := range sorted {
			if scaled >= budget {
				break
			}
			n := rsReplicas(rs)
			if n == 0 {
				continue
			}
			down := min(n, budget-scaled)
			p.scaleRS(rs, n-down)
			scaled += down
		}
	}
	return cleaned+scaled > 0
}

// isScalingEvent reports whether spec.replicas changed since the active
// ReplicaSets were last annotated: then replicas are redistributed instead
// of rolling.
func (p *planner) isScalingEvent(newRS *appsv1.ReplicaSet, old []*appsv1.ReplicaSet) bool {
	for _, rs := range active(newRS, old) {
		if v, ok := rs.Annotations[DesiredReplicasAnnotation]; ok {
			if n, err := strconv.ParseInt(v, 10, 32); err == nil && int32(n) != replicas(p.d) {
				return true
			}
		}
	}
	return false
}

// scale distributes spec.replicas over the ReplicaSets: all to the only
// active one, all to the new one when it is saturated, else proportionally
// to their sizes (rolling update only), leftovers to the largest.
func (p *planner) scale(newRS *appsv1.ReplicaSet, old []*appsv1.ReplicaSet) {
	d := p.d
	act := active(newRS, old)
	if len(act) <= 1 {
		target := newRS
		if len(act) == 1 {
			target = act[0]
		} else if target == nil && len(old) > 0 {
			target = newestRS(old)
		}
		if target != nil && rsReplicas(target) != replicas(d) {
			p.scaleRS(target, replicas(d))
		}
		return
	}
	if saturated(d, newRS) {
		for _, rs := range old {
			if rsReplicas(rs) != 0 {
				p.scaleRS(rs, 0)
			}
		}
		return
	}
	if d.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType && d.Spec.Strategy.Type != "" {
		return
	}
	allowed := int32(0)
	if replicas(d) > 0 {
		allowed = replicas(d) + maxSurge(d)
	}
	toAdd := allowed - sumSpec(act)
	if toAdd > 0 {
		sort.SliceStable(act, func(i, j int) bool { return biggerNewer(act[i], act[j]) })
	} else {
		sort.SliceStable(act, func(i, j int) bool { return biggerOlder(act[i], act[j]) })
	}
	sizes := make([]int32, len(act))
	var added int32
	for i, rs := range act {
		sizes[i] = rsReplicas(rs)
		if toAdd != 0 {
			prop := p.proportion(rs, toAdd, added)
			sizes[i] += prop
			added += prop
		}
	}
	if toAdd != 0 && toAdd != added {
		sizes[0] = max(sizes[0]+toAdd-added, 0)
	}
	for i, rs := range act {
		p.scaleRS(rs, sizes[i])
	}
}

func (p *planner) proportion(rs *appsv1.ReplicaSet, toAdd, added int32) int32 {
	if rsReplicas(rs) == 0 || toAdd == 0 || toAdd == added {
		return 0
	}
	var fraction int32
	if replicas(p.d) == 0 {
		fraction = -rsReplicas(rs)
	} else {
		total := replicas(p.d) + maxSurge(p.d)
		annotated := p.d.Status.Replicas
		if v, ok := rs.Annotations[MaxReplicasAnnotation]; ok {
			if n, err := strconv.ParseInt(v, 10, 32); err == nil {
				annotated = int32(n)
			}
		}
		if annotated == 0 {
			return 0
		}
		fraction = int32(math.Round(float64(rsReplicas(rs)*total)/float64(annotated))) - rsReplicas(rs)
	}
	allowed := toAdd - added
	if toAdd > 0 {
		return min(fraction, allowed)
	}
	return max(fraction, allowed)
}

// cleanup deletes the oldest scaled-down old ReplicaSets beyond
// revisionHistoryLimit. A ReplicaSet still shrinking (pods or an unobserved
// spec) is kept: deleting it would orphan its pods' scale-down.
func (p *planner) cleanup(old []*appsv1.ReplicaSet) {
	if p.d.Spec.RevisionHistoryLimit == nil {
		return
	}
	var alive []*appsv1.ReplicaSet
	for _, rs := range old {
		if rs.DeletionTimestamp == nil {
			alive = append(alive, rs)
		}
	}
	diff := len(alive) - int(*p.d.Spec.RevisionHistoryLimit)
	if diff <= 0 {
		return
	}
	sort.SliceStable(alive, func(i, j int) bool {
		ri, rj := revision(alive[i]), revision(alive[j])
		if ri != rj {
			return ri < rj
		}
		return olderRS(alive[i], alive[j])
	})
	for _, rs := range alive[:diff] {
		if rs.Status.Replicas != 0 || rsReplicas(rs) != 0 || rs.Generation > rs.Status.ObservedGeneration {
			continue
		}
		p.plan.Actions = append(p.plan.Actions, Action{Verb: Delete, ReplicaSet: rs})
	}
}

// ---- status -----------------------------------------------------------------

func (p *planner) pausedConditions() {
	d := p.d
	if !hasProgressDeadline(d) {
		return
	}
	cond := getCondition(d.Status, appsv1.DeploymentProgressing)
	if cond != nil && cond.Reason == ReasonProgressDeadlineExceeded {
		// A reported lack of progress is not overwritten by pausing.
		return
	}
	pausedCond := cond != nil && cond.Reason == ReasonDeploymentPaused
	switch {
	case d.Spec.Paused && !pausedCond:
		p.setCondition(appsv1.DeploymentProgressing, corev1.ConditionUnknown, ReasonDeploymentPaused, "Deployment is paused")
	case !d.Spec.Paused && pausedCond:
		p.setCondition(appsv1.DeploymentProgressing, corev1.ConditionUnknown, ReasonDeploymentResumed, "Deployment is resumed")
	}
}

func (p *planner) calculateStatus(newRS *appsv1.ReplicaSet, old []*appsv1.ReplicaSet) appsv1.DeploymentStatus {
	d := p.d
	all := append(append([]*appsv1.ReplicaSet(nil), old...), newRS)
	var st appsv1.DeploymentStatus
	for _, rs := range all {
		if rs == nil {
			continue
		}
		st.Replicas += rs.Status.Replicas
		st.ReadyReplicas += rs.Status.ReadyReplicas
		st.AvailableReplicas += rs.Status.AvailableReplicas
	}
	if newRS != nil {
		st.UpdatedReplicas = newRS.Status.Replicas
	}
	st.UnavailableReplicas = max(sumSpec(all)-st.AvailableReplicas, 0)
	st.ObservedGeneration = d.Generation
	st.CollisionCount = d.Status.CollisionCount
	st.Conditions = append([]appsv1.DeploymentCondition(nil), d.Status.Conditions...)
	if st.AvailableReplicas >= replicas(d)-maxUnavailable(d) {
		setCondition(&st, newCondition(p.now, appsv1.DeploymentAvailable, corev1.ConditionTrue, ReasonMinimumReplicasAvailable, "Deployment has minimum availability."))
	} else {
		setCondition(&st, newCondition(p.now, appsv1.DeploymentAvailable, corev1.ConditionFalse, ReasonMinimumReplicasUnavail, "Deployment does not have minimum availability."))
	}
	return st
}

// syncStatus is the status update of the scaling and paused paths: no
// Progressing bookkeeping.
func (p *planner) syncStatus(newRS *appsv1.ReplicaSet, old []*appsv1.ReplicaSet) {
	p.d.Status = p.calculateStatus(newRS, old)
}

// syncRolloutStatus also maintains the Progressing condition and the
// progress deadline.
func (p *planner) syncRolloutStatus(newRS *appsv1.ReplicaSet, old []*appsv1.ReplicaSet) {
	d := p.d
	st := p.calculateStatus(newRS, old)
	if !hasProgressDeadline(d) {
		removeCondition(&st, appsv1.DeploymentProgressing)
	}
	cur := getCondition(d.Status, appsv1.DeploymentProgressing)
	complete := st.Replicas == st.UpdatedReplicas && cur != nil && cur.Reason == ReasonNewReplicaSetAvailable
	if hasProgressDeadline(d) && !complete {
		switch {
		case deploymentComplete(d, st):
			msg := fmt.Sprintf("Deployment %q has successfully progressed.", d.Name)
			if newRS != nil {
				msg = fmt.Sprintf("ReplicaSet %q has successfully progressed.", newRS.Name)
			}
			setCondition(&st, newCondition(p.now, appsv1.DeploymentProgressing, corev1.ConditionTrue, ReasonNewReplicaSetAvailable, msg))
		case deploymentProgressing(d, st):
			msg := fmt.Sprintf("Deployment %q is progressing.", d.Name)
			if newRS != nil {
				msg = fmt.Sprintf("ReplicaSet %q is progressing.", newRS.Name)
			}
			c := newCondition(p.now, appsv1.DeploymentProgressing, corev1.ConditionTrue, ReasonReplicaSetUpdated, msg)
			// Progress refreshes lastUpdateTime even with an unchanged
			// reason: the deadline counts from the last progress.
			if cur != nil {
				if cur.Status == corev1.ConditionTrue {
					c.LastTransitionTime = cur.LastTransitionTime
				}
				removeCondition(&st, appsv1.DeploymentProgressing)
			}
			setCondition(&st, c)
		case p.timedOut(st):
			msg := fmt.Sprintf("Deployment %q has timed out progressing.", d.Name)
			if newRS != nil {
				msg = fmt.Sprintf("ReplicaSet %q has timed out progressing.", newRS.Name)
			}
			setCondition(&st, newCondition(p.now, appsv1.DeploymentProgressing, corev1.ConditionFalse, ReasonProgressDeadlineExceeded, msg))
		}
	}
	if c := replicaFailure(newRS, old); c != nil {
		setCondition(&st, *c)
	} else {
		removeCondition(&st, appsv1.DeploymentReplicaFailure)
	}
	d.Status = st
	p.requeueStuck(st)
}

func (p *planner) timedOut(st appsv1.DeploymentStatus) bool {
	c := getCondition(st, appsv1.DeploymentProgressing)
	if c == nil || c.Reason == ReasonNewReplicaSetAvailable {
		return false
	}
	if c.Reason == ReasonProgressDeadlineExceeded {
		return true
	}
	deadline := time.Duration(*p.d.Spec.ProgressDeadlineSeconds) * time.Second
	return c.LastUpdateTime.Add(deadline).Before(p.now)
}

// requeueStuck asks for a sync right after the progress deadline would
// pass, since no watch event marks that moment.
func (p *planner) requeueStuck(st appsv1.DeploymentStatus) {
	d := p.d
	c := getCondition(st, appsv1.DeploymentProgressing)
	if !hasProgressDeadline(d) || c == nil || c.Reason == ReasonNewReplicaSetAvailable || c.Reason == ReasonProgressDeadlineExceeded {
		return
	}
	if deploymentComplete(d, st) {
		return
	}
	after := c.LastUpdateTime.Add(time.Duration(*d.Spec.ProgressDeadlineSeconds) * time.Second).Sub(p.now)
	if after < time.Second {
		p.plan.RequeueAfter = time.Millisecond
		return
	}
	p.plan.RequeueAfter = after + time.Second
}

func replicaFailure(newRS *appsv1.ReplicaSet, old []*appsv1.ReplicaSet) *appsv1.DeploymentCondition {
	for _, rs := range append([]*appsv1.ReplicaSet{newRS}, old...) {
		if rs == nil {
			continue
		}
		for _, c := range rs.Status.Conditions {
			if c.Type == appsv1.ReplicaSetReplicaFailure {
				return &appsv1.DeploymentCondition{
					Type: appsv1.DeploymentReplicaFailure, Status: c.Status, Reason: c.Reason, Message: c.Message,
					LastUpdateTime: c.LastTransitionTime, LastTransitionTime: c.LastTransitionTime,
				}
			}
		}
	}
	return nil
}

func (p *planner) setCondition(t appsv1.DeploymentConditionType, s corev1.ConditionStatus, reason, msg string) {
	setCondition(&p.d.Status, newCondition(p.now, t, s, reason, msg))
}

func deploymentComplete(d *appsv1.Deployment, st appsv1.DeploymentStatus) bool {
	n := replicas(d)
	return st.UpdatedReplicas == n && st.Replicas == n && st.AvailableReplicas == n && st.ObservedGeneration >= d.Generation
}

func deploymentProgressing(d *appsv1.Deployment, st appsv1.DeploymentStatus) bool {
	old := d.Status
	return st.UpdatedReplicas > old.UpdatedReplicas ||
		st.Replicas-st.UpdatedReplicas < old.Replicas-old.UpdatedReplicas ||
		st.ReadyReplicas > old.ReadyReplicas ||
		st.AvailableReplicas > old.AvailableReplicas
}

func newCondition(now time.Time, t appsv1.DeploymentConditionType, s corev1.ConditionStatus, reason, msg string) appsv1.DeploymentCondition {
	ts := metav1.NewTime(now)
	return appsv1.DeploymentCondition{Type: t, Status: s, Reason: reason, Message: msg, LastUpdateTime: ts, LastTransitionTime: ts}
}

func getCondition(st appsv1.DeploymentStatus, t appsv1.DeploymentConditionType) *appsv1.DeploymentCondition {
	for i := range st.Conditions {
		if st.Conditions[i].Type == t {
			return &st.Conditions[i]
		}
	}
	return nil
}

// setCondition adds or replaces c; an unchanged status and reason is kept
// as is (timestamps included), and an unchanged status keeps its
// lastTransitionTime.
func setCondition(st *appsv1.DeploymentStatus, c appsv1.DeploymentCondition) {
	cur := getCondition(*st, c.Type)
	if cur != nil && cur.Status == c.Status && cur.Reason == c.Reason {
		return
	}
	if cur != nil && cur.Status == c.Status {
		c.LastTransitionTime = cur.LastTransitionTime
	}
	removeCondition(st, c.Type)
	st.Conditions = append(st.Conditions, c)
}

func removeCondition(st *appsv1.DeploymentStatus, t appsv1.DeploymentConditionType) {
	var out []appsv1.DeploymentCondition
	for _, c := range st.Conditions {
		if c.Type != t {
			out = append(out, c)
		}
	}
	st.Conditions = out
}

// ---- small helpers ----------------------------------------------------------

func hasProgressDeadline(d *appsv1.Deployment) bool {
	return d.Spec.ProgressDeadlineSeconds != nil && *d.Spec.ProgressDeadlineSeconds != math.MaxInt32
}

// fenceposts resolves maxSurge and maxUnavailable against replicas: surge
// rounds up, unavailable rounds down, and both zero means unavailable 1 so a
// rollout can always progress.
func fenceposts(d *appsv1.Deployment) (surge, unavailable int32) {
	if d.Spec.Strategy.Type == appsv1.RecreateDeploymentStrategyType {
		return 0, 0
	}
	def := intstr.FromString("25%")
	s, u := &def, &def
	if ru := d.Spec.Strategy.RollingUpdate; ru != nil {
		if ru.MaxSurge != nil {
			s = ru.MaxSurge
		}
		if ru.MaxUnavailable != nil {
			u = ru.MaxUnavailable
		}
	}
	n := int(replicas(d))
	sv, err := intstr.GetScaledValueFromIntOrPercent(s, n, true)
	if err != nil {
		sv = 0
	}
	uv, err := intstr.GetScaledValueFromIntOrPercent(u, n, false)
	if err != nil {
		uv = 0
	}
	if sv == 0 && uv == 0 {
		uv = 1
	}
	return int32(sv), int32(uv)
}

func maxSurge(d *appsv1.Deployment) int32 {
	s, _ := fenceposts(d)
	return s
}

func maxUnavailable(d *appsv1.Deployment) int32 {
	if replicas(d) == 0 {
		return 0
	}
	_, u := fenceposts(d)
	return min(u, replicas(d))
}

// saturated reports whether the new ReplicaSet alone runs the whole
// Deployment at its current size.
func saturated(d *appsv1.Deployment, rs *appsv1.ReplicaSet) bool {
	if rs == nil {
		return false
	}
	desired, err := strconv.ParseInt(rs.Annotations[DesiredReplicasAnnotation], 10, 32)
	if err != nil {
		return false
	}
	n := replicas(d)
	return rsReplicas(rs) == n && int32(desired) == n && rs.Status.AvailableReplicas == n
}

func sumSpec(rss []*appsv1.ReplicaSet) int32 {
	var n int32
	for _, rs := range rss {
		n += rsReplicas(rs)
	}
	return n
}

func active(newRS *appsv1.ReplicaSet, old []*appsv1.ReplicaSet) []*appsv1.ReplicaSet {
	var out []*appsv1.ReplicaSet
	for _, rs := range append([]*appsv1.ReplicaSet{newRS}, old...) {
		if rs != nil && rsReplicas(rs) > 0 {
			out = append(out, rs)
		}
	}
	return out
}

func olderRS(a, b *appsv1.ReplicaSet) bool {
	if a.CreationTimestamp.Equal(&b.CreationTimestamp) {
		return a.Name < b.Name
	}
	return a.CreationTimestamp.Before(&b.CreationTimestamp)
}

func newestRS(rss []*appsv1.ReplicaSet) *appsv1.ReplicaSet {
	var n *appsv1.ReplicaSet
	for _, rs := range rss {
		if n == nil || olderRS(n, rs) {
			n = rs
		}
	}
	return n
}

func biggerNewer(a, b *appsv1.ReplicaSet) bool {
	if rsReplicas(a) == rsReplicas(b) {
		return olderRS(b, a)
	}
	return rsReplicas(a) > rsReplicas(b)
}

func biggerOlder(a, b *appsv1.ReplicaSet) bool {
	if rsReplicas(a) == rsReplicas(b) {
		return olderRS(a, b)
	}
	return rsReplicas(a) > rsReplicas(b)
}

func revision(rs *appsv1.ReplicaSet) int64 {
	v, err := strconv.ParseInt(rs.Annotations[RevisionAnnotation], 10, 64)
	if err != nil {
		return 0
	}
	return v
}

func maxRevision(rss []*appsv1.ReplicaSet) int64 {
	var m int64
	for _, rs := range rss {
		m = max(m, revision(rs))
	}
	return m
}

func withLabel(in map[string]string, k, v string) map[string]string {
	out := make(map[string]string, len(in)+1)
	for key, val := range in {
		out[key] = val
	}
	out[k] = v
	return out
}

// equalIgnoreHash compares two templates ignoring the pod-template-hash label.
func equalIgnoreHash(a, b *corev1.PodTemplateSpec) bool {
	a, b = a.DeepCopy(), b.DeepCopy()
	delete(a.Labels, PodTemplateHashLabel)
	delete(b.Labels, PodTemplateHashLabel)
	if len(a.Labels) == 0 {
		a.Labels = nil
	}
	if len(b.Labels) == 0 {
		b.Labels = nil
	}
	return equality.Semantic.DeepEqual(a, b)
}

func setDeploymentRevision(d *appsv1.Deployment, rev string) {
	if d.Annotations[RevisionAnnotation] == rev {
		return
	}
	if d.Annotations == nil {
		d.Annotations = map[string]string{}
	}
	d.Annotations[RevisionAnnotation] = rev
}

// setReplicasAnnotations records the desired and maximum replicas a
// ReplicaSet was sized for (used by proportional scaling); it reports
// whether anything changed.
func setReplicasAnnotations(rs *appsv1.ReplicaSet, desired, maxReplicas int32) bool {
	d, m := strconv.Itoa(int(desired)), strconv.Itoa(int(maxReplicas))
	if rs.Annotations[DesiredReplicasAnnotation] == d && rs.Annotations[MaxReplicasAnnotation] == m {
		return false
	}
	if rs.Annotations == nil {
		rs.Annotations = map[string]string{}
	}
	rs.Annotations[DesiredReplicasAnnotation] = d
	rs.Annotations[MaxReplicasAnnotation] = m
	return true
}

// setNewRSAnnotations copies the Deployment's annotations onto the new
// ReplicaSet and raises its revision to newRevision, keeping the revisions
// it had before in revision-history (that is how a rollback shows in
// `kubectl rollout history`). It reports whether rs changed.
func setNewRSAnnotations(d *appsv1.Deployment, rs *appsv1.ReplicaSet, newRevision string, exists bool) bool {
	changed := false
	if rs.Annotations == nil {
		rs.Annotations = map[string]string{}
	}
	for k, v := range d.Annotations {
		switch k {
		case lastAppliedAnnotation, RevisionAnnotation, RevisionHistoryAnnotation, DesiredReplicasAnnotation, MaxReplicasAnnotation, deprecatedRollbackTo:
			continue
		}
		if rs.Annotations[k] != v {
			rs.Annotations[k] = v
			changed = true
		}
	}
	oldRevision, had := rs.Annotations[RevisionAnnotation]
	oldRev, err := strconv.ParseInt(oldRevision, 10, 64)
	if err != nil {
		if oldRevision != "" {
			return changed
		}
		oldRev = 0
	}
	newRev, err := strconv.ParseInt(newRevision, 10, 64)
	if err != nil {
		return changed
	}
	if oldRev < newRev {
		rs.Annotations[RevisionAnnotation] = newRevision
		changed = true
		if had {
			history := rs.Annotations[RevisionHistoryAnnotation]
			if history == "" {
				rs.Annotations[RevisionHistoryAnnotation] = oldRevision
			} else {
				revs := strings.Split(history, ",")
				total := len(history) + len(oldRevision) + 1
				start := 0
				for total > maxRevisionHistoryChars && start < len(revs) {
					total -= len(revs[start]) + 1
					start++
				}
				if total <= maxRevisionHistoryChars {
					rs.Annotations[RevisionHistoryAnnotation] = strings.Join(append(revs[start:], oldRevision), ",")
				}
			}
		}
	}
	if !exists && setReplicasAnnotations(rs, replicas(d), replicas(d)+maxSurge(d)) {
		changed = true
	}
	return changed
}
