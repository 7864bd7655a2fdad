package openapi

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	k8sschema "k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"k8s.io/cli-runtime/pkg/resource"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/openapi3"
	"k8s.io/client-go/rest"
	"k8s.io/kubectl/pkg/explain"
	explainv2 "k8s.io/kubectl/pkg/explain/v2"
	kubectlopenapi "k8s.io/kubectl/pkg/util/openapi"

	"github.com/skiff-project/skiff/pkg/registry"
)

var (
	deploymentGVK = k8sschema.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}
	cronTabGVK    = k8sschema.GroupVersionKind{Group: "stable.example.com", Version: "v1", Kind: "CronTab"}
	cronTab       = CustomResource{
		Group: "stable.example.com", Version: "v1", Kind: "CronTab", ListKind: "CronTabList", Plural: "crontabs", Namespaced: true,
		Schema: map[string]interface{}{
			"type": "object",
			"properties": map[string]interface{}{
				"spec": map[string]interface{}{
					"type":        "object",
					"description": "spec of the crontab",
					"properties": map[string]interface{}{
						"cronSpec": map[string]interface{}{"type": "string", "description": "when to run", "nullable": true},
						"replicas": map[string]interface{}{"type": "integer", "x-kubernetes-int-or-string": true,
							"anyOf": []interface{}{map[string]interface{}{"type": "integer"}, map[string]interface{}{"type": "string"}}},
					},
				},
			},
		},
	}
)

// newTestServer serves a Service over the builtin resources.
func newTestServer(t *testing.T) (*Service, *httptest.Server) {
	t.Helper()
	s, err := New(registry.Builtin())
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return s, srv
}

func discoveryFor(t *testing.T, srv *httptest.Server) *discovery.DiscoveryClient {
	t.Helper()
	dc, err := discovery.NewDiscoveryClientForConfig(&rest.Config{Host: srv.URL})
	if err != nil {
		t.Fatalf("discovery client: %v", err)
	}
	return dc
}

// get fetches path with optional headers; the Go client transparently
// decompresses gzip when it asked for it itself.
func get(t *testing.T, srv *httptest.Server, path string, header map[string]string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func readJSON(t *testing.T, resp *http.Response, into any) {
	t.Helper()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, want 200", resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(into); err != nil {
		t.Fatalf("decoding: %v", err)
	}
}

// v3Doc fetches a group/version document through the index, as kubectl does.
func v3Doc(t *testing.T, srv *httptest.Server, key string) map[string]any {
	t.Helper()
	var idx v3Index
	readJSON(t, get(t, srv, "/openapi/v3", nil), &idx)
	entry, ok := idx.Paths[key]
	if !ok {
		t.Fatalf("index has no %q", key)
	}
	var doc map[string]any
	readJSON(t, get(t, srv, entry.ServerRelativeURL, nil), &doc)
	return doc
}

