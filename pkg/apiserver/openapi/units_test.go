package openapi

import (
	"net/http"
	"net/http/httptest"
	"reflect"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func TestNames(t *testing.T) {
	tests := []struct {
		name, got, want string
	}{
		{"api type", definitionName(reflect.TypeFor[appsv1.Deployment]()), "io.k8s.api.apps.v1.Deployment"},
		{"meta type", definitionName(reflect.TypeFor[metav1.ObjectMeta]()), "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"},
		{"quantity", definitionName(reflect.TypeFor[resource.Quantity]()), "io.k8s.apimachinery.pkg.api.resource.Quantity"},
		{"package path", pathToName("k8s.io/api/rbac/v1"), "io.k8s.api.rbac.v1"},
		{"custom kind", customDefName("stable.example.com", "v1", "CronTab"), "com.example.stable.v1.CronTab"},
		{"core op group", opGroupName(""), "Core"},
		{"dotted op group", opGroupName("rbac.authorization.k8s.io"), "RbacAuthorization"},
		{"custom op group", opGroupName("stable.example.com"), "StableExampleCom"},
		{"tag", tagName("rbac.authorization.k8s.io", "v1"), "rbacAuthorization_v1"},
		{"core gv key", gvKey("", "v1"), "api/v1"},
		{"group gv key", gvKey("apps", "v1"), "apis/apps/v1"},
		{"article a", article("Deployment"), "a Deployment"},
		{"article an", article("Ingress"), "an Ingress"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.got != tc.want {
				t.Errorf("got %q, want %q", tc.got, tc.want)
			}
		})
	}
}

func TestSchemaFor(t *testing.T) {
	type inner struct {
		A string `json:"a"`
	}
	type sample struct {
		metav1.TypeMeta `json:",inline"`
		Name            string            `json:"name"`
		Opt             string            `json:"opt,omitempty"`
		Ptr             *int32            `json:"ptr"`
		Raw             []byte            `json:"raw,omitempty"`
		Labels          map[string]string `json:"labels"`
		Port            intstr.IntOrString
		Items           []inner `json:"items" patchStrategy:"merge" patchMergeKey:"a"`
		Skipped         string  `json:"-"`
		hidden          string  //nolint:unused // checks unexported fields are skipped
		Ratio           float64 `json:"ratio,omitzero"`
	}
	_ = sample{}.hidden
	b := newBuilder(false, nil)
	name := b.define(reflect.TypeFor[sample]())
	got := b.defs[name].(*schema)
	innerRef := "#/definitions/" + definitionName(reflect.TypeFor[inner]())
	want := &schema{
		Type: "object",
		Properties: map[string]*schema{
			"apiVersion": {Type: "string", Description: metav1.TypeMeta{}.SwaggerDoc()["apiVersion"]},
			"kind":       {Type: "string", Description: metav1.TypeMeta{}.SwaggerDoc()["kind"]},
			"name":       {Type: "string"},
			"opt":        {Type: "string"},
			"ptr":        {Type: "integer", Format: "int32"},
			"raw":        {Type: "string", Format: "byte"},
			"labels":     {Type: "object", AdditionalProperties: &schema{Type: "string"}},
			"Port":       {Ref: "#/definitions/io.k8s.apimachinery.pkg.util.intstr.IntOrString"},
			"items":      {Type: "array", Items: &schema{Ref: innerRef}, PatchStrategy: "merge", PatchMergeKey: "a"},
			"ratio":      {Type: "number", Format: "double"},
		},
		Required: []string{"Port", "name"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("v2 schema (-want +got):\n%s", diff)
	}
	if ios := b.defs["io.k8s.apimachinery.pkg.util.intstr.IntOrString"].(*schema); ios.Type != "string" || ios.Format != "int-or-string" {
		t.Errorf("v2 IntOrString = %+v, want string/int-or-string", ios)
	}

	b3 := newBuilder(true, nil)
	b3.define(reflect.TypeFor[sample]())
	ios := b3.defs["io.k8s.apimachinery.pkg.util.intstr.IntOrString"].(*schema)
	if ios.Type != "" || !ios.IntOrString || len(ios.OneOf) != 2 {
		t.Errorf("v3 IntOrString = %+v, want oneOf and x-kubernetes-int-or-string", ios)
	}
}

func TestToSwagger2(t *testing.T) {
	in := map[string]any{
		"type":     "object",
		"nullable": true,
		"properties": map[string]any{
			"a": map[string]any{"type": "string", "nullable": true, "x-kubernetes-list-type": "atomic"},
			"b": map[string]any{"anyOf": []any{map[string]any{"type": "integer"}}, "x-kubernetes-int-or-string": true},
		},
		"items":                map[string]any{"not": map[string]any{}, "type": "string"},
		"additionalProperties": map[string]any{"oneOf": []any{}, "type": "integer"},
	}
	want := map[string]any{
		"type": "object",
		"properties": map[string]any{
			"a": map[string]any{"type": "string", "x-kubernetes-list-type": "atomic"},
			"b": map[string]any{"x-kubernetes-int-or-string": true},
		},
		"items":                map[string]any{"type": "string"},
		"additionalProperties": map[string]any{"type": "integer"},
	}
	if diff := cmp.Diff(want, toSwagger2(in)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestNegotiation(t *testing.T) {
	offers := []mediaOffer{{mediaJSON, mediaJSON, false}, {mediaV2ProtobufOld, mediaV2Protobuf, true}}
	tests := []struct {
		accept    string
		wantProto bool
		wantOK    bool
	}{
		{"", false, true},
		{"*/*", false, true},
		{"application/json", false, true},
		{mediaV2ProtobufOld, true, true},
		{"application/json;q=0.5, " + mediaV2ProtobufOld, true, true},
		{"text/html", false, false},
		{"application/json;q=0", false, false},
	}
	for _, tc := range tests {
		t.Run(tc.accept, func(t *testing.T) {
			o, ok := negotiate(tc.accept, offers)
			if ok != tc.wantOK || (ok && o.proto != tc.wantProto) {
				t.Errorf("negotiate = %+v, %v; want proto=%v ok=%v", o, ok, tc.wantProto, tc.wantOK)
			}
		})
	}
	gz := []struct {
		header string
		want   bool
	}{{"gzip", true}, {"deflate, gzip;q=1.0", true}, {"gzip;q=0", false}, {"identity", false}, {"", false}}
	for _, tc := range gz {
		if got := acceptsGzip(tc.header); got != tc.want {
			t.Errorf("acceptsGzip(%q) = %v, want %v", tc.header, got, tc.want)
		}
	}
}

// TestConcurrentAccess serves while the CRD set changes; run with -race.
func TestConcurrentAccess(t *testing.T) {
	s, _ := newTestServer(t)
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 3 {
				path := []string{"/openapi/v3", "/openapi/v3/apis/stable.example.com/v1", "/openapi/v3/apis/apps/v1"}[(i+j)%3]
				rec := httptest.NewRecorder()
				s.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
				if rec.Code != http.StatusOK && rec.Code != http.StatusNotFound {
					t.Errorf("GET %s: %d", path, rec.Code)
				}
			}
		}()
	}
	for i := range 4 {
		crds := []CustomResource{cronTab}
		if i%2 == 1 {
			crds = nil
		}
		s.SetCustomResources(crds)
	}
	wg.Wait()
	s.SetCustomResources([]CustomResource{cronTab})
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/openapi/v3/apis/stable.example.com/v1", nil))
	if rec.Code != http.StatusOK {
		t.Errorf("final state: status %d, want 200", rec.Code)
	}
}
