package apiserver

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/skiff-project/skiff/pkg/storage"
)

// admissionChain runs the built-in admission plugins in upstream's order:
// mutating (NamespaceLifecycle, LimitRanger, ServiceAccount,
// DefaultTolerationSeconds, Priority), then validating.
type admissionChain struct {
	s *Server
}

func newAdmissionChain(s *Server) *admissionChain { return &admissionChain{s: s} }

var (
	coreNamespaces       = schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}
	coreLimitRanges      = schema.GroupVersionResource{Version: "v1", Resource: "limitranges"}
	schedPriorityClasses = schema.GroupVersionResource{Group: "scheduling.k8s.io", Version: "v1", Resource: "priorityclasses"}
)

// immortalNamespaces may never be deleted.
func immortalNamespace(name string) bool {
	return name == "default" || name == "kube-system" || name == "kube-public"
}

// builtinPriorityClasses are the classes upstream creates at start.
func builtinPriorityClasses() map[string]int32 {
	return map[string]int32{"system-node-critical": 2000001000, "system-cluster-critical": 2000000000}
}

// admit runs the mutating plugins. op is "create" or "update"; old is nil
// on create.
func (c *admissionChain) admit(ctx context.Context, ep *endpoint, op string, obj, old runtime.Object, dryRun bool) error {
	if op == "create" {
		if err := c.namespaceLifecycle(ctx, ep, obj); err != nil {
			return err
		}
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok || op != "create" {
		return nil
	}
	if err := c.limitRanger(ctx, pod); err != nil {
		return err
	}
	if c.s.admissionEnabled(AdmissionServiceAccount) {
		if err := c.serviceAccount(ctx, pod); err != nil {
			return err
		}
	} else if pod.Spec.ServiceAccountName == "" {
		pod.Spec.ServiceAccountName = "default"
	}
	if pod.Spec.DeprecatedServiceAccount == "" {
		pod.Spec.DeprecatedServiceAccount = pod.Spec.ServiceAccountName
	}
	defaultTolerationSeconds(pod, secondsOr(c.s.cfg.DefaultNotReadyTolerationSeconds), secondsOr(c.s.cfg.DefaultUnreachableTolerationSeconds))
	return c.priority(ctx, pod)
}

// validate runs the validating plugins.
func (c *admissionChain) validate(ctx context.Context, ep *endpoint, op string, obj, old runtime.Object) error {
	return c.s.checkEscalation(ctx, obj)
}

// admitDelete guards deletions: the system namespaces are immortal.
func (c *admissionChain) admitDelete(ctx context.Context, ep *endpoint, obj runtime.Object) error {
	if ns, ok := obj.(*corev1.Namespace); ok && immortalNamespace(ns.Name) {
		return apierrors.NewForbidden(ep.groupResource(), ns.Name, errors.New("this namespace may not be deleted"))
	}
	return nil
}

// namespaceLifecycle refuses new objects in missing or terminating namespaces.
func (c *admissionChain) namespaceLifecycle(ctx context.Context, ep *endpoint, obj runtime.Object) error {
	if !ep.res.Namespaced {
		return nil
	}
	a, err := meta.Accessor(obj)
	if err != nil {
		return nil
	}
	nsEP, ok := c.s.lookup(coreNamespaces)
	if !ok {
		return nil
	}
	stored, err := nsEP.store.Get(ctx, nsEP.key("", a.GetNamespace()))
	if errors.Is(err, storage.ErrNotFound) {
		return apierrors.NewNotFound(schema.GroupResource{Resource: "namespaces"}, a.GetNamespace())
	}
	if err != nil {
		return storageError(err, nsEP.groupResource(), a.GetNamespace())
	}
	if ns, ok := stored.(*corev1.Namespace); ok && (ns.DeletionTimestamp != nil || ns.Status.Phase == corev1.NamespaceTerminating) {
		return apierrors.NewForbidden(ep.groupResource(), a.GetName(),
			fmt.Errorf("unable to create new content in namespace %s because it is being terminated", ns.Name))
	}
	return nil
}

// limitRanger applies the namespace's LimitRange container defaults and
// enforces its maxima, like upstream's LimitRanger plugin.
func (c *admissionChain) limitRanger(ctx context.Context, pod *corev1.Pod) error {
	lrEP, ok := c.s.lookup(coreLimitRanges)
	if !ok {
		return nil
	}
	res, err := lrEP.store.List(ctx, lrEP.listPrefix(pod.Namespace), storage.ListOptions{ResourceVersion: "0"})
	if err != nil {
		return storageError(err, lrEP.groupResource(), "")
	}
	for _, item := range res.Items {
		lr, ok := item.(*corev1.LimitRange)
		if !ok {
			continue
		}
		for _, limit := range lr.Spec.Limits {
			if limit.Type != corev1.LimitTypeContainer {
				continue
			}
			for i := range pod.Spec.InitContainers {
				applyContainerDefaults(&pod.Spec.InitContainers[i], limit)
			}
			for i := range pod.Spec.Containers {
				applyContainerDefaults(&pod.Spec.Containers[i], limit)
			}
			for _, ctr := range pod.Spec.Containers {
				for name, max := range limit.Max {
					if l, ok := ctr.Resources.Limits[name]; ok && l.Cmp(max) > 0 {
						return apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, pod.Name,
							fmt.Errorf("maximum %s usage per Container is %s, but limit is %s", name, max.String(), l.String()))
					}
				}
				for name, min := range limit.Min {
					if r, ok := ctr.Resources.Requests[name]; ok && r.Cmp(min) < 0 {
						return apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, pod.Name,
							fmt.Errorf("minimum %s usage per Container is %s, but request is %s", name, min.String(), r.String()))
					}
				}
			}
		}
	}
	return nil
}

