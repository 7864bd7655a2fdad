package apiserver

import (
	"context"
	"errors"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/klog/v2"

	"github.com/skiff-project/skiff/pkg/storage"
)

// rbacResources are the resources the RBAC authorizer mirrors.
var rbacResources = []schema.GroupVersionResource{
	{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterroles"},
	{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "roles"},
	{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterrolebindings"},
	{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "rolebindings"},
}

// mirrorSink receives what mirrorResource sees.
type mirrorSink interface {
	// replace swaps everything known of resource for objs (a (re)list).
	replace(resource string, objs []runtime.Object) error
	// apply records one change.
	apply(obj runtime.Object, deleted bool) error
}

// startRBACMirror starts one watch per RBAC resource feeding a, and
// returns once each has delivered its first complete list (or ctx ends).
// The watches run until ctx is done.
func (s *Server) startRBACMirror(ctx context.Context, a mirrorSink) error {
	synced := make(chan struct{}, len(rbacResources))
	for _, gvr := range rbacResources {
		ep, ok := s.lookup(gvr)
		if !ok {
			return fmt.Errorf("no endpoint for %s", gvr)
		}
		go s.mirrorResource(ctx, ep, a, synced)
	}
	for range rbacResources {
		select {
		case <-synced:
		case <-ctx.Done():
			return fmt.Errorf("waiting for the RBAC mirror: %w", ctx.Err())
		}
	}
	return nil
}

// mirrorResource keeps sink current with ep's objects until ctx is done:
// a watch from the server's watch cache that begins with the current
// objects (sink.replace once the initial-events-end bookmark arrives),
// resumed from its last resourceVersion when it ends, and relisted when
// that version has expired. It sends on synced after the first replace.
func (s *Server) mirrorResource(ctx context.Context, ep *endpoint, sink mirrorSink, synced chan<- struct{}) {
	resource := ep.res.Resource
	rv := ""
	first := true
	for ctx.Err() == nil {
		opts := storage.WatchOptions{AllowBookmarks: true, ResourceVersion: rv}
		relist := rv == ""
		if relist {
			opts.SendInitialEvents = new(true)
		}
		w, err := ep.store.Watch(ctx, ep.prefix, opts)
		if err != nil {
			if errors.Is(err, storage.ErrExpired) {
				rv = ""
				continue
			}
			if ctx.Err() == nil {
				klog.ErrorS(err, "RBAC mirror: watch failed; retrying", "resource", resource)
			}
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
			continue
		}
		var initial []runtime.Object
		collecting := relist
		for ev := range w.ResultChan() {
			a, err := meta.Accessor(ev.Object)
			if err != nil {
				continue
			}
			switch ev.Type {
			case watch.Bookmark:
				if collecting && a.GetAnnotations()[metav1.InitialEventsAnnotationKey] == "true" {
					if err := sink.replace(resource, initial); err != nil {
						klog.ErrorS(err, "RBAC mirror: list", "resource", resource)
					}
					initial, collecting = nil, false
					if first {
						first = false
						synced <- struct{}{}
					}
				}
			case watch.Added, watch.Modified:
				if collecting {
					initial = append(initial, ev.Object)
				} else if err := sink.apply(ev.Object, false); err != nil {
					klog.ErrorS(err, "RBAC mirror: update", "resource", resource)
				}
			case watch.Deleted:
				if err := sink.apply(ev.Object, true); err != nil {
					klog.ErrorS(err, "RBAC mirror: delete", "resource", resource)
				}
			case watch.Error:
				continue
			}
			if v := a.GetResourceVersion(); v != "" && !collecting {
				rv = v
			}
		}
		w.Stop()
		if collecting {
			// Ended before the list was complete: list again.
			rv = ""
		}
	}
}
