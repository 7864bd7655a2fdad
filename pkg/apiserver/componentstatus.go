package apiserver

import (
	"context"
	"net/http"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiff-project/skiff/pkg/storage"
)

// componentStatusWarning is the deprecation warning upstream attaches.
const componentStatusWarning = `299 - "v1 ComponentStatus is deprecated in v1.19+"`

// serveComponentStatuses answers the read-only, computed componentstatuses
// resource: etcd's health from the store, the scheduler's and controller
// manager's from the freshness of their leader Leases (they run in-process
// or as separate processes, always with leader election).
func (s *Server) serveComponentStatuses(w http.ResponseWriter, r *http.Request, ep *endpoint, info *requestInfo) {
	ctx, cancel := withTimeout(r.Context(), r)
	defer cancel()
	all := s.componentStatuses(ctx)
	w.Header().Add("Warning", componentStatusWarning)
	switch info.Verb {
	case "get":
		for _, cs := range all {
			if cs.Name == info.Name {
				cs := cs
				s.respond(w, r, ep, http.StatusOK, &cs)
				return
			}
		}
		s.writeError(w, r, apierrors.NewNotFound(ep.groupResource(), info.Name))
	case "list":
		items := make([]runtime.Object, 0, len(all))
		for i := range all {
			items = append(items, &all[i])
		}
		s.respondList(w, r, ep, &storage.ListResult{Items: items})
	default:
		s.writeError(w, r, apierrors.NewMethodNotSupported(ep.groupResource(), info.Verb))
	}
}

func (s *Server) componentStatuses(ctx context.Context) []corev1.ComponentStatus {
	status := func(name string, err error) corev1.ComponentStatus {
		cond := corev1.ComponentCondition{Type: corev1.ComponentHealthy, Status: corev1.ConditionTrue, Message: "ok"}
		if err != nil {
			cond = corev1.ComponentCondition{Type: corev1.ComponentHealthy, Status: corev1.ConditionFalse, Error: err.Error()}
		}
		return corev1.ComponentStatus{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ComponentStatus"},
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Conditions: []corev1.ComponentCondition{cond},
		}
	}
	return []corev1.ComponentStatus{
		status("scheduler", s.leaseFresh(ctx, "kube-scheduler")),
		status("controller-manager", s.leaseFresh(ctx, "kube-controller-manager")),
		status("etcd-0", s.checkEtcd(ctx)),
	}
}

// leaseFresh reports an error unless kube-system/name is held and renewed
// within its duration.
func (s *Server) leaseFresh(ctx context.Context, name string) error {
	ep, ok := s.lookup(schema.GroupVersionResource{Group: "coordination.k8s.io", Version: "v1", Resource: "leases"})
	if !ok {
		return nil
	}
	obj, err := ep.store.Get(ctx, ep.key("kube-system", name))
	if err != nil {
		return errUnhealthy("no leader: lease kube-system/" + name + " not found")
	}
	lease := obj.(*coordinationv1.Lease)
	if lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity == "" || lease.Spec.RenewTime == nil {
		return errUnhealthy("no leader holds lease kube-system/" + name)
	}
	d := 15 * time.Second
	if lease.Spec.LeaseDurationSeconds != nil {
		d = time.Duration(*lease.Spec.LeaseDurationSeconds) * time.Second
	}
	if time.Since(lease.Spec.RenewTime.Time) > d {
		return errUnhealthy("leader " + *lease.Spec.HolderIdentity + " stopped renewing lease kube-system/" + name)
	}
	return nil
}

type errUnhealthy string

func (e errUnhealthy) Error() string { return string(e) }