func applyContainerDefaults(c *corev1.Container, limit corev1.LimitRangeItem) {
	for name, q := range limit.Default {
		if _, ok := c.Resources.Limits[name]; !ok {
			if c.Resources.Limits == nil {
				c.Resources.Limits = corev1.ResourceList{}
			}
			c.Resources.Limits[name] = q.DeepCopy()
		}
	}
	for name, q := range limit.DefaultRequest {
		if _, ok := c.Resources.Requests[name]; !ok {
			if c.Resources.Requests == nil {
				c.Resources.Requests = corev1.ResourceList{}
			}
			// A request defaults to the limit when the container set one.
			if l, ok := c.Resources.Limits[name]; ok && l.Cmp(q) < 0 {
				c.Resources.Requests[name] = l.DeepCopy()
				continue
			}
			c.Resources.Requests[name] = q.DeepCopy()
		}
	}
}

func secondsOr(v *int64) int64 {
	if v == nil {
		return 300
	}
	return *v
}

// defaultTolerationSeconds adds the not-ready / unreachable NoExecute
// tolerations every pod gets upstream (300 s unless configured).
func defaultTolerationSeconds(pod *corev1.Pod, notReady, unreachable int64) {
	for _, d := range []struct {
		key     string
		seconds int64
	}{{corev1.TaintNodeNotReady, notReady}, {corev1.TaintNodeUnreachable, unreachable}} {
		key, seconds := d.key, d.seconds
		found := false
		for _, t := range pod.Spec.Tolerations {
			if (t.Key == key || t.Key == "") && (t.Effect == corev1.TaintEffectNoExecute || t.Effect == "") && t.Operator == corev1.TolerationOpExists {
				found = true
			}
		}
		if !found {
			s := seconds
			pod.Spec.Tolerations = append(pod.Spec.Tolerations, corev1.Toleration{
				Key: key, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute, TolerationSeconds: &s,
			})
		}
	}
}

// priority resolves spec.priorityClassName into spec.priority.
func (c *admissionChain) priority(ctx context.Context, pod *corev1.Pod) error {
	name := pod.Spec.PriorityClassName
	var value int32
	policy := corev1.PreemptLowerPriority
	if v, ok := builtinPriorityClasses()[name]; ok {
		value = v
	} else if name != "" {
		pcEP, ok := c.s.lookup(schedPriorityClasses)
		if !ok {
			return nil
		}
		stored, err := pcEP.store.Get(ctx, pcEP.key("", name))
		if errors.Is(err, storage.ErrNotFound) {
			return apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, pod.Name, fmt.Errorf("no PriorityClass with name %s was found", name))
		}
		if err != nil {
			return storageError(err, pcEP.groupResource(), name)
		}
		pc := stored.(*schedulingv1.PriorityClass)
		value = pc.Value
		if pc.PreemptionPolicy != nil {
			policy = *pc.PreemptionPolicy
		}
	}
	if pod.Spec.Priority != nil && *pod.Spec.Priority != value {
		return apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, pod.Name,
			errors.New("the integer value of priority must not be provided in pod spec; priority admission controller computed the value from the given PriorityClass name"))
	}
	pod.Spec.Priority = &value
	pod.Spec.PreemptionPolicy = &policy
	return nil
}
