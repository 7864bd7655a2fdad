package apiserver

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"github.com/skiff-project/skiff/pkg/storage"
)

// newOfflineServer builds a Server whose store is never contacted: the
// fuzz targets exercise decoding and patching only.
func newOfflineServer(t testing.TB) *Server {
	t.Helper()
	s, err := New(Config{Store: storage.New(nil, storage.Options{})})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// wantClientError fails unless err is nil or an API error with a 4xx code:
// bad input must never turn into a 500 or a panic.
func wantClientError(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	var st apierrors.APIStatus
	if !errors.As(err, &st) {
		t.Fatalf("non-API error %T: %v", err, err)
	}
	if c := st.Status().Code; c < 400 || c >= 500 {
		t.Fatalf("bad input answered with code %d: %v", c, err)
	}
}

var fuzzResources = []schema.GroupVersionResource{
	{Version: "v1", Resource: "pods"},
	{Group: "apps", Version: "v1", Resource: "deployments"},
	{Version: "v1", Resource: "configmaps"},
	{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"},
}

func FuzzDecodeBody(f *testing.F) {
	f.Add([]byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"containers":[{"name":"c","image":"i"}]}}`), uint8(0), uint8(0))
	f.Add([]byte("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {replicas: -1}\n"), uint8(1), uint8(1))
	f.Add([]byte("k8s\x00\n\x0c\n\x02v1\x12\x06Secret"), uint8(2), uint8(2))
	f.Add([]byte(`{"metadata":{"name":"x","labels":{"a":1}}}`), uint8(0), uint8(3))
	s := newOfflineServer(f)
	types := []string{"application/json", "application/yaml", "application/vnd.kubernetes.protobuf"}
	validations := []string{"Strict", "Warn", "Ignore"}
	f.Fuzz(func(t *testing.T, body []byte, ct, res uint8) {
		ep, ok := s.lookup(fuzzResources[int(res)%len(fuzzResources)])
		if !ok {
			t.Fatal("missing endpoint")
		}
		r := httptest.NewRequest(http.MethodPost, "/", nil)
		r.Header.Set("Content-Type", types[int(ct)%len(types)])
		obj, _, err := s.decodeBody(r, ep, body, requestOptions{fieldValidation: validations[int(ct)%len(validations)]})
		wantClientError(t, err)
		if err == nil && obj == nil {
			t.Fatal("nil object without error")
		}
		if err == nil {
			// Whatever decodes must validate without panicking.
			_ = ep.strategy.Validate(obj)
		}
	})
}

func FuzzPatch(f *testing.F) {
	f.Add([]byte(`{"spec":{"replicas":3}}`), uint8(1))
	f.Add([]byte(`[{"op":"replace","path":"/spec/replicas","value":2}]`), uint8(0))
	f.Add([]byte(`{"spec":{"template":{"spec":{"containers":[{"name":"c","$patch":"delete"}]}}}}`), uint8(2))
	f.Add([]byte(`{"$setElementOrder/containers":[{"name":"x"}]}`), uint8(2))
	s := newOfflineServer(f)
	ep, _ := s.lookup(schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"})
	cur, _, err := s.decodeWith(mustJSONInfo(s), ep, []byte(`{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web","namespace":"default"},
		"spec":{"replicas":1,"selector":{"matchLabels":{"app":"web"}},"template":{"metadata":{"labels":{"app":"web"}},
		"spec":{"containers":[{"name":"c","image":"nginx"}]}}}}`), requestOptions{fieldValidation: "Strict"})
	if err != nil {
		f.Fatal(err)
	}
	patchTypes := []types.PatchType{types.JSONPatchType, types.MergePatchType, types.StrategicMergePatchType}
	f.Fuzz(func(t *testing.T, patch []byte, pt uint8) {
		obj, _, err := s.patchObject(ep, cur.DeepCopyObject(), patchTypes[int(pt)%len(patchTypes)], patch, requestOptions{fieldValidation: "Strict"})
		wantClientError(t, err)
		if err == nil {
			_ = ep.strategy.ValidateUpdate(obj, cur)
		}
	})
}

func FuzzParseRequestInfo(f *testing.F) {
	for _, p := range []string{"/api/v1/namespaces/default/pods/x/status", "/apis/apps/v1/watch/namespaces/a/deployments",
		"/api/v1/namespaces/x/finalize", "/apis", "//api//v1/"} {
		f.Add(p, "GET")
	}
	f.Fuzz(func(t *testing.T, path, method string) {
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		r, err := http.NewRequest(method, "http://x"+path, nil)
		if err != nil {
			return
		}
		info := parseRequestInfo(r)
		if info.IsResource && info.Resource == "" && info.Name != "" {
			t.Fatalf("name without resource: %+v", info)
		}
	})
}

func mustJSONInfo(s *Server) runtime.SerializerInfo {
	info, _ := runtime.SerializerInfoForMediaType(s.codecs.SupportedMediaTypes(), "application/json")
	return info
}
