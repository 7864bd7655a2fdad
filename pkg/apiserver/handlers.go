package apiserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/skiff-project/skiff/pkg/storage"
)

// serveAPI routes everything under /api/ and /apis/: discovery documents
// for group and version paths, resource handlers for the rest.
func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request) {
	info := requestInfoFrom(r.Context())
	if info == nil {
		info = parseRequestInfo(r)
	}
	if !info.IsResource || info.Resource == "" {
		s.serveDiscoveryPath(w, r)
		return
	}
	if s.serveReview(w, r, info) {
		return
	}
	gvr := schema.GroupVersionResource{Group: info.Group, Version: info.Version, Resource: info.Resource}
	ep, ok := s.lookup(gvr)
	if !ok {
		s.writeError(w, r, notFoundPath())
		return
	}
	if !ep.res.Namespaced && info.Namespace != "" && info.Resource != "namespaces" {
		s.writeError(w, r, notFoundPath())
		return
	}
	if info.Resource == "bindings" {
		s.serveBinding(w, r, ep, info)
		return
	}
	if info.Resource == "componentstatuses" && info.Group == "" {
		s.serveComponentStatuses(w, r, ep, info)
		return
	}
	switch info.Subresource {
	case "":
		s.serveMain(w, r, ep, info)
	case "status":
		if !ep.res.HasSubresource("status") {
			s.writeError(w, r, notFoundPath())
			return
		}
		s.serveStatus(w, r, ep, info)
	case "scale":
		if !ep.res.HasSubresource("scale") {
			s.writeError(w, r, notFoundPath())
			return
		}
		s.serveScale(w, r, ep, info)
	case "binding":
		if ep.res.Resource != "pods" {
			s.writeError(w, r, notFoundPath())
			return
		}
		s.serveBinding(w, r, ep, info)
	case "eviction":
		if ep.res.Resource != "pods" {
			s.writeError(w, r, notFoundPath())
			return
		}
		s.serveEviction(w, r, ep, info)
	case "token":
		if ep.res.Resource != "serviceaccounts" || ep.res.Group != "" {
			s.writeError(w, r, notFoundPath())
			return
		}
		s.serveToken(w, r, info)
	case "finalize":
		if ep.res.Resource != "namespaces" {
			s.writeError(w, r, notFoundPath())
			return
		}
		s.serveFinalize(w, r, ep, info)
	default:
		if s.servePodStream(w, r, ep, info) {
			return
		}
		if ep.res.HasSubresource(strings.SplitN(info.Subresource, "/", 2)[0]) {
			s.writeError(w, r, apierrors.NewServiceUnavailable(fmt.Sprintf("%s/%s is not served yet: it needs a node agent connection", info.Resource, info.Subresource)))
			return
		}
		s.writeError(w, r, notFoundPath())
	}
}

func (s *Server) serveMain(w http.ResponseWriter, r *http.Request, ep *endpoint, info *requestInfo) {
	switch info.Verb {
	case "get":
		s.handleGet(w, r, ep, info)
	case "list":
		s.handleList(w, r, ep, info)
	case "watch":
		s.handleWatch(w, r, ep, info)
	case "create":
		if info.Name != "" {
			s.writeError(w, r, apierrors.NewMethodNotSupported(ep.groupResource(), "create"))
			return
		}
		s.handleCreate(w, r, ep, info)
	case "update":
		s.handleUpdate(w, r, ep, info, "")
	case "patch":
		s.handlePatch(w, r, ep, info, "")
	case "delete":
		s.handleDelete(w, r, ep, info)
	case "deletecollection":
		s.handleDeleteCollection(w, r, ep, info)
	default:
		s.writeError(w, r, apierrors.NewMethodNotSupported(ep.groupResource(), info.Verb))
	}
}

func (s *Server) serveStatus(w http.ResponseWriter, r *http.Request, ep *endpoint, info *requestInfo) {
	switch info.Verb {
	case "get":
		s.handleGet(w, r, ep, info)
	case "update":
		s.handleUpdate(w, r, ep, info, "status")
	case "patch":
		s.handlePatch(w, r, ep, info, "status")
	default:
		s.writeError(w, r, apierrors.NewMethodNotSupported(schema.GroupResource{Group: ep.res.Group, Resource: ep.res.Resource + "/status"}, info.Verb))
	}
}

// ---- get / list ----

func (s *Server) handleGet(w http.ResponseWriter, r *http.Request, ep *endpoint, info *requestInfo) {
	if !hasVerb(ep.res, "get") {
		s.writeError(w, r, apierrors.NewMethodNotSupported(ep.groupResource(), "get"))
		return
	}
	ctx, cancel := withTimeout(r.Context(), r)
	defer cancel()
	obj, err := s.getServed(ctx, ep, info.Namespace, info.Name)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.respond(w, r, ep, http.StatusOK, obj)
}

