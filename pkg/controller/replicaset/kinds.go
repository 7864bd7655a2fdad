package replicaset

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes"
	appslisters "k8s.io/client-go/listers/apps/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
)

// Event sources, as upstream's kube-controller-manager names them; they show
// in the From column of `kubectl describe`.
const (
	ReplicaSetEventSource            = "replicaset-controller"
	ReplicationControllerEventSource = "replication-controller"
)

// owners is the seam that lets one controller implementation manage both
// ReplicaSets and ReplicationControllers: it presents either kind as an
// apps/v1 ReplicaSet (a ReplicationController is a ReplicaSet whose selector
// is a plain label map) and writes status back in the owner's own kind.
type owners interface {
	// gvk is the owner kind written into pods' ownerReferences.
	gvk() schema.GroupVersionKind
	// get returns the owner from the informer cache, converted; callers must
	// not mutate it.
	get(namespace, name string) (*appsv1.ReplicaSet, error)
	// list returns the cached owners in namespace, converted.
	list(namespace string) ([]*appsv1.ReplicaSet, error)
	// getLive reads the owner from the API server, bypassing the cache.
	getLive(ctx context.Context, namespace, name string) (*appsv1.ReplicaSet, error)
	// updateStatus writes rs.Status through the status subresource.
	updateStatus(ctx context.Context, rs *appsv1.ReplicaSet) error
}

type replicaSets struct {
	client kubernetes.Interface
	lister appslisters.ReplicaSetLister
}

func (replicaSets) gvk() schema.GroupVersionKind {
	return appsv1.SchemeGroupVersion.WithKind("ReplicaSet")
}

func (r replicaSets) get(namespace, name string) (*appsv1.ReplicaSet, error) {
	return r.lister.ReplicaSets(namespace).Get(name)
}

func (r replicaSets) list(namespace string) ([]*appsv1.ReplicaSet, error) {
	return r.lister.ReplicaSets(namespace).List(labels.Everything())
}

func (r replicaSets) getLive(ctx context.Context, namespace, name string) (*appsv1.ReplicaSet, error) {
	return r.client.AppsV1().ReplicaSets(namespace).Get(ctx, name, metav1.GetOptions{})
}

func (r replicaSets) updateStatus(ctx context.Context, rs *appsv1.ReplicaSet) error {
	_, err := r.client.AppsV1().ReplicaSets(rs.Namespace).UpdateStatus(ctx, rs, metav1.UpdateOptions{})
	return err
}

type replicationControllers struct {
	client kubernetes.Interface
	lister corelisters.ReplicationControllerLister
}

func (replicationControllers) gvk() schema.GroupVersionKind {
	return corev1.SchemeGroupVersion.WithKind("ReplicationController")
}

func (r replicationControllers) get(namespace, name string) (*appsv1.ReplicaSet, error) {
	rc, err := r.lister.ReplicationControllers(namespace).Get(name)
	if err != nil {
		return nil, err
	}
	return rcToRS(rc), nil
}

func (r replicationControllers) list(namespace string) ([]*appsv1.ReplicaSet, error) {
	rcs, err := r.lister.ReplicationControllers(namespace).List(labels.Everything())
	if err != nil {
		return nil, err
	}
	out := make([]*appsv1.ReplicaSet, 0, len(rcs))
	for _, rc := range rcs {
		out = append(out, rcToRS(rc))
	}
	return out, nil
}

func (r replicationControllers) getLive(ctx context.Context, namespace, name string) (*appsv1.ReplicaSet, error) {
	rc, err := r.client.CoreV1().ReplicationControllers(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	return rcToRS(rc), nil
}

func (r replicationControllers) updateStatus(ctx context.Context, rs *appsv1.ReplicaSet) error {
	cached, err := r.lister.ReplicationControllers(rs.Namespace).Get(rs.Name)
	if err != nil {
		return fmt.Errorf("reading replication controller %s/%s: %w", rs.Namespace, rs.Name, err)
	}
	rc := cached.DeepCopy()
	// Only status travels back: the server ignores the rest on /status, and
	// keeping the cached object's metadata keeps its resourceVersion for
	// optimistic concurrency.
	rc.ResourceVersion = rs.ResourceVersion
	rc.Status = corev1.ReplicationControllerStatus{
		Replicas:             rs.Status.Replicas,
		FullyLabeledReplicas: rs.Status.FullyLabeledReplicas,
		ReadyReplicas:        rs.Status.ReadyReplicas,
		AvailableReplicas:    rs.Status.AvailableReplicas,
		ObservedGeneration:   rs.Status.ObservedGeneration,
	}
	for _, c := range rs.Status.Conditions {
		rc.Status.Conditions = append(rc.Status.Conditions, corev1.ReplicationControllerCondition{
			Type:               corev1.ReplicationControllerConditionType(c.Type),
			Status:             c.Status,
			LastTransitionTime: c.LastTransitionTime,
			Reason:             c.Reason,
			Message:            c.Message,
		})
	}
	_, err = r.client.CoreV1().ReplicationControllers(rc.Namespace).UpdateStatus(ctx, rc, metav1.UpdateOptions{})
	return err
}

// rcToRS presents a ReplicationController as a ReplicaSet. The result shares
// no mutable state with rc except the template, which callers only read.
func rcToRS(rc *corev1.ReplicationController) *appsv1.ReplicaSet {
	rs := &appsv1.ReplicaSet{
		ObjectMeta: rc.ObjectMeta,
		Spec: appsv1.ReplicaSetSpec{
			Replicas:        rc.Spec.Replicas,
			MinReadySeconds: rc.Spec.MinReadySeconds,
			Selector:        &metav1.LabelSelector{MatchLabels: rc.Spec.Selector},
		},
		Status: appsv1.ReplicaSetStatus{
			Replicas:             rc.Status.Replicas,
			FullyLabeledReplicas: rc.Status.FullyLabeledReplicas,
			ReadyReplicas:        rc.Status.ReadyReplicas,
			AvailableReplicas:    rc.Status.AvailableReplicas,
			ObservedGeneration:   rc.Status.ObservedGeneration,
		},
	}
	if rc.Spec.Template != nil {
		rs.Spec.Template = *rc.Spec.Template
	}
	for _, c := range rc.Status.Conditions {
		rs.Status.Conditions = append(rs.Status.Conditions, appsv1.ReplicaSetCondition{
			Type:               appsv1.ReplicaSetConditionType(c.Type),
			Status:             c.Status,
			LastTransitionTime: c.LastTransitionTime,
			Reason:             c.Reason,
			Message:            c.Message,
		})
	}
	return rs
}
