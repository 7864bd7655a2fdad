package apiserver

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/skiff-project/skiff/pkg/storage"
)

// minWatchTimeout is the shortest server-chosen watch duration; watches
// without timeoutSeconds last a random time between it and twice it, so
// that reconnects of many clients spread out, as upstream does.
const minWatchTimeout = 30 * time.Minute

func (s *Server) handleWatch(w http.ResponseWriter, r *http.Request, ep *endpoint, info *requestInfo) {
	if !hasVerb(ep.res, "watch") {
		s.writeError(w, r, apierrors.NewMethodNotSupported(ep.groupResource(), "watch"))
		return
	}
	q := r.URL.Query()
	pred, err := s.listPredicate(ep, q)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	mt, err := s.negotiate(r, tableOrMeta)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if mt.info.StreamSerializer == nil {
		s.writeError(w, r, apierrors.NewGenericServerResponse(http.StatusNotAcceptable, "watch", ep.groupResource(), "",
			fmt.Sprintf("%s does not support streaming; use application/json or application/vnd.kubernetes.protobuf", mt.info.MediaType), 0, false))
		return
	}
	opts := storage.WatchOptions{
		ResourceVersion: q.Get("resourceVersion"),
		Predicate:       pred,
		AllowBookmarks:  isTrue(q, "allowWatchBookmarks"),
	}
	if v := q.Get("sendInitialEvents"); v != "" {
		b := v == "true"
		opts.SendInitialEvents = &b
		if b && !opts.AllowBookmarks {
			s.writeError(w, r, apierrors.NewInvalid(schema.GroupKind{Group: "meta.k8s.io", Kind: "ListOptions"}, "",
				field.ErrorList{field.Forbidden(field.NewPath("sendInitialEvents"), "sendInitialEvents is forbidden for watch unless allowWatchBookmarks=true")}))
			return
		}
	}
	timeout := minWatchTimeout + time.Duration(rand.Int64N(int64(minWatchTimeout)))
	if v := q.Get("timeoutSeconds"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			s.writeError(w, r, apierrors.NewBadRequest(fmt.Sprintf("invalid timeoutSeconds %q", v)))
			return
		}
		timeout = time.Duration(n) * time.Second
	}
	prefix := ep.listPrefix(info.Namespace)
	if info.Name != "" {
		prefix = ep.key(info.Namespace, info.Name)
	}
	ctx := r.Context()
	wi, err := ep.store.Watch(ctx, prefix, opts)
	if err != nil {
		s.writeError(w, r, storageError(err, ep.groupResource(), info.Name))
		return
	}
	defer wi.Stop()

	flusher, _ := w.(http.Flusher)
	contentType := mt.info.MediaType
	if mt.info.MediaType == "application/vnd.kubernetes.protobuf" {
		contentType += ";stream=watch"
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Cache-Control", "no-cache, private")
	w.WriteHeader(http.StatusOK)
	if flusher != nil {
		flusher.Flush()
	}
	framer := mt.info.StreamSerializer.Framer.NewFrameWriter(w)
	outer := mt.info.StreamSerializer.Serializer
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	first := true
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
			return
		case ev, ok := <-wi.ResultChan():
			if !ok {
				return
			}
			obj, err := s.watchObject(r, ep, mt, ev, first)
			if err != nil {
				st := toStatus(err)
				st.TypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "Status"}
				obj, ev.Type = st, watch.Error
			}
			if ev.Type != watch.Bookmark && ev.Type != watch.Error {
				first = false
			}
			raw, err := runtime.Encode(mt.info.Serializer, obj)
			if err != nil {
				return
			}
			if err := outer.Encode(&metav1.WatchEvent{Type: string(ev.Type), Object: runtime.RawExtension{Raw: raw}}, framer); err != nil {
				return
			}
			if len(wi.ResultChan()) == 0 && flusher != nil {
				flusher.Flush()
			}
		}
	}
}

// watchObject turns a storage event's object into what goes on the wire.
func (s *Server) watchObject(r *http.Request, ep *endpoint, mt mediaType, ev watch.Event, first bool) (runtime.Object, error) {
	if ev.Type == watch.Error {
		if st, ok := ev.Object.(*metav1.Status); ok {
			out := st.DeepCopy()
			out.TypeMeta = metav1.TypeMeta{APIVersion: "v1", Kind: "Status"}
			return out, nil
		}
		return nil, apierrors.NewInternalError(fmt.Errorf("watch error: %v", ev.Object))
	}
	obj := ev.Object
	if ep.conv != nil && ev.Type != watch.Bookmark {
		c, err := ep.conv.toServed(obj.DeepCopyObject())
		if err != nil {
			return nil, err
		}
		obj = c
	}
	if obj.GetObjectKind().GroupVersionKind() != ep.res.GroupVersionKind() {
		// Objects from the watch cache are shared: copy before setting the kind.
		obj = obj.DeepCopyObject()
		obj.GetObjectKind().SetGroupVersionKind(ep.res.GroupVersionKind())
	}
	switch mt.as {
	case "Table":
		if ev.Type == watch.Bookmark {
			a, err := meta.Accessor(obj)
			if err != nil {
				return nil, err
			}
			t := &metav1.Table{TypeMeta: metav1.TypeMeta{APIVersion: "meta.k8s.io/" + mt.version, Kind: "Table"}}
			t.ResourceVersion = a.GetResourceVersion()
			return t, nil
		}
		t, err := s.table(r, ep, mt, []runtime.Object{obj}, first)
		if err != nil {
			return nil, err
		}
		if a, err := meta.Accessor(obj); err == nil {
			t.ResourceVersion = a.GetResourceVersion()
		}
		return t, nil
	case "PartialObjectMetadata", "PartialObjectMetadataList":
		return partialMetadata(obj, mt.version)
	}
	return obj, nil
}