// getServed reads one object and returns a private served-version copy.
func (s *Server) getServed(ctx context.Context, ep *endpoint, ns, name string) (runtime.Object, error) {
	stored, err := ep.store.Get(ctx, ep.key(ns, name))
	if err != nil {
		return nil, storageError(err, ep.groupResource(), name)
	}
	return ep.toServed(stored)
}

// listPredicate parses the label and field selectors of q into a filter.
func (s *Server) listPredicate(ep *endpoint, q map[string][]string) (func(runtime.Object) bool, error) {
	get := func(k string) string {
		if v := q[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	lsel, err := labels.Parse(get("labelSelector"))
	if err != nil {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("unable to parse requirement: %v", err))
	}
	fsel, err := fields.ParseSelector(get("fieldSelector"))
	if err != nil {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("invalid field selector: %v", err))
	}
	if !fsel.Empty() {
		supported := ep.strategy.FieldSet(ep.newObject())
		for _, req := range fsel.Requirements() {
			if _, ok := supported[req.Field]; !ok {
				return nil, apierrors.NewBadRequest(fmt.Sprintf("field label not supported: %s", req.Field))
			}
		}
	}
	if lsel.Empty() && fsel.Empty() {
		return nil, nil
	}
	return func(obj runtime.Object) bool {
		a, err := meta.Accessor(obj)
		if err != nil {
			return false
		}
		if !lsel.Matches(labels.Set(a.GetLabels())) {
			return false
		}
		if fsel.Empty() {
			return true
		}
		served := obj
		if ep.conv != nil {
			if c, err := ep.conv.toServed(obj.DeepCopyObject()); err == nil {
				served = c
			}
		}
		return fsel.Matches(ep.strategy.FieldSet(served))
	}, nil
}

func (s *Server) handleList(w http.ResponseWriter, r *http.Request, ep *endpoint, info *requestInfo) {
	if !hasVerb(ep.res, "list") {
		s.writeError(w, r, apierrors.NewMethodNotSupported(ep.groupResource(), "list"))
		return
	}
	q := r.URL.Query()
	pred, err := s.listPredicate(ep, q)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	opts := storage.ListOptions{
		ResourceVersion:      q.Get("resourceVersion"),
		ResourceVersionMatch: metav1.ResourceVersionMatch(q.Get("resourceVersionMatch")),
		Continue:             q.Get("continue"),
		Predicate:            pred,
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			s.writeError(w, r, apierrors.NewBadRequest(fmt.Sprintf("invalid limit %q", v)))
			return
		}
		opts.Limit = n
	}
	ctx, cancel := withTimeout(r.Context(), r)
	defer cancel()
	res, err := ep.store.List(ctx, ep.listPrefix(info.Namespace), opts)
	if err != nil {
		s.writeError(w, r, storageError(err, ep.groupResource(), ""))
		return
	}
	s.respondList(w, r, ep, res)
}

// ---- create ----

// requestOptions are the query options shared by create, update and patch.
type requestOptions struct {
	dryRun          bool
	fieldManager    string
	fieldValidation string // Strict, Warn or Ignore
	force           bool
	// apply is set for server-side apply, whose field manager already
	// recorded managedFields: the Update bookkeeping must not run again.
	apply bool
}

func (s *Server) parseOptions(r *http.Request) (requestOptions, error) {
	q := r.URL.Query()
	o := requestOptions{fieldManager: q.Get("fieldManager"), fieldValidation: q.Get("fieldValidation"), force: isTrue(q, "force")}
	for _, d := range q["dryRun"] {
		if d != "All" {
			return o, apierrors.NewBadRequest(fmt.Sprintf("Invalid dry run value: %q, only %q is supported", d, "All"))
		}
		o.dryRun = true
	}
	switch o.fieldValidation {
	case "":
		o.fieldValidation = "Warn"
	case "Strict", "Warn", "Ignore":
	default:
		return o, apierrors.NewBadRequest(fmt.Sprintf("fieldValidation must be one of \"Ignore\", \"Warn\", or \"Strict\", got %q", o.fieldValidation))
	}
	if o.fieldManager == "" {
		o.fieldManager = managerFromUserAgent(r.UserAgent())
	}
	if len(o.fieldManager) > 128 {
		return o, apierrors.NewBadRequest("fieldManager: Too long: may not be more than 128 bytes")
	}
	return o, nil
}

