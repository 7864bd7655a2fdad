package apiserver

import (
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/mergepatch"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"sigs.k8s.io/yaml"
)

// maxJSONPatchOperations bounds the work one JSON patch can ask for, as
// upstream does, so a request cannot make the server spin.
const maxJSONPatchOperations = 10000

func (s *Server) handlePatch(w http.ResponseWriter, r *http.Request, ep *endpoint, info *requestInfo, sub string) {
	if !hasVerb(ep.res, "patch") {
		s.writeError(w, r, apierrors.NewMethodNotSupported(ep.groupResource(), "patch"))
		return
	}
	opts, err := s.parseOptions(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ct, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil {
		s.writeError(w, r, unsupportedMediaType(r.Header.Get("Content-Type")))
		return
	}
	pt := types.PatchType(ct)
	switch pt {
	case types.JSONPatchType, types.MergePatchType, types.StrategicMergePatchType, types.ApplyYAMLPatchType:
	default:
		s.writeError(w, r, unsupportedMediaType(ct))
		return
	}
	if pt == types.StrategicMergePatchType && ep.res.New == nil {
		s.writeError(w, r, apierrors.NewGenericServerResponse(http.StatusUnsupportedMediaType, "patch", ep.groupResource(), info.Name,
			"strategic merge patch is not supported for custom resources; use a JSON merge patch (--type=merge) or a JSON patch", 0, false))
		return
	}
	if pt == types.ApplyYAMLPatchType && r.URL.Query().Get("fieldManager") == "" {
		s.writeError(w, r, apierrors.NewBadRequest("PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch"))
		return
	}
	patch, err := readBody(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	opts.apply = pt == types.ApplyYAMLPatchType
	ctx, cancel := withTimeout(r.Context(), r)
	defer cancel()
	var warnings []string
	mutate := func(cur runtime.Object) (runtime.Object, error) {
		if pt == types.ApplyYAMLPatchType {
			return s.applyPatch(ep, sub, cur, patch, opts)
		}
		obj, warn, err := s.patchObject(ep, cur, pt, patch, opts)
		warnings = warn
		return obj, err
	}
	var createFn func() (runtime.Object, error)
	if pt == types.ApplyYAMLPatchType && sub == "" {
		createFn = func() (runtime.Object, error) {
			live := ep.newObject()
			a, _ := meta.Accessor(live)
			a.SetName(info.Name)
			if ep.res.Namespaced {
				a.SetNamespace(info.Namespace)
			}
			return s.applyPatch(ep, sub, live, patch, opts)
		}
	}
	out, created, err := s.update(ctx, ep, info.Namespace, info.Name, sub, opts, mutate, createFn)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	addWarnings(w, warnings)
	code := http.StatusOK
	if created {
		code = http.StatusCreated
	}
	s.respond(w, r, ep, code, out)
}

// patchObject applies a JSON, merge or strategic merge patch to cur and
// decodes the result with the request's field validation.
func (s *Server) patchObject(ep *endpoint, cur runtime.Object, pt types.PatchType, patch []byte, opts requestOptions) (runtime.Object, []string, error) {
	info, _ := runtime.SerializerInfoForMediaType(s.codecs.SupportedMediaTypes(), "application/json")
	original, err := runtime.Encode(info.Serializer, cur)
	if err != nil {
		return nil, nil, apierrors.NewInternalError(fmt.Errorf("encode current object: %w", err))
	}
	var patched []byte
	switch pt {
	case types.JSONPatchType:
		p, err := jsonpatch.DecodePatch(patch)
		if err != nil {
			return nil, nil, apierrors.NewBadRequest(err.Error())
		}
		if len(p) > maxJSONPatchOperations {
			return nil, nil, apierrors.NewRequestEntityTooLargeError(fmt.Sprintf("The allowed maximum operations in a JSON patch is %d, got %d", maxJSONPatchOperations, len(p)))
		}
		patched, err = guard(func() ([]byte, error) { return p.Apply(original) })
		if err != nil {
			return nil, nil, apierrors.NewGenericServerResponse(http.StatusUnprocessableEntity, "", ep.groupResource(), "", err.Error(), 0, false)
		}
	case types.MergePatchType:
		if !json.Valid(patch) {
			return nil, nil, apierrors.NewBadRequest("error decoding patch: invalid JSON")
		}
		patched, err = guard(func() ([]byte, error) { return jsonpatch.MergePatch(original, patch) })
		if err != nil {
			return nil, nil, apierrors.NewBadRequest(err.Error())
		}
	case types.StrategicMergePatchType:
		var patchMap map[string]interface{}
		if err := json.Unmarshal(patch, &patchMap); err != nil {
			return nil, nil, apierrors.NewBadRequest(fmt.Sprintf("error decoding patch: %v", err))
		}
		patched, err = guard(func() ([]byte, error) { return strategicpatch.StrategicMergePatch(original, patch, ep.res.New()) })
		if err != nil {
			if errors.Is(err, mergepatch.ErrBadJSONDoc) || errors.Is(err, mergepatch.ErrBadPatchFormatForPrimitiveList) ||
				errors.Is(err, mergepatch.ErrBadPatchFormatForRetainKeys) || errors.Is(err, mergepatch.ErrBadPatchFormatForSetElementOrderList) {
				return nil, nil, apierrors.NewBadRequest(err.Error())
			}
			return nil, nil, apierrors.NewGenericServerResponse(http.StatusUnprocessableEntity, "", ep.groupResource(), "", err.Error(), 0, false)
		}
	}
	obj, warnings, err := s.decodeWith(info, ep, patched, opts)
	if err != nil {
		return nil, nil, err
	}
	return obj, warnings, nil
}

// applyPatch merges a server-side apply configuration into live.
func (s *Server) applyPatch(ep *endpoint, sub string, live runtime.Object, patch []byte, opts requestOptions) (runtime.Object, error) {
	fm := ep.fieldManager
	if sub == "status" {
		fm = ep.statusFieldManager
	}
	if fm == nil {
		return nil, apierrors.NewBadRequest("server-side apply is not supported for this resource")
	}
	applied := &unstructured.Unstructured{Object: map[string]interface{}{}}
	if err := yaml.Unmarshal(patch, &applied.Object); err != nil {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("error decoding YAML: %v", err))
	}
	if applied.Object == nil {
		return nil, apierrors.NewBadRequest("the apply configuration is empty")
	}
	gvk := ep.res.GroupVersionKind()
	if applied.GetAPIVersion() != gvk.GroupVersion().String() || applied.GetKind() != gvk.Kind {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("the apply configuration must have apiVersion %q and kind %q, got %q and %q",
			gvk.GroupVersion().String(), gvk.Kind, applied.GetAPIVersion(), applied.GetKind()))
	}
	la, _ := meta.Accessor(live)
	if n := applied.GetName(); n != "" && n != la.GetName() {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("the name of the object (%s) does not match the name on the URL (%s)", n, la.GetName()))
	}
	if len(applied.GetManagedFields()) > 0 {
		return nil, apierrors.NewBadRequest("metadata.managedFields must be nil")
	}
	out, err := fm.Apply(live, applied, opts.fieldManager, opts.force)
	if err != nil {
		var apiStatus apierrors.APIStatus
		if errors.As(err, &apiStatus) {
			return nil, err
		}
		return nil, apierrors.NewBadRequest(err.Error())
	}
	out.GetObjectKind().SetGroupVersionKind(gvk)
	return out, nil
}

// guard runs a patch library call and turns a panic into an error: the
// libraries have panicked on malformed patches (a JSON patch "replace"
// without a value), and bad input must get a 4xx, never a crash.
func guard(apply func() ([]byte, error)) (out []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			out, err = nil, fmt.Errorf("invalid patch: %v", r)
		}
	}()
	return apply()
}