// at walks decoded JSON along keys.
func at(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

func TestV3AppsDocument(t *testing.T) {
	_, srv := newTestServer(t)
	doc := v3Doc(t, srv, "apis/apps/v1")
	schemas := at(doc, "components", "schemas")
	dep := "io.k8s.api.apps.v1.Deployment"
	patchPath := at(doc, "paths", "/apis/apps/v1/namespaces/{namespace}/deployments/{name}", "patch")

	paramNames := func(op any) []string {
		var names []string
		for _, p := range at(op, "parameters").([]any) {
			names = append(names, p.(map[string]any)["name"].(string))
		}
		return names
	}
	tests := []struct {
		name string
		got  any
		want any
	}{
		{"openapi version", at(doc, "openapi"), "3.0.0"},
		{"deployment GVK", at(schemas, dep, "x-kubernetes-group-version-kind"),
			[]any{map[string]any{"group": "apps", "version": "v1", "kind": "Deployment"}}},
		{"deployment description", at(schemas, dep, "description"), "Deployment enables declarative updates for Pods and ReplicaSets."},
		{"spec references DeploymentSpec", at(schemas, dep, "properties", "spec", "allOf"),
			[]any{map[string]any{"$ref": "#/components/schemas/io.k8s.api.apps.v1.DeploymentSpec"}}},
		{"replicas type", at(schemas, "io.k8s.api.apps.v1.DeploymentSpec", "properties", "replicas", "type"), "integer"},
		{"replicas format", at(schemas, "io.k8s.api.apps.v1.DeploymentSpec", "properties", "replicas", "format"), "int32"},
		{"spec required", at(schemas, "io.k8s.api.apps.v1.DeploymentSpec", "required"), []any{"template"}}, // selector is a pointer: see addFields
		{"containers merge key", at(schemas, "io.k8s.api.core.v1.PodSpec", "properties", "containers", "x-kubernetes-patch-merge-key"), "name"},
		{"containers strategy", at(schemas, "io.k8s.api.core.v1.PodSpec", "properties", "containers", "x-kubernetes-patch-strategy"), "merge"},
		{"labels are a string map", at(schemas, "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta", "properties", "labels", "additionalProperties"),
			map[string]any{"type": "string"}},
		{"creationTimestamp is a Time", at(schemas, "io.k8s.apimachinery.pkg.apis.meta.v1.Time"),
			map[string]any{"type": "string", "format": "date-time", "description": opaqueDescriptions["io.k8s.apimachinery.pkg.apis.meta.v1.Time"]}},
		{"int-or-string", at(schemas, "io.k8s.apimachinery.pkg.util.intstr.IntOrString", "x-kubernetes-int-or-string"), true},
		{"quantity oneOf", at(schemas, "io.k8s.apimachinery.pkg.api.resource.Quantity", "oneOf"),
			[]any{map[string]any{"type": "string"}, map[string]any{"type": "number"}}},
		{"scale GVK", at(schemas, "io.k8s.api.autoscaling.v1.Scale", "x-kubernetes-group-version-kind"),
			[]any{map[string]any{"group": "autoscaling", "version": "v1", "kind": "Scale"}}},
		{"patch operation id", at(patchPath, "operationId"), "patchAppsV1NamespacedDeployment"},
		{"patch action", at(patchPath, "x-kubernetes-action"), "patch"},
		{"patch GVK", at(patchPath, "x-kubernetes-group-version-kind"), map[string]any{"group": "apps", "version": "v1", "kind": "Deployment"}},
		{"patch parameters", paramNames(patchPath), []string{"dryRun", "fieldManager", "fieldValidation", "force"}},
		{"patch accepts strategic merge", at(patchPath, "requestBody", "content", "application/strategic-merge-patch+json", "schema", "$ref"),
			"#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.Patch"},
		{"create parameters", paramNames(at(doc, "paths", "/apis/apps/v1/namespaces/{namespace}/deployments", "post")),
			[]string{"dryRun", "fieldManager", "fieldValidation"}},
		{"all-namespaces list", at(doc, "paths", "/apis/apps/v1/deployments", "get", "operationId"), "listAppsV1DeploymentForAllNamespaces"},
		{"watch", at(doc, "paths", "/apis/apps/v1/watch/namespaces/{namespace}/deployments/{name}", "get", "x-kubernetes-action"), "watch"},
		{"scale subresource", at(doc, "paths", "/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale", "put", "operationId"),
			"replaceAppsV1NamespacedDeploymentScale"},
		{"no core paths", at(doc, "paths", "/api/v1/namespaces/{namespace}/pods"), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, tc.got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}

	// Every reference resolves inside the document.
	raw, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	for _, ref := range strings.Split(string(raw), `"$ref":"#/components/schemas/`)[1:] {
		name := ref[:strings.IndexByte(ref, '"')]
		if at(schemas, name) == nil {
			t.Errorf("dangling reference to %s", name)
		}
	}
}

// TestKubectlExplain renders explain output with kubectl's own v3 (default)
// and v2 (--output=plaintext-openapiv2) code paths over HTTP.
func TestKubectlExplain(t *testing.T) {
	s, srv := newTestServer(t)
	s.SetCustomResources([]CustomResource{cronTab})
	dc := discoveryFor(t, srv)
	v2doc, err := dc.OpenAPISchema()
	if err != nil {
		t.Fatalf("fetching v2 protobuf: %v", err)
	}
	resources, err := kubectlopenapi.NewOpenAPIData(v2doc)
	if err != nil {
		t.Fatalf("kubectl cannot parse the v2 document: %v", err)
	}

	tests := []struct {
		gvr    k8sschema.GroupVersionResource
		kind   string
		fields []string
		want   []string
	}{
		{k8sschema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}, "Deployment", []string{"spec", "replicas"},
			[]string{"replicas", "<integer>", "Number of desired pods"}},
		{k8sschema.GroupVersionResource{Version: "v1", Resource: "pods"}, "Pod", []string{"spec", "containers"},
			[]string{"containers", "List of containers belonging to the pod", "image"}},
		{k8sschema.GroupVersionResource{Version: "v1", Resource: "services"}, "Service", []string{"spec", "ports", "targetPort"},
			[]string{"targetPort", "IntOrString"}},
		{k8sschema.GroupVersionResource{Group: "batch", Version: "v1", Resource: "cronjobs"}, "CronJob", nil,
			[]string{"CronJob represents", "metadata", "spec"}},
		{k8sschema.GroupVersionResource{Group: "stable.example.com", Version: "v1", Resource: "crontabs"}, "CronTab", []string{"spec", "cronSpec"},
			[]string{"cronSpec", "when to run"}},
	}
	for _, tc := range tests {
		t.Run(tc.gvr.Resource+"/v3", func(t *testing.T) {
			var out bytes.Buffer
			err := explainv2.PrintModelDescription(tc.fields, &out, dc.OpenAPIV3(), tc.gvr, false, 0, "plaintext")
			if err != nil {
				t.Fatalf("explain: %v", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("explain output lacks %q:\n%s", w, out.String())
				}
			}
		})
		t.Run(tc.gvr.Resource+"/v2", func(t *testing.T) {
			gvk := tc.gvr.GroupVersion().WithKind(tc.kind)
			model := resources.LookupResource(gvk)
			if model == nil {
				t.Fatalf("v2 document has no model for %v", gvk)
			}
			var out bytes.Buffer
			if err := explain.PrintModelDescription(tc.fields, &out, model, gvk, false, 0); err != nil {
				t.Fatalf("explain: %v", err)
			}
			for _, w := range tc.want {
				if w == "IntOrString" {
					w = "<string>" // v2 renders int-or-string as a string
				}
				if !strings.Contains(out.String(), w) {
					t.Errorf("explain output lacks %q:\n%s", w, out.String())
				}
			}
		})
	}
}

// TestFieldValidationSupported runs kubectl's server-side field validation
// probes (v3, and the v2 fallback) and its patch-type lookup.
func TestFieldValidationSupported(t *testing.T) {
	s, srv := newTestServer(t)
	s.SetCustomResources([]CustomResource{cronTab})
	dc := discoveryFor(t, srv)
	v3 := resource.NewQueryParamVerifierV3(nil, dc.OpenAPIV3(), resource.QueryParamFieldValidation)
	v2 := resource.NewQueryParamVerifier(nil, dc, resource.QueryParamFieldValidation)
	v2doc, err := dc.OpenAPISchema()
	if err != nil {
		t.Fatal(err)
	}
	resources, err := kubectlopenapi.NewOpenAPIData(v2doc)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		gvk           k8sschema.GroupVersionKind
		wantStrategic bool
	}{
		{deploymentGVK, true},
		{k8sschema.GroupVersionKind{Version: "v1", Kind: "Pod"}, true},
		{k8sschema.GroupVersionKind{Version: "v1", Kind: "Namespace"}, true},
		{k8sschema.GroupVersionKind{Group: "rbac.authorization.k8s.io", Version: "v1", Kind: "ClusterRole"}, true},
		{k8sschema.GroupVersionKind{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"}, false},
		{cronTabGVK, false},
	}
	for _, tc := range tests {
		t.Run(tc.gvk.String(), func(t *testing.T) {
			if err := v3.HasSupport(tc.gvk); err != nil {
				t.Errorf("v3 verifier: %v", err)
			}
			if err := v2.HasSupport(tc.gvk); err != nil {
				t.Errorf("v2 verifier: %v", err)
			}
			consumes := resources.GetConsumes(tc.gvk, "PATCH")
			gotStrategic := false
			for _, c := range consumes {
				gotStrategic = gotStrategic || c == "application/strategic-merge-patch+json"
			}
			if gotStrategic != tc.wantStrategic {
				t.Errorf("PATCH consumes %v; strategic merge = %v, want %v", consumes, gotStrategic, tc.wantStrategic)
			}
		})
	}
}

// TestStrategicMergeFromV3 computes a client-side apply patch the way
// kubectl apply does with the v3 document: containers merge by name.
func TestStrategicMergeFromV3(t *testing.T) {
	_, srv := newTestServer(t)
	root := openapi3.NewRoot(discoveryFor(t, srv).OpenAPIV3())
	spec, err := root.GVSpec(deploymentGVK.GroupVersion())
	if err != nil {
		t.Fatalf("GVSpec: %v", err)
	}
	meta := strategicpatch.PatchMetaFromOpenAPIV3{
		Schema: spec.Components.Schemas["io.k8s.api.apps.v1.Deployment"], SchemaList: spec.Components.Schemas,
	}
	original := []byte(`{"spec":{"template":{"spec":{"containers":[{"name":"a","image":"a:1"},{"name":"b","image":"b:1"}]}}}}`)
	modified := []byte(`{"spec":{"replicas":3,"template":{"spec":{"containers":[{"name":"a","image":"a:2"},{"name":"b","image":"b:1"}]}}}}`)
	patch, err := strategicpatch.CreateThreeWayMergePatch(original, modified, original, meta, false)
	if err != nil {
		t.Fatalf("CreateThreeWayMergePatch: %v", err)
	}
	var got any
	if err := json.Unmarshal(patch, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"spec": map[string]any{
		"replicas": float64(3),
		"template": map[string]any{"spec": map[string]any{
			"$setElementOrder/containers": []any{map[string]any{"name": "a"}, map[string]any{"name": "b"}},
			"containers":                  []any{map[string]any{"name": "a", "image": "a:2"}},
		}},
	}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("patch (-want +got):\n%s", diff)
	}
}

func TestCustomResources(t *testing.T) {
	s, srv := newTestServer(t)
	appsBefore := indexURL(t, srv, "apis/apps/v1")

	s.SetCustomResources([]CustomResource{
		cronTab,
		{Group: "other.example.com", Version: "v1alpha1", Kind: "Widget", Plural: "widgets"},
		{Group: "apps", Version: "v1", Kind: "Fake", Plural: "deployments"}, // shadowed by the built-in
	})
	doc := v3Doc(t, srv, "apis/stable.example.com/v1")
	schemas := at(doc, "components", "schemas")
	widgets := v3Doc(t, srv, "apis/other.example.com/v1alpha1")
	tests := []struct {
		name string
		got  any
		want any
	}{
		{"GVK", at(schemas, "com.example.stable.v1.CronTab", "x-kubernetes-group-version-kind"),
			[]any{map[string]any{"group": "stable.example.com", "version": "v1", "kind": "CronTab"}}},
		{"schema kept", at(schemas, "com.example.stable.v1.CronTab", "properties", "spec", "properties", "cronSpec", "nullable"), true},
		{"metadata added", at(schemas, "com.example.stable.v1.CronTab", "properties", "metadata", "allOf"),
			[]any{map[string]any{"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}}},
		{"list GVK", at(schemas, "com.example.stable.v1.CronTabList", "x-kubernetes-group-version-kind"),
			[]any{map[string]any{"group": "stable.example.com", "version": "v1", "kind": "CronTabList"}}},
		{"no strategic merge", at(doc, "paths", "/apis/stable.example.com/v1/namespaces/{namespace}/crontabs/{name}", "patch",
			"requestBody", "content", "application/strategic-merge-patch+json"), nil},
		{"merge patch", at(doc, "paths", "/apis/stable.example.com/v1/namespaces/{namespace}/crontabs/{name}", "patch",
			"requestBody", "content", "application/merge-patch+json") != nil, true},
		{"schemaless preserves unknown", at(widgets, "components", "schemas", "com.example.other.v1alpha1.Widget", "x-kubernetes-preserve-unknown-fields"), true},
		{"cluster-scoped path", at(widgets, "paths", "/apis/other.example.com/v1alpha1/widgets/{name}", "get", "operationId"),
			"readOtherExampleComV1alpha1Widget"},
		{"built-in not shadowed", indexURL(t, srv, "apis/apps/v1"), appsBefore},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, tc.got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}

	// The v2 document carries the CRD, converted to Swagger 2.0.
	var v2 map[string]any
	readJSON(t, get(t, srv, "/openapi/v2", nil), &v2)
	cron := at(v2, "definitions", "com.example.stable.v1.CronTab")
	if cron == nil {
		t.Fatal("v2 document lacks the CronTab definition")
	}
	if got := at(cron, "properties", "spec", "properties", "cronSpec", "nullable"); got != nil {
		t.Errorf("v2 kept OpenAPI 3-only nullable: %v", got)
	}

	// Removing the CRDs removes their documents.
	s.SetCustomResources(nil)
	if resp := get(t, srv, "/openapi/v3/apis/stable.example.com/v1", nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("after removal: status %d, want 404", resp.StatusCode)
	}
	var idx v3Index
	readJSON(t, get(t, srv, "/openapi/v3", nil), &idx)
	if _, ok := idx.Paths["apis/stable.example.com/v1"]; ok {
		t.Error("index still lists the removed group/version")
	}
}

func indexURL(t *testing.T, srv *httptest.Server, key string) string {
	t.Helper()
	var idx v3Index
	readJSON(t, get(t, srv, "/openapi/v3", nil), &idx)
	return idx.Paths[key].ServerRelativeURL
}

func TestServeHTTP(t *testing.T) {
	_, srv := newTestServer(t)
	apps := indexURL(t, srv, "apis/apps/v1")
	u, err := url.Parse(apps)
	if err != nil {
		t.Fatal(err)
	}
	hash := u.Query().Get("hash")
	etag := `"` + hash + `"`

	tests := []struct {
		name        string
		method      string
		path        string
		header      map[string]string
		wantStatus  int
		wantHeaders map[string]string
	}{
		{"v3 with current hash is immutable", "GET", apps, nil, 200,
			map[string]string{"Cache-Control": "public, immutable", "ETag": etag, "Content-Type": "application/json"}},
		{"v3 without hash is revalidated", "GET", "/openapi/v3/apis/apps/v1", nil, 200,
			map[string]string{"Cache-Control": "", "ETag": etag}},
		{"stale hash redirects", "GET", "/openapi/v3/apis/apps/v1?hash=0BAD", nil, 301,
			map[string]string{"Location": apps}},
		{"if-none-match", "GET", "/openapi/v3/apis/apps/v1", map[string]string{"If-None-Match": etag}, 304, nil},
		{"v3 protobuf", "GET", "/openapi/v3/apis/apps/v1", map[string]string{"Accept": mediaV3ProtobufOld}, 200,
			map[string]string{"Content-Type": mediaV3Protobuf, "ETag": `"` + hash + `-pb"`}},
		{"v2 json", "GET", "/openapi/v2", map[string]string{"Accept": "application/json"}, 200,
			map[string]string{"Content-Type": "application/json"}},
		{"v2 protobuf", "GET", "/openapi/v2", map[string]string{"Accept": mediaV2ProtobufOld + ", application/json;q=0.5"}, 200,
			map[string]string{"Content-Type": mediaV2Protobuf}},
		{"gzip when asked", "GET", "/openapi/v2", map[string]string{"Accept-Encoding": "gzip"}, 200,
			map[string]string{"Content-Encoding": "gzip"}},
		{"unacceptable", "GET", "/openapi/v2", map[string]string{"Accept": "text/html"}, 406, nil},
		{"unknown group", "GET", "/openapi/v3/apis/nope/v1", nil, 404, nil},
		{"unknown path", "GET", "/openapi/v4", nil, 404, nil},
		{"head", "HEAD", "/openapi/v3", nil, 200, map[string]string{"Content-Type": "application/json"}},
		{"post", "POST", "/openapi/v2", nil, 405, map[string]string{"Allow": "GET, HEAD"}},
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, srv.URL+tc.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status %d, want %d (%s)", resp.StatusCode, tc.wantStatus, body)
			}
			for k, want := range tc.wantHeaders {
				if got := resp.Header.Get(k); got != want {
					t.Errorf("header %s = %q, want %q", k, got, want)
				}
			}
			if resp.Header.Get("Content-Encoding") == "gzip" {
				zr, err := gzip.NewReader(bytes.NewReader(body))
				if err != nil {
					t.Fatalf("gzip body: %v", err)
				}
				if body, err = io.ReadAll(zr); err != nil {
					t.Fatalf("gzip body: %v", err)
				}
			}
			if resp.StatusCode == 200 && tc.method == "GET" && resp.Header.Get("Content-Type") == "application/json" && !json.Valid(body) {
				t.Errorf("body is not JSON: %.200s", body)
			}
		})
	}
}

func TestNewRejectsMalformedResources(t *testing.T) {
	tests := []struct {
		name string
		res  *registry.Resource
	}{
		{"nil", nil},
		{"no kind", &registry.Resource{Version: "v1", Resource: "things"}},
		{"no version", &registry.Resource{Kind: "Thing", Resource: "things"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New([]*registry.Resource{tc.res}); err == nil {
				t.Error("New succeeded, want an error")
			}
		})
	}
}