// managerFromUserAgent derives a field manager name from the User-Agent
// ("kubectl/v1.32.0 (linux/amd64) ..." → "kubectl"), as upstream does.
func managerFromUserAgent(ua string) string {
	if i := strings.Index(ua, "/"); i >= 0 {
		ua = ua[:i]
	}
	if ua == "" {
		return "unknown"
	}
	if len(ua) > 128 {
		ua = ua[:128]
	}
	return ua
}

func readBody(r *http.Request) ([]byte, error) {
	if r.Body == nil {
		return nil, apierrors.NewBadRequest("a request body is required")
	}
	data, err := io.ReadAll(r.Body)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, apierrors.NewRequestEntityTooLargeError(fmt.Sprintf("limit is %d", tooLarge.Limit))
		}
		return nil, apierrors.NewBadRequest(fmt.Sprintf("read request body: %v", err))
	}
	return data, nil
}

// decodeBody decodes a request body into a new served object of ep,
// honouring fieldValidation. It returns warnings for unknown or duplicate
// fields when validation is Warn.
func (s *Server) decodeBody(r *http.Request, ep *endpoint, body []byte, opts requestOptions) (runtime.Object, []string, error) {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		ct = "application/json"
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return nil, nil, unsupportedMediaType(ct)
	}
	info, ok := runtime.SerializerInfoForMediaType(s.codecs.SupportedMediaTypes(), mt)
	if !ok {
		return nil, nil, unsupportedMediaType(ct)
	}
	return s.decodeWith(info, ep, body, opts)
}

func (s *Server) decodeWith(info runtime.SerializerInfo, ep *endpoint, body []byte, opts requestOptions) (runtime.Object, []string, error) {
	decoder := runtime.Decoder(info.Serializer)
	if opts.fieldValidation != "Ignore" && info.StrictSerializer != nil {
		decoder = info.StrictSerializer
	}
	gvk := ep.res.GroupVersionKind()
	into := ep.newObject()
	obj, got, err := decoder.Decode(body, &gvk, into)
	var warnings []string
	if err != nil {
		if runtime.IsStrictDecodingError(err) && obj != nil {
			if opts.fieldValidation == "Strict" {
				return nil, nil, apierrors.NewBadRequest(fmt.Sprintf("%s in version %q cannot be handled as a %s: %v", gvk.Kind, gvk.Version, gvk.Kind, err))
			}
			var sde interface{ Errors() []error }
			if errors.As(err, &sde) {
				for _, e := range sde.Errors() {
					warnings = append(warnings, e.Error())
				}
			}
		} else {
			return nil, nil, apierrors.NewBadRequest(fmt.Sprintf("%s in version %q cannot be handled as a %s: %v", gvk.Kind, gvk.Version, gvk.Kind, err))
		}
	}
	if got != nil && (got.Group != gvk.Group || got.Version != gvk.Version) {
		return nil, nil, apierrors.NewBadRequest(fmt.Sprintf("the API version in the data (%s) does not match the expected API version (%s)", got.GroupVersion(), gvk.GroupVersion()))
	}
	if got != nil && got.Kind != gvk.Kind {
		return nil, nil, apierrors.NewBadRequest(fmt.Sprintf("the kind in the data (%s) does not match the expected kind (%s)", got.Kind, gvk.Kind))
	}
	if u, ok := obj.(*unstructured.Unstructured); ok {
		if u.Object == nil {
			return nil, nil, apierrors.NewBadRequest("the request body is empty")
		}
		u.SetGroupVersionKind(gvk)
	} else {
		obj.GetObjectKind().SetGroupVersionKind(gvk)
	}
	return obj, warnings, nil
}

// readObject reads a create/update request: its options and its body
// decoded into a new served object.
func (s *Server) readObject(r *http.Request, ep *endpoint) (runtime.Object, []string, requestOptions, error) {
	opts, err := s.parseOptions(r)
	if err != nil {
		return nil, nil, opts, err
	}
	body, err := readBody(r)
	if err != nil {
		return nil, nil, opts, err
	}
	obj, warnings, err := s.decodeBody(r, ep, body, opts)
	return obj, warnings, opts, err
}

func addWarnings(w http.ResponseWriter, warnings []string) {
	for _, msg := range warnings {
		w.Header().Add("Warning", fmt.Sprintf("299 - %s", strconv.Quote(msg)))
	}
}

func (s *Server) handleCreate(w http.ResponseWriter, r *http.Request, ep *endpoint, info *requestInfo) {
	obj, warnings, opts, err := s.readObject(r, ep)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ctx, cancel := withTimeout(r.Context(), r)
	defer cancel()
	out, err := s.create(ctx, ep, info.Namespace, obj, opts)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	addWarnings(w, warnings)
	s.respond(w, r, ep, http.StatusCreated, out)
}

