package kubelet

import (
	"context"
	"fmt"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// NodeLeaseNamespace holds one heartbeat Lease per node, named after it.
const NodeLeaseNamespace = corev1.NamespaceNodeLease

// renewLease renews (creating it if needed) the node's heartbeat Lease.
// It updates from the copy it last wrote, so a steady-state renewal is a
// single write; when that write fails because somebody else changed or
// deleted the Lease, it re-reads the Lease and retries once, as upstream's
// lease controller does. Only the heartbeat goroutine calls it.
func (k *Kubelet) renewLease(ctx context.Context) error {
	leases := k.cfg.Client.CoordinationV1().Leases(NodeLeaseNamespace)
	if k.lease != nil {
		updated, err := leases.Update(ctx, k.desiredLease(k.lease), metav1.UpdateOptions{})
		if err == nil {
			k.lease = updated
			return nil
		}
		k.lease = nil
		if !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
			return fmt.Errorf("renewing lease %s/%s: %w", NodeLeaseNamespace, k.cfg.NodeName, err)
		}
	}
	cur, err := leases.Get(ctx, k.cfg.NodeName, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		created, err := leases.Create(ctx, k.desiredLease(nil), metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("creating lease %s/%s: %w", NodeLeaseNamespace, k.cfg.NodeName, err)
		}
		k.lease = created
		return nil
	case err != nil:
		return fmt.Errorf("getting lease %s/%s: %w", NodeLeaseNamespace, k.cfg.NodeName, err)
	}
	updated, err := leases.Update(ctx, k.desiredLease(cur), metav1.UpdateOptions{})
	if err != nil {
		return fmt.Errorf("renewing lease %s/%s: %w", NodeLeaseNamespace, k.cfg.NodeName, err)
	}
	k.lease = updated
	return nil
}

// desiredLease returns base (nil for a new Lease) renewed now: held by this
// node, owned by the Node object so that deleting the node deletes it.
func (k *Kubelet) desiredLease(base *coordinationv1.Lease) *coordinationv1.Lease {
	var l *coordinationv1.Lease
	if base == nil {
		l = &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: k.cfg.NodeName, Namespace: NodeLeaseNamespace}}
	} else {
		l = base.DeepCopy()
	}
	holder := k.cfg.NodeName
	seconds := int32(k.cfg.LeaseDuration.Seconds())
	now := metav1.NewMicroTime(k.cfg.Clock.Now())
	l.Spec.HolderIdentity = &holder
	l.Spec.LeaseDurationSeconds = &seconds
	l.Spec.RenewTime = &now
	if len(l.OwnerReferences) == 0 && k.node != nil && k.node.UID != "" {
		l.OwnerReferences = []metav1.OwnerReference{{
			APIVersion: corev1.SchemeGroupVersion.String(),
			Kind:       "Node",
			Name:       k.node.Name,
			UID:        k.node.UID,
		}}
	}
	return l
}
