package apiserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"reflect"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-project/skiff/pkg/storage"
)

// ---- scale ----

// scaleOf builds the autoscaling/v1 Scale view of a scalable object.
func scaleOf(obj runtime.Object) (*autoscalingv1.Scale, error) {
	a, err := meta.Accessor(obj)
	if err != nil {
		return nil, err
	}
	sc := &autoscalingv1.Scale{
		TypeMeta: metav1.TypeMeta{APIVersion: "autoscaling/v1", Kind: "Scale"},
		ObjectMeta: metav1.ObjectMeta{Name: a.GetName(), Namespace: a.GetNamespace(), UID: a.GetUID(),
			ResourceVersion: a.GetResourceVersion(), CreationTimestamp: a.GetCreationTimestamp()},
	}
	v := reflect.ValueOf(obj).Elem()
	spec, status := v.FieldByName("Spec"), v.FieldByName("Status")
	if r := spec.FieldByName("Replicas"); r.IsValid() {
		if r.Kind() == reflect.Pointer {
			if !r.IsNil() {
				sc.Spec.Replicas = int32(r.Elem().Int())
			}
		} else {
			sc.Spec.Replicas = int32(r.Int())
		}
	}
	if r := status.FieldByName("Replicas"); r.IsValid() {
		sc.Status.Replicas = int32(r.Int())
	}
	switch sel := spec.FieldByName("Selector").Interface().(type) {
	case *metav1.LabelSelector:
		if sel != nil {
			s, err := metav1.LabelSelectorAsSelector(sel)
			if err == nil {
				sc.Status.Selector = s.String()
			}
		}
	case map[string]string:
		sc.Status.Selector = labels.SelectorFromSet(sel).String()
	}
	return sc, nil
}

// setReplicas sets spec.replicas of a scalable object.
func setReplicas(obj runtime.Object, n int32) {
	r := reflect.ValueOf(obj).Elem().FieldByName("Spec").FieldByName("Replicas")
	if !r.IsValid() {
		return
	}
	if r.Kind() == reflect.Pointer {
		r.Set(reflect.ValueOf(&n))
		return
	}
	r.SetInt(int64(n))
}