// create runs the whole create path for a served object: metadata, defaults,
// admission, validation, managed fields, storage. It mutates obj.
func (s *Server) create(ctx context.Context, ep *endpoint, ns string, obj runtime.Object, opts requestOptions) (runtime.Object, error) {
	a, err := meta.Accessor(obj)
	if err != nil {
		return nil, apierrors.NewBadRequest(err.Error())
	}
	if err := checkNamespace(ep, a, ns); err != nil {
		return nil, err
	}
	if a.GetName() == "" && a.GetGenerateName() != "" {
		a.SetName(generateName(a.GetGenerateName()))
	}
	a.SetUID(types.UID(uuid.NewString()))
	a.SetCreationTimestamp(metav1.Now())
	a.SetDeletionTimestamp(nil)
	a.SetDeletionGracePeriodSeconds(nil)
	a.SetResourceVersion("")
	a.SetSelfLink("")
	if ep.custom == nil {
		s.scheme.Default(obj)
	}
	ep.strategy.PrepareForCreate(obj)
	if err := s.admission.admit(ctx, ep, "create", obj, nil, opts.dryRun); err != nil {
		return nil, err
	}
	if errs := ep.strategy.Validate(obj); len(errs) > 0 {
		return nil, apierrors.NewInvalid(ep.groupKind(), a.GetName(), errs)
	}
	if err := ep.validateCustom(obj); err != nil {
		return nil, err
	}
	if err := s.admission.validate(ctx, ep, "create", obj, nil); err != nil {
		return nil, err
	}
	if ep.fieldManager != nil && !opts.apply {
		updated, err := ep.fieldManager.Update(ep.newObject(), obj, opts.fieldManager)
		if err != nil {
			return nil, apierrors.NewInternalError(fmt.Errorf("update managed fields: %w", err))
		}
		obj = updated
	}
	alloc, err := s.allocate(ctx, ep, obj, nil, opts.dryRun)
	if err != nil {
		return nil, err
	}
	if opts.dryRun {
		alloc.revert()
		return obj, nil
	}
	stored, err := ep.toStorage(obj)
	if err != nil {
		alloc.revert()
		return nil, apierrors.NewInternalError(err)
	}
	a, _ = meta.Accessor(obj)
	created, err := ep.store.Create(ctx, ep.key(a.GetNamespace(), a.GetName()), stored)
	if err != nil {
		alloc.revert()
		return nil, storageError(err, ep.groupResource(), a.GetName())
	}
	alloc.commit()
	s.afterWrite(ep, created)
	return ep.toServed(created)
}

func generateName(base string) string {
	const maxGeneratedNameLength = 58 // 63 - 5 random characters
	if len(base) > maxGeneratedNameLength {
		base = base[:maxGeneratedNameLength]
	}
	return base + utilrand.String(5)
}

// checkNamespace reconciles the object's namespace with the request's, as
// upstream's BeforeCreate does.
func checkNamespace(ep *endpoint, a metav1.Object, ns string) error {
	if !ep.res.Namespaced {
		a.SetNamespace("")
		return nil
	}
	switch {
	case a.GetNamespace() == "":
		a.SetNamespace(ns)
	case ns != "" && a.GetNamespace() != ns:
		return apierrors.NewBadRequest("the namespace of the provided object does not match the namespace sent on the request")
	}
	if a.GetNamespace() == "" {
		return apierrors.NewBadRequest("the namespace of the object must be set")
	}
	return nil
}

// ---- update ----

