package apiserver

import (
	"fmt"
	"net/http"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/skiff-project/skiff/pkg/storage"
)

// respond writes one served object, transformed into a Table or
// PartialObjectMetadata when the client asked for that.
func (s *Server) respond(w http.ResponseWriter, r *http.Request, ep *endpoint, code int, obj runtime.Object) {
	mt, err := s.negotiate(r, tableOrMeta)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	switch mt.as {
	case "Table":
		t, err := s.table(r, ep, mt, []runtime.Object{obj}, true)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if a, aerr := meta.Accessor(obj); aerr == nil {
			t.ResourceVersion = a.GetResourceVersion()
		}
		s.writeObject(w, r, code, mt, t)
	case "PartialObjectMetadata":
		m, err := partialMetadata(obj, mt.version)
		if err != nil {
			s.writeError(w, r, apierrors.NewInternalError(err))
			return
		}
		s.writeObject(w, r, code, mt, m)
	case "PartialObjectMetadataList":
		s.writeError(w, r, apierrors.NewBadRequest("PartialObjectMetadataList is only available for list requests"))
	default:
		s.writeObject(w, r, code, mt, obj)
	}
}

// respondList writes a list result in the negotiated form.
func (s *Server) respondList(w http.ResponseWriter, r *http.Request, ep *endpoint, res *storage.ListResult) {
	mt, err := s.negotiate(r, tableOrMeta)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	listMeta := metav1.ListMeta{
		ResourceVersion:    fmt.Sprint(res.ResourceVersion),
		Continue:           res.Continue,
		RemainingItemCount: res.RemainingItemCount,
	}
	items := res.Items
	if ep.conv != nil {
		items = make([]runtime.Object, 0, len(res.Items))
		for _, it := range res.Items {
			c, err := ep.conv.toServed(it.DeepCopyObject())
			if err != nil {
				s.writeError(w, r, apierrors.NewInternalError(err))
				return
			}
			items = append(items, c)
		}
	}
	switch mt.as {
	case "Table":
		t, err := s.table(r, ep, mt, items, true)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		t.ListMeta = listMeta
		s.writeObject(w, r, http.StatusOK, mt, t)
		return
	case "PartialObjectMetadataList", "PartialObjectMetadata":
		list := &metav1.PartialObjectMetadataList{
			TypeMeta: metav1.TypeMeta{APIVersion: "meta.k8s.io/" + mt.version, Kind: "PartialObjectMetadataList"},
			ListMeta: listMeta,
			Items:    make([]metav1.PartialObjectMetadata, 0, len(items)),
		}
		for _, it := range items {
			m, err := partialMetadata(it, mt.version)
			if err != nil {
				s.writeError(w, r, apierrors.NewInternalError(err))
				return
			}
			list.Items = append(list.Items, *m)
		}
		s.writeObject(w, r, http.StatusOK, mt, list)
		return
	}
	list := ep.newList()
	if err := meta.SetList(list, items); err != nil {
		s.writeError(w, r, apierrors.NewInternalError(fmt.Errorf("build list: %w", err)))
		return
	}
	if la, err := meta.ListAccessor(list); err == nil {
		la.SetResourceVersion(listMeta.ResourceVersion)
		la.SetContinue(listMeta.Continue)
		la.SetRemainingItemCount(listMeta.RemainingItemCount)
	}
	list.GetObjectKind().SetGroupVersionKind(ep.newList().GetObjectKind().GroupVersionKind())
	s.writeObject(w, r, http.StatusOK, mt, list)
}

// table renders objects with the resource's printer. withColumns false
// leaves the column definitions out (watch events after the first).
func (s *Server) table(r *http.Request, ep *endpoint, mt mediaType, objs []runtime.Object, withColumns bool) (*metav1.Table, error) {
	include := metav1.IncludeMetadata
	switch v := r.URL.Query().Get("includeObject"); v {
	case "":
	case string(metav1.IncludeNone), string(metav1.IncludeMetadata), string(metav1.IncludeObject):
		include = metav1.IncludeObjectPolicy(v)
	default:
		return nil, apierrors.NewBadRequest(fmt.Sprintf("includeObject: Unsupported value: %q", v))
	}
	printer := ep.printer
	if ep.custom != nil {
		printer = ep.custom.printer
	}
	t := &metav1.Table{TypeMeta: metav1.TypeMeta{APIVersion: "meta.k8s.io/" + mt.version, Kind: "Table"}}
	if withColumns {
		t.ColumnDefinitions = printer.Columns
	}
	now := time.Now()
	t.Rows = make([]metav1.TableRow, 0, len(objs))
	for _, obj := range objs {
		cells, err := printer.Row(obj, now)
		if err != nil {
			return nil, apierrors.NewInternalError(fmt.Errorf("print row: %w", err))
		}
		row := metav1.TableRow{Cells: cells}
		switch include {
		case metav1.IncludeMetadata:
			m, err := partialMetadata(obj, "v1")
			if err != nil {
				return nil, apierrors.NewInternalError(err)
			}
			raw, err := runtime.Encode(mt.info.Serializer, m)
			if err != nil {
				return nil, apierrors.NewInternalError(err)
			}
			row.Object = runtime.RawExtension{Raw: raw}
		case metav1.IncludeObject:
			o := obj.DeepCopyObject()
			o.GetObjectKind().SetGroupVersionKind(ep.res.GroupVersionKind())
			raw, err := runtime.Encode(mt.info.Serializer, o)
			if err != nil {
				return nil, apierrors.NewInternalError(err)
			}
			row.Object = runtime.RawExtension{Raw: raw}
		}
		t.Rows = append(t.Rows, row)
	}
	return t, nil
}