func (s *Server) serveScale(w http.ResponseWriter, r *http.Request, ep *endpoint, info *requestInfo) {
	ctx, cancel := withTimeout(r.Context(), r)
	defer cancel()
	scaleGR := schema.GroupResource{Group: ep.res.Group, Resource: ep.res.Resource + "/scale"}
	writeScale := func(code int, obj runtime.Object) {
		sc, err := scaleOf(obj)
		if err != nil {
			s.writeError(w, r, apierrors.NewInternalError(err))
			return
		}
		mt, err := s.negotiate(r, nil)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		s.writeObject(w, r, code, mt, sc)
	}
	switch info.Verb {
	case "get":
		obj, err := s.getServed(ctx, ep, info.Namespace, info.Name)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		writeScale(http.StatusOK, obj)
	case "update", "patch":
		opts, err := s.parseOptions(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		body, err := readBody(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		pt := types.PatchType(r.Header.Get("Content-Type"))
		out, _, err := s.update(ctx, ep, info.Namespace, info.Name, "scale", opts, func(cur runtime.Object) (runtime.Object, error) {
			sc, err := scaleOf(cur)
			if err != nil {
				return nil, err
			}
			desired, err := s.desiredScale(r, info.Verb, pt, sc, body)
			if err != nil {
				return nil, err
			}
			if desired.ResourceVersion != "" && desired.ResourceVersion != sc.ResourceVersion {
				return nil, apierrors.NewConflict(scaleGR, info.Name, errors.New(conflictMessage))
			}
			if desired.Spec.Replicas < 0 {
				return nil, apierrors.NewInvalid(schema.GroupKind{Group: "autoscaling", Kind: "Scale"}, info.Name,
					fieldErrorList("spec.replicas", desired.Spec.Replicas, "must be greater than or equal to 0"))
			}
			setReplicas(cur, desired.Spec.Replicas)
			return cur, nil
		}, nil)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		writeScale(http.StatusOK, out)
	default:
		s.writeError(w, r, apierrors.NewMethodNotSupported(scaleGR, info.Verb))
	}
}

// desiredScale decodes a Scale update or applies a patch to the current Scale.
func (s *Server) desiredScale(r *http.Request, verb string, pt types.PatchType, cur *autoscalingv1.Scale, body []byte) (*autoscalingv1.Scale, error) {
	info, _ := runtime.SerializerInfoForMediaType(s.codecs.SupportedMediaTypes(), "application/json")
	if verb == "update" {
		if i, ok := runtime.SerializerInfoForMediaType(s.codecs.SupportedMediaTypes(), mediaTypeOnly(r.Header.Get("Content-Type"))); ok {
			info = i
		}
	}
	data := body
	if verb == "patch" {
		original, err := runtime.Encode(info.Serializer, cur)
		if err != nil {
			return nil, apierrors.NewInternalError(err)
		}
		switch pt {
		case types.MergePatchType:
			data, err = guard(func() ([]byte, error) { return jsonpatch.MergePatch(original, body) })
		case types.StrategicMergePatchType:
			data, err = guard(func() ([]byte, error) {
				return strategicpatch.StrategicMergePatch(original, body, &autoscalingv1.Scale{})
			})
		case types.JSONPatchType:
			var p jsonpatch.Patch
			p, err = jsonpatch.DecodePatch(body)
			if err == nil {
				data, err = guard(func() ([]byte, error) { return p.Apply(original) })
			}
		case types.ApplyYAMLPatchType:
			return nil, apierrors.NewBadRequest("server-side apply of the scale subresource is not supported; use a merge patch")
		default:
			return nil, unsupportedMediaType(string(pt))
		}
		if err != nil {
			return nil, apierrors.NewBadRequest(err.Error())
		}
	}
	out := &autoscalingv1.Scale{}
	gvk := autoscalingv1.SchemeGroupVersion.WithKind("Scale")
	if _, _, err := info.Serializer.Decode(data, &gvk, out); err != nil {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("Scale in version \"v1\" cannot be handled as a Scale: %v", err))
	}
	return out, nil
}

// ---- pods/binding and bindings ----

func (s *Server) serveBinding(w http.ResponseWriter, r *http.Request, podEP *endpoint, info *requestInfo) {
	if info.Verb != "create" {
		s.writeError(w, r, apierrors.NewMethodNotSupported(schema.GroupResource{Resource: "pods/binding"}, info.Verb))
		return
	}
	if podEP.res.Resource == "bindings" {
		var ok bool
		if podEP, ok = s.lookup(schema.GroupVersionResource{Version: "v1", Resource: "pods"}); !ok {
			s.writeError(w, r, notFoundPath())
			return
		}
	}
	opts, err := s.parseOptions(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	body, err := readBody(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	info2, _ := runtime.SerializerInfoForMediaType(s.codecs.SupportedMediaTypes(), "application/json")
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if i, ok := runtime.SerializerInfoForMediaType(s.codecs.SupportedMediaTypes(), mediaTypeOnly(ct)); ok {
			info2 = i
		}
	}
	binding := &corev1.Binding{}
	gvk := corev1.SchemeGroupVersion.WithKind("Binding")
	if _, _, err := info2.Serializer.Decode(body, &gvk, binding); err != nil {
		s.writeError(w, r, apierrors.NewBadRequest(fmt.Sprintf("Binding in version \"v1\" cannot be handled as a Binding: %v", err)))
		return
	}
	name := info.Name
	if name == "" {
		name = binding.Name
	}
	if binding.Name != "" && binding.Name != name {
		s.writeError(w, r, apierrors.NewBadRequest(fmt.Sprintf("the name of the binding (%s) does not match the name on the URL (%s)", binding.Name, name)))
		return
	}
	if binding.Target.Name == "" {
		s.writeError(w, r, apierrors.NewInvalid(schema.GroupKind{Kind: "Binding"}, name, field.ErrorList{field.Required(field.NewPath("target", "name"), "")}))
		return
	}
	ctx, cancel := withTimeout(r.Context(), r)
	defer cancel()
	_, _, err = s.update(ctx, podEP, info.Namespace, name, "binding", opts, func(cur runtime.Object) (runtime.Object, error) {
		pod := cur.(*corev1.Pod)
		if binding.UID != "" && binding.UID != pod.UID {
			return nil, apierrors.NewConflict(schema.GroupResource{Resource: "pods/binding"}, name,
				fmt.Errorf("Precondition failed: UID in precondition: %v, UID in object meta: %v", binding.UID, pod.UID))
		}
		if pod.DeletionTimestamp != nil {
			return nil, apierrors.NewConflict(schema.GroupResource{Resource: "pods/binding"}, name,
				fmt.Errorf("pod %s is being deleted, cannot be assigned to a host", name))
		}
		if pod.Spec.NodeName != "" {
			return nil, apierrors.NewConflict(schema.GroupResource{Resource: "pods/binding"}, name,
				fmt.Errorf("pod %s is already assigned to node %q", name, pod.Spec.NodeName))
		}
		pod.Spec.NodeName = binding.Target.Name
		for k, v := range binding.Annotations {
			if pod.Annotations == nil {
				pod.Annotations = map[string]string{}
			}
			pod.Annotations[k] = v
		}
		setPodCondition(&pod.Status, corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now()})
		return pod, nil
	}, nil)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeCreatedStatus(w, r)
}

func (s *Server) writeCreatedStatus(w http.ResponseWriter, r *http.Request) {
	mt, err := s.negotiate(r, nil)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeObject(w, r, http.StatusCreated, mt, &metav1.Status{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Status"}, Status: metav1.StatusSuccess, Code: http.StatusCreated})
}

// setPodCondition replaces or adds a condition, keeping the transition
// time when the status did not change.
func setPodCondition(status *corev1.PodStatus, c corev1.PodCondition) {
	for i := range status.Conditions {
		if status.Conditions[i].Type == c.Type {
			if status.Conditions[i].Status == c.Status {
				c.LastTransitionTime = status.Conditions[i].LastTransitionTime
			}
			status.Conditions[i] = c
			return
		}
	}
	status.Conditions = append(status.Conditions, c)
}

// ---- pods/eviction ----

func (s *Server) serveEviction(w http.ResponseWriter, r *http.Request, podEP *endpoint, info *requestInfo) {
	if info.Verb != "create" {
		s.writeError(w, r, apierrors.NewMethodNotSupported(schema.GroupResource{Resource: "pods/eviction"}, info.Verb))
		return
	}
	body, err := readBody(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	info2, _ := runtime.SerializerInfoForMediaType(s.codecs.SupportedMediaTypes(), "application/json")
	ev := &policyv1.Eviction{}
	if _, _, err := info2.Serializer.Decode(body, nil, ev); err != nil {
		s.writeError(w, r, apierrors.NewBadRequest(fmt.Sprintf("Eviction cannot be handled: %v", err)))
		return
	}
	ctx, cancel := withTimeout(r.Context(), r)
	defer cancel()
	cur, err := s.getServed(ctx, podEP, info.Namespace, info.Name)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	pod := cur.(*corev1.Pod)
	terminal := pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed
	if !terminal && pod.DeletionTimestamp == nil {
		if err := s.checkDisruptionBudgets(ctx, pod); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	opts := ev.DeleteOptions
	if opts == nil {
		opts = &metav1.DeleteOptions{}
	}
	if _, _, err := s.delete(ctx, podEP, info.Namespace, info.Name, opts); err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeCreatedStatus(w, r)
}

// checkDisruptionBudgets refuses an eviction that would violate a
// PodDisruptionBudget, and spends one allowed disruption otherwise.
func (s *Server) checkDisruptionBudgets(ctx context.Context, pod *corev1.Pod) error {
	pdbEP, ok := s.lookup(schema.GroupVersionResource{Group: "policy", Version: "v1", Resource: "poddisruptionbudgets"})
	if !ok {
		return nil
	}
	res, err := pdbEP.store.List(ctx, pdbEP.listPrefix(pod.Namespace), storage.ListOptions{})
	if err != nil {
		return storageError(err, pdbEP.groupResource(), "")
	}
	for _, item := range res.Items {
		pdb := item.(*policyv1.PodDisruptionBudget)
		sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
		if err != nil || sel.Empty() || !sel.Matches(labels.Set(pod.Labels)) {
			continue
		}
		if pdb.Status.DisruptionsAllowed <= 0 {
			return apierrors.NewTooManyRequests("Cannot evict pod as it would violate the pod's disruption budget.", 10)
		}
		_, _, err = s.update(ctx, pdbEP, pdb.Namespace, pdb.Name, "status", requestOptions{}, func(c runtime.Object) (runtime.Object, error) {
			p := c.(*policyv1.PodDisruptionBudget)
			if p.Status.DisruptionsAllowed <= 0 {
				return nil, apierrors.NewTooManyRequests("Cannot evict pod as it would violate the pod's disruption budget.", 10)
			}
			p.Status.DisruptionsAllowed--
			return p, nil
		}, nil)
		if err != nil {
			return err
		}
	}
	return nil
}

// ---- namespaces/finalize ----

func (s *Server) serveFinalize(w http.ResponseWriter, r *http.Request, ep *endpoint, info *requestInfo) {
	if info.Verb != "update" {
		s.writeError(w, r, apierrors.NewMethodNotSupported(schema.GroupResource{Resource: "namespaces/finalize"}, info.Verb))
		return
	}
	obj, _, opts, err := s.readObject(r, ep)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	desired := obj.(*corev1.Namespace)
	ctx, cancel := withTimeout(r.Context(), r)
	defer cancel()
	out, _, err := s.update(ctx, ep, "", info.Name, "finalize", opts, func(cur runtime.Object) (runtime.Object, error) {
		ns := cur.(*corev1.Namespace)
		if desired.ResourceVersion != "" && desired.ResourceVersion != ns.ResourceVersion {
			return nil, apierrors.NewConflict(ep.groupResource(), info.Name, errors.New(conflictMessage))
		}
		ns.Spec.Finalizers = desired.Spec.Finalizers
		return ns, nil
	}, nil)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.respond(w, r, ep, http.StatusOK, out)
}

func mediaTypeOnly(ct string) string {
	for i, c := range ct {
		if c == ';' {
			return ct[:i]
		}
	}
	return ct
}