func (s *Server) handleUpdate(w http.ResponseWriter, r *http.Request, ep *endpoint, info *requestInfo, sub string) {
	if !hasVerb(ep.res, "update") {
		s.writeError(w, r, apierrors.NewMethodNotSupported(ep.groupResource(), "update"))
		return
	}
	obj, warnings, opts, err := s.readObject(r, ep)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	a, err := meta.Accessor(obj)
	if err != nil {
		s.writeError(w, r, apierrors.NewBadRequest(err.Error()))
		return
	}
	if a.GetName() == "" {
		a.SetName(info.Name)
	}
	if a.GetName() != info.Name {
		s.writeError(w, r, apierrors.NewBadRequest(fmt.Sprintf("the name of the object (%s) does not match the name on the URL (%s)", a.GetName(), info.Name)))
		return
	}
	if err := checkNamespace(ep, a, info.Namespace); err != nil {
		s.writeError(w, r, err)
		return
	}
	ctx, cancel := withTimeout(r.Context(), r)
	defer cancel()
	out, created, err := s.update(ctx, ep, info.Namespace, info.Name, sub, opts, func(cur runtime.Object) (runtime.Object, error) {
		return obj.DeepCopyObject(), nil
	}, func() (runtime.Object, error) {
		if !ep.strategy.AllowCreateOnUpdate() || sub != "" {
			return nil, nil
		}
		return obj.DeepCopyObject(), nil
	})
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

// update is the one read-modify-write path behind PUT, PATCH, status,
// scale, binding, finalize and graceful deletion. mutate receives a private
// served copy of the current object and returns the desired object;
// createFn, when the object is missing, returns the object to create (nil
// means 404). Deleting objects whose last finalizer was removed happens
// here too.
func (s *Server) update(ctx context.Context, ep *endpoint, ns, name, sub string, opts requestOptions,
	mutate func(cur runtime.Object) (runtime.Object, error), createFn func() (runtime.Object, error)) (runtime.Object, bool, error) {
	key := ep.key(ns, name)
	var result runtime.Object
	var finalDelete bool
	var alloc *allocation
	doUpdate := func(curStored runtime.Object) (runtime.Object, error) {
		cur, err := ep.toServed(curStored)
		if err != nil {
			return nil, err
		}
		obj, err := mutate(cur.DeepCopyObject())
		if err != nil {
			return nil, err
		}
		newObj, err := s.prepareUpdate(ctx, ep, obj, cur, sub, opts)
		if err != nil {
			return nil, err
		}
		alloc.revert()
		alloc, err = s.allocate(ctx, ep, newObj, cur, opts.dryRun)
		if err != nil {
			return nil, err
		}
		na, _ := meta.Accessor(newObj)
		finalDelete = na.GetDeletionTimestamp() != nil && len(na.GetFinalizers()) == 0 && namespaceFinalized(newObj) && !podAwaitingKubelet(newObj)
		result = newObj
		if opts.dryRun {
			// Do not write: fail the storage update with a sentinel.
			return nil, errDryRun
		}
		return ep.toStorage(newObj)
	}
	updated, err := ep.store.Update(ctx, key, doUpdate)
	switch {
	case errors.Is(err, errDryRun):
		return result, false, nil
	case errors.Is(err, storage.ErrNotFound) && createFn != nil:
		alloc.revert()
		obj, cerr := createFn()
		if cerr != nil {
			return nil, false, cerr
		}
		if obj == nil {
			return nil, false, apierrors.NewNotFound(ep.groupResource(), name)
		}
		created, cerr := s.create(ctx, ep, ns, obj, opts)
		return created, cerr == nil, cerr
	case err != nil:
		alloc.revert()
		var apiStatus apierrors.APIStatus
		if errors.As(err, &apiStatus) {
			return nil, false, err
		}
		return nil, false, storageError(err, ep.groupResource(), name)
	}
	alloc.commit()
	if finalDelete {
		a, _ := meta.Accessor(updated)
		rv := a.GetResourceVersion()
		deleted, err := ep.store.Delete(ctx, key, func(cur runtime.Object) error {
			ca, _ := meta.Accessor(cur)
			if ca.GetResourceVersion() != rv {
				return errConcurrentChange
			}
			return nil
		})
		if err == nil {
			s.afterDelete(ep, deleted)
			out, err := ep.toServed(deleted)
			return out, false, err
		}
		if !errors.Is(err, errConcurrentChange) && !errors.Is(err, storage.ErrNotFound) {
			return nil, false, storageError(err, ep.groupResource(), name)
		}
	}
	s.afterWrite(ep, updated)
	out, err := ep.toServed(updated)
	return out, false, err
}

var (
	errDryRun           = errors.New("dry run: not written")
	errConcurrentChange = errors.New("object changed concurrently")
)

// prepareUpdate turns the client's desired object into what will be stored:
// immutable metadata kept, subresource rules, defaults, admission,
// validation, managed fields. cur is the current served object.
func (s *Server) prepareUpdate(ctx context.Context, ep *endpoint, obj, cur runtime.Object, sub string, opts requestOptions) (runtime.Object, error) {
	na, err := meta.Accessor(obj)
	if err != nil {
		return nil, apierrors.NewBadRequest(err.Error())
	}
	ca, _ := meta.Accessor(cur)
	if rv := na.GetResourceVersion(); rv != "" && rv != ca.GetResourceVersion() {
		return nil, apierrors.NewConflict(ep.groupResource(), ca.GetName(), errors.New(conflictMessage))
	}
	if uid := na.GetUID(); uid != "" && uid != ca.GetUID() {
		return nil, apierrors.NewConflict(ep.groupResource(), ca.GetName(),
			fmt.Errorf("Precondition failed: UID in precondition: %v, UID in object meta: %v", uid, ca.GetUID()))
	}
	na.SetUID(ca.GetUID())
	na.SetName(ca.GetName())
	na.SetNamespace(ca.GetNamespace())
	na.SetCreationTimestamp(ca.GetCreationTimestamp())
	na.SetResourceVersion(ca.GetResourceVersion())
	na.SetSelfLink("")
	if ca.GetDeletionTimestamp() != nil || na.GetDeletionTimestamp() == nil {
		// Only the server's delete path may set deletionTimestamp; once set
		// it never changes through an update.
		na.SetDeletionTimestamp(ca.GetDeletionTimestamp())
		na.SetDeletionGracePeriodSeconds(ca.GetDeletionGracePeriodSeconds())
	}
	if na.GetGenerateName() == "" {
		na.SetGenerateName(ca.GetGenerateName())
	}
	if ep.custom == nil {
		s.scheme.Default(obj)
	}
	fm := ep.fieldManager
	// internal is true for changes the server itself constructs (binding,
	// scale, finalize, graceful deletion): they may touch status and skip
	// the user-facing immutability rules.
	internal := sub != "" && sub != "status"
	switch {
	case sub == "status":
		ep.strategy.PrepareForStatusUpdate(obj, cur)
		fm = ep.statusFieldManager
	case internal:
		ep.strategy.PrepareForInternalUpdate(obj, cur)
	default:
		ep.strategy.PrepareForUpdate(obj, cur)
	}
	if sub == "" || sub == "status" {
		if err := s.admission.admit(ctx, ep, "update", obj, cur, opts.dryRun); err != nil {
			return nil, err
		}
	}
	var errs field.ErrorList
	switch {
	case sub == "status":
		errs = ep.strategy.ValidateStatusUpdate(obj, cur)
	case internal:
		// The stored object was valid and the server made the change.
	default:
		errs = ep.strategy.ValidateUpdate(obj, cur)
	}
	if len(errs) > 0 {
		return nil, apierrors.NewInvalid(ep.groupKind(), ca.GetName(), errs)
	}
	if err := ep.validateCustom(obj); err != nil {
		return nil, err
	}
	if err := s.admission.validate(ctx, ep, "update", obj, cur); err != nil {
		return nil, err
	}
	if fm != nil && opts.fieldManager != "" && !opts.apply {
		updated, err := fm.Update(cur, obj, opts.fieldManager)
		if err != nil {
			return nil, apierrors.NewInternalError(fmt.Errorf("update managed fields: %w", err))
		}
		obj = updated
	}
	return obj, nil
}

// namespaceFinalized reports whether obj is not a namespace or is one whose
// spec.finalizers are all gone (so a deleting namespace can be removed).
func namespaceFinalized(obj runtime.Object) bool {
	ns, ok := obj.(*corev1.Namespace)
	return !ok || len(ns.Spec.Finalizers) == 0
}

// podAwaitingKubelet reports whether obj is a pod in graceful termination
// that its kubelet must still finish (it deletes with grace 0).
func podAwaitingKubelet(obj runtime.Object) bool {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return false
	}
	g := pod.DeletionGracePeriodSeconds
	return g != nil && *g > 0 && pod.Spec.NodeName != "" &&
		pod.Status.Phase != corev1.PodSucceeded && pod.Status.Phase != corev1.PodFailed
}

