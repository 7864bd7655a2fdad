package apiserver

import (
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/klog/v2"

	"github.com/skiff-project/skiff/pkg/storage"
)

// mediaType is the negotiated response format: a serializer plus the
// meta.k8s.io transformation the client asked for with "as=" (Table,
// PartialObjectMetadata[List], APIGroupDiscoveryList).
type mediaType struct {
	info    runtime.SerializerInfo
	as      string
	group   string
	version string
	raw     string // the accepted media type with its parameters
}

// negotiate picks the first acceptable media type of the Accept header.
// Unknown "as=" targets are skipped, so a client listing Table first and
// plain JSON second gets plain JSON when Table is not possible.
func (s *Server) negotiate(r *http.Request, allowAs func(as, g, v string) bool) (mediaType, error) {
	accept := r.Header.Get("Accept")
	if accept == "" {
		accept = "application/json"
	}
	for _, clause := range strings.Split(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(clause))
		if err != nil {
			continue
		}
		if mt == "*/*" || mt == "application/*" {
			mt = "application/json"
		}
		info, ok := runtime.SerializerInfoForMediaType(s.codecs.SupportedMediaTypes(), mt)
		if !ok {
			continue
		}
		as, g, v := params["as"], params["g"], params["v"]
		if as != "" && (allowAs == nil || !allowAs(as, g, v)) {
			continue
		}
		return mediaType{info: info, as: as, group: g, version: v, raw: strings.TrimSpace(clause)}, nil
	}
	return mediaType{}, apierrors.NewGenericServerResponse(http.StatusNotAcceptable, "", schema.GroupResource{}, "", fmt.Sprintf("only the following media types are accepted: %s", strings.Join(s.supportedMediaTypes(), ", ")), 0, false)
}

func (s *Server) supportedMediaTypes() []string {
	var out []string
	for _, i := range s.codecs.SupportedMediaTypes() {
		out = append(out, i.MediaType)
	}
	return out
}

// tableOrMeta reports whether as/g/v is a transformation the resource
// handlers implement.
func tableOrMeta(as, g, v string) bool {
	if g != "meta.k8s.io" || (v != "v1" && v != "v1beta1") {
		return false
	}
	switch as {
	case "Table", "PartialObjectMetadata", "PartialObjectMetadataList":
		return true
	}
	return false
}

// writeObject encodes obj with the negotiated serializer. obj must carry its
// TypeMeta.
func (s *Server) writeObject(w http.ResponseWriter, r *http.Request, code int, mt mediaType, obj runtime.Object) {
	data, err := runtime.Encode(mt.info.Serializer, obj)
	if err != nil {
		s.writeError(w, r, fmt.Errorf("encode response: %w", err))
		return
	}
	w.Header().Set("Content-Type", mt.info.MediaType)
	w.Header().Set("Cache-Control", "no-cache, private")
	w.WriteHeader(code)
	if r.Method != http.MethodHead {
		_, _ = w.Write(data)
	}
}

// writeError answers with a metav1.Status describing err, in JSON (or
// protobuf when that is all the client accepts).
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	status := toStatus(err)
	// Only internal errors are worth a log line; 503/504 are expected
	// (no kubelet yet, a watch cache catching up) and clients retry them.
	if status.Code == http.StatusInternalServerError {
		klog.ErrorS(err, "request failed", "method", r.Method, "path", r.URL.Path)
	}
	info, ok := runtime.SerializerInfoForMediaType(s.codecs.SupportedMediaTypes(), "application/json")
	if accept := r.Header.Get("Accept"); strings.HasPrefix(accept, "application/vnd.kubernetes.protobuf") && !strings.Contains(accept, "json") {
		info, ok = runtime.SerializerInfoForMediaType(s.codecs.SupportedMediaTypes(), "application/vnd.kubernetes.protobuf")
	}
	if !ok {
		http.Error(w, status.Message, int(status.Code))
		return
	}
	status.TypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "Status"}
	data, encErr := runtime.Encode(info.Serializer, status)
	if encErr != nil {
		http.Error(w, status.Message, int(status.Code))
		return
	}
	w.Header().Set("Content-Type", info.MediaType)
	w.Header().Set("Cache-Control", "no-cache, private")
	w.WriteHeader(int(status.Code))
	_, _ = w.Write(data)
}

// toStatus converts any error into the Status an upstream API server would
// send: API errors as they are, storage sentinels mapped by the caller
// beforehand, anything else as a 500.
func toStatus(err error) *metav1.Status {
	var apiStatus apierrors.APIStatus
	if errors.As(err, &apiStatus) {
		st := apiStatus.Status()
		return &st
	}
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		st := apierrors.NewRequestEntityTooLargeError(fmt.Sprintf("limit is %d", tooLarge.Limit)).ErrStatus
		return &st
	}
	st := apierrors.NewInternalError(err).ErrStatus
	return &st
}

// storageError maps a storage sentinel to the API error upstream returns
// for the same situation on resource gr / name.
func storageError(err error, gr schema.GroupResource, name string) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, storage.ErrNotFound):
		return apierrors.NewNotFound(gr, name)
	case errors.Is(err, storage.ErrKeyExists):
		return apierrors.NewAlreadyExists(gr, name)
	case errors.Is(err, storage.ErrConflict):
		return apierrors.NewConflict(gr, name, errors.New(conflictMessage))
	case errors.Is(err, storage.ErrExpired):
		return apierrors.NewResourceExpired(expiredMessage(err))
	case errors.Is(err, storage.ErrTooLargeResourceVersion):
		// Upstream's answer: a 504 with Retry-After 1 and the
		// ResourceVersionTooLarge cause, which client-go retries.
		st := apierrors.NewTimeoutError(fmt.Sprintf("Too large resource version: %v", err), 1)
		st.ErrStatus.Details.Causes = []metav1.StatusCause{{Type: metav1.CauseTypeResourceVersionTooLarge, Message: "Too large resource version"}}
		return st
	case errors.Is(err, storage.ErrInvalid):
		return apierrors.NewBadRequest(err.Error())
	}
	var apiStatus apierrors.APIStatus
	if errors.As(err, &apiStatus) {
		return err
	}
	if strings.Contains(err.Error(), "request is too large") {
		return apierrors.NewRequestEntityTooLargeError(err.Error())
	}
	return apierrors.NewInternalError(err)
}

const conflictMessage = "the object has been modified; please apply your changes to the latest version and try again"

func expiredMessage(err error) string {
	msg := err.Error()
	if i := strings.Index(msg, "too old resource version"); i >= 0 {
		return msg[i:]
	}
	return "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list."
}

// unsupportedMediaType is upstream's 415 for a body type the endpoint
// cannot decode.
func unsupportedMediaType(ct string) error {
	return apierrors.NewGenericServerResponse(http.StatusUnsupportedMediaType, "", schema.GroupResource{}, "",
		fmt.Sprintf("the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf (got %q)", ct), 0, false)
}