// ---- delete ----

func (s *Server) parseDeleteOptions(r *http.Request) (*metav1.DeleteOptions, error) {
	opts := &metav1.DeleteOptions{}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("read request body: %v", err))
	}
	if len(strings.TrimSpace(string(body))) > 0 {
		info, ok := runtime.SerializerInfoForMediaType(s.codecs.SupportedMediaTypes(), "application/json")
		if ct := r.Header.Get("Content-Type"); ct != "" {
			if mt, _, err := mime.ParseMediaType(ct); err == nil {
				if i, found := runtime.SerializerInfoForMediaType(s.codecs.SupportedMediaTypes(), mt); found {
					info, ok = i, true
				}
			}
		}
		if !ok {
			return nil, unsupportedMediaType(r.Header.Get("Content-Type"))
		}
		gvk := metav1.SchemeGroupVersion.WithKind("DeleteOptions")
		if _, _, err := info.Serializer.Decode(body, &gvk, opts); err != nil {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("invalid delete options: %v", err))
		}
	}
	q := r.URL.Query()
	if v := q.Get("gracePeriodSeconds"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("invalid gracePeriodSeconds %q", v))
		}
		opts.GracePeriodSeconds = &n
	}
	if v := q.Get("propagationPolicy"); v != "" {
		p := metav1.DeletionPropagation(v)
		opts.PropagationPolicy = &p
	}
	if v := q.Get("orphanDependents"); v != "" {
		b := v == "true"
		opts.OrphanDependents = &b
	}
	if d := q["dryRun"]; len(d) > 0 {
		opts.DryRun = d
	}
	for _, d := range opts.DryRun {
		if d != "All" {
			return nil, apierrors.NewBadRequest(fmt.Sprintf("Invalid dry run value: %q, only %q is supported", d, "All"))
		}
	}
	if p := opts.PropagationPolicy; p != nil {
		switch *p {
		case metav1.DeletePropagationBackground, metav1.DeletePropagationForeground, metav1.DeletePropagationOrphan:
		default:
			return nil, apierrors.NewBadRequest(fmt.Sprintf("propagationPolicy: Unsupported value: %q: supported values: \"Foreground\", \"Background\", \"Orphan\"", *p))
		}
	}
	if opts.GracePeriodSeconds != nil && *opts.GracePeriodSeconds < 0 {
		zero := int64(0)
		opts.GracePeriodSeconds = &zero
	}
	return opts, nil
}

func (s *Server) handleDelete(w http.ResponseWriter, r *http.Request, ep *endpoint, info *requestInfo) {
	if !hasVerb(ep.res, "delete") {
		s.writeError(w, r, apierrors.NewMethodNotSupported(ep.groupResource(), "delete"))
		return
	}
	opts, err := s.parseDeleteOptions(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ctx, cancel := withTimeout(r.Context(), r)
	defer cancel()
	out, pending, err := s.delete(ctx, ep, info.Namespace, info.Name, opts)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	code := http.StatusOK
	if pending {
		code = http.StatusAccepted
		if ep.res.Resource == "pods" || ep.res.Resource == "namespaces" {
			code = http.StatusOK
		}
		s.respond(w, r, ep, code, out)
		return
	}
	if ep.res.Resource == "pods" {
		s.respond(w, r, ep, code, out)
		return
	}
	a, _ := meta.Accessor(out)
	s.writeStatusSuccess(w, r, ep, a)
}

func (s *Server) writeStatusSuccess(w http.ResponseWriter, r *http.Request, ep *endpoint, a metav1.Object) {
	st := &metav1.Status{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Status"},
		Status:   metav1.StatusSuccess,
		Details:  &metav1.StatusDetails{Name: a.GetName(), Group: ep.res.Group, Kind: ep.res.Resource, UID: a.GetUID()},
	}
	mt, err := s.negotiate(r, nil)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeObject(w, r, http.StatusOK, mt, st)
}

// delete deletes one object. pending is true when the object still exists
// afterwards (graceful deletion or finalizers), in which case out is its
// new state.
func (s *Server) delete(ctx context.Context, ep *endpoint, ns, name string, opts *metav1.DeleteOptions) (out runtime.Object, pending bool, err error) {
	dryRun := len(opts.DryRun) > 0
	cur, err := s.getServed(ctx, ep, ns, name)
	if err != nil {
		return nil, false, err
	}
	ca, _ := meta.Accessor(cur)
	if p := opts.Preconditions; p != nil {
		if p.UID != nil && *p.UID != ca.GetUID() {
			return nil, false, apierrors.NewConflict(ep.groupResource(), name,
				fmt.Errorf("Precondition failed: UID in precondition: %v, UID in object meta: %v", *p.UID, ca.GetUID()))
		}
		if p.ResourceVersion != nil && *p.ResourceVersion != ca.GetResourceVersion() {
			return nil, false, apierrors.NewConflict(ep.groupResource(), name,
				fmt.Errorf("Precondition failed: ResourceVersion in precondition: %v, ResourceVersion in object meta: %v", *p.ResourceVersion, ca.GetResourceVersion()))
		}
	}
	if err := s.admission.admitDelete(ctx, ep, cur); err != nil {
		return nil, false, err
	}
	grace := gracePeriod(cur, opts)
	finalizers := deletionFinalizers(ca.GetFinalizers(), opts)
	_, isNamespace := cur.(*corev1.Namespace)
	if grace > 0 || len(finalizers) > 0 || (isNamespace && !namespaceFinalized(cur)) {
		ropts := requestOptions{dryRun: dryRun}
		obj, _, err := s.update(ctx, ep, ns, name, "delete", ropts, func(c runtime.Object) (runtime.Object, error) {
			a, _ := meta.Accessor(c)
			if p := opts.Preconditions; p != nil && p.ResourceVersion != nil && *p.ResourceVersion != a.GetResourceVersion() {
				return nil, apierrors.NewConflict(ep.groupResource(), name, errors.New(conflictMessage))
			}
			now := metav1.Now()
			if dt := a.GetDeletionTimestamp(); dt == nil {
				ts := metav1.NewTime(now.Add(time.Duration(grace) * time.Second))
				a.SetDeletionTimestamp(&ts)
				a.SetDeletionGracePeriodSeconds(&grace)
			} else if g := a.GetDeletionGracePeriodSeconds(); g != nil && grace < *g {
				// A shorter grace period may replace a longer one.
				ts := metav1.NewTime(now.Add(time.Duration(grace) * time.Second))
				a.SetDeletionTimestamp(&ts)
				a.SetDeletionGracePeriodSeconds(&grace)
			}
			a.SetFinalizers(deletionFinalizers(a.GetFinalizers(), opts))
			if nsObj, ok := c.(*corev1.Namespace); ok {
				nsObj.Status.Phase = corev1.NamespaceTerminating
			}
			return c, nil
		}, nil)
		if err != nil {
			return nil, false, err
		}
		// update deletes the object itself once nothing holds it back.
		if a, _ := meta.Accessor(obj); a != nil {
			if _, err := ep.store.Get(ctx, ep.key(ns, name)); errors.Is(err, storage.ErrNotFound) && !dryRun {
				return obj, false, nil
			}
		}
		return obj, true, nil
	}
	if dryRun {
		return cur, false, nil
	}
	rv := ca.GetResourceVersion()
	deleted, err := ep.store.Delete(ctx, ep.key(ns, name), func(c runtime.Object) error {
		a, _ := meta.Accessor(c)
		if a.GetResourceVersion() != rv {
			return apierrors.NewConflict(ep.groupResource(), name, errors.New(conflictMessage))
		}
		return nil
	})
	if err != nil {
		return nil, false, storageError(err, ep.groupResource(), name)
	}
	s.afterDelete(ep, deleted)
	out, err = ep.toServed(deleted)
	return out, false, err
}

// gracePeriod returns the deletion grace period for obj: only pods bound
// to a node and still running have one (spec.terminationGracePeriodSeconds
// unless the request says otherwise), as upstream.
func gracePeriod(obj runtime.Object, opts *metav1.DeleteOptions) int64 {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return 0
	}
	if pod.Spec.NodeName == "" || pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
		return 0
	}
	if opts.GracePeriodSeconds != nil {
		return *opts.GracePeriodSeconds
	}
	if pod.Spec.TerminationGracePeriodSeconds != nil {
		return *pod.Spec.TerminationGracePeriodSeconds
	}
	return corev1.DefaultTerminationGracePeriodSeconds
}

// deletionFinalizers adds the garbage collector's finalizer that records
// the request's propagation policy: foregroundDeletion or orphan.
func deletionFinalizers(existing []string, opts *metav1.DeleteOptions) []string {
	out := append([]string(nil), existing...)
	policy := metav1.DeletePropagationBackground
	if opts.PropagationPolicy != nil {
		policy = *opts.PropagationPolicy
	} else if opts.OrphanDependents != nil && *opts.OrphanDependents {
		policy = metav1.DeletePropagationOrphan
	}
	add := func(f string) {
		for _, e := range out {
			if e == f {
				return
			}
		}
		out = append(out, f)
	}
	switch policy {
	case metav1.DeletePropagationForeground:
		add(metav1.FinalizerDeleteDependents)
	case metav1.DeletePropagationOrphan:
		add(metav1.FinalizerOrphanDependents)
	}
	return out
}

func (s *Server) handleDeleteCollection(w http.ResponseWriter, r *http.Request, ep *endpoint, info *requestInfo) {
	if !hasVerb(ep.res, "deletecollection") {
		s.writeError(w, r, apierrors.NewMethodNotSupported(ep.groupResource(), "deletecollection"))
		return
	}
	opts, err := s.parseDeleteOptions(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	pred, err := s.listPredicate(ep, r.URL.Query())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ctx, cancel := withTimeout(r.Context(), r)
	defer cancel()
	res, err := ep.store.List(ctx, ep.listPrefix(info.Namespace), storage.ListOptions{Predicate: pred})
	if err != nil {
		s.writeError(w, r, storageError(err, ep.groupResource(), ""))
		return
	}
	var deleted []runtime.Object
	for _, item := range res.Items {
		a, _ := meta.Accessor(item)
		out, _, err := s.delete(ctx, ep, a.GetNamespace(), a.GetName(), opts)
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		deleted = append(deleted, out)
	}
	list := ep.newList()
	if err := meta.SetList(list, deleted); err != nil {
		s.writeError(w, r, apierrors.NewInternalError(err))
		return
	}
	s.respond(w, r, ep, http.StatusOK, list)
}

// fieldErrorList is a one-error list for an invalid value at a dotted path.
func fieldErrorList(path string, value interface{}, detail string) field.ErrorList {
	return field.ErrorList{field.Invalid(field.NewPath(path), value, detail)}
}
