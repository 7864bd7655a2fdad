package openapi

import (
	"encoding/json"
	"reflect"
	"sort"
	"strings"

	authenticationv1 "k8s.io/api/authentication/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// param is one operation or path parameter, version-neutral.
type param struct {
	Name        string
	In          string // "query" or "path"
	Description string
	Type        string // "string", "integer" or "boolean"
	Required    bool
}

// route is one URL path and its operations, version-neutral. Definitions are
// referred to by name; the document builder resolves them.
type route struct {
	Path   string
	Params []param // path-level parameters
	Ops    []operation
}

// operation is one HTTP method on a route.
type operation struct {
	Method      string // lower case: get, put, post, delete, patch
	ID          string
	Description string
	Action      string // x-kubernetes-action; empty for non-resource operations
	GVK         *gvkExt
	Tag         string
	Params      []param
	Body        string // request body definition name; empty for none
	// Patch makes the body a meta/v1 Patch in the patch media types;
	// StrategicMerge adds strategic-merge-patch+json (built-ins only).
	Patch          bool
	StrategicMerge bool
	Responses      []response
	// Watch adds the streaming media types to the responses.
	Watch bool
}

// response is one status code of an operation; Def is empty for responses
// without a body and "string" for plain-text ones.
type response struct {
	Code        string
	Description string
	Def         string
}

const (
	statusDef        = "io.k8s.apimachinery.pkg.apis.meta.v1.Status"
	deleteOptsDef    = "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions"
	watchEventDef    = "io.k8s.apimachinery.pkg.apis.meta.v1.WatchEvent"
	patchDef         = "io.k8s.apimachinery.pkg.apis.meta.v1.Patch"
	resourceListDef  = "io.k8s.apimachinery.pkg.apis.meta.v1.APIResourceList"
	objectMetaDef    = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
	listMetaDef      = "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta"
	plainTextDef     = "string"
	prettyParamName  = "pretty"
	prettyParamDesc  = "If 'true', then the output is pretty printed."
	namespaceDesc    = "object name and auth scope, such as for teams and projects"
	unauthorizedCode = "401"
)

// optionParams derives query parameters from an options struct the way
// upstream does: json names, SwaggerDoc descriptions, scalar types.
// Slices (dryRun) are sent as repeated strings. Nested structs
// (preconditions) and TypeMeta are not query parameters.
func optionParams(opts any, skip ...string) []param {
	t := reflect.TypeOf(opts)
	doc := swaggerDoc(t)
	var out []param
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Anonymous || !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" || contains(skip, name) {
			continue
		}
		ft := f.Type
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		p := param{Name: name, In: "query", Description: doc[name], Type: "string"}
		switch ft.Kind() {
		case reflect.Bool:
			p.Type = "boolean"
		case reflect.Int, reflect.Int32, reflect.Int64:
			p.Type = "integer"
		case reflect.String, reflect.Slice:
		default:
			continue
		}
		out = append(out, p)
	}
	return out
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// mergeParams concatenates parameter lists, dropping later duplicates, and
// sorts by name as upstream documents do.
func mergeParams(lists ...[]param) []param {
	seen := map[string]bool{}
	var out []param
	for _, l := range lists {
		for _, p := range l {
			if !seen[p.Name] {
				seen[p.Name] = true
				out = append(out, p)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// paramSets are the query parameter lists of each verb, computed once per
// Service from the meta/v1 options types.
type paramSets struct {
	list, watch, create, update, patch, delete, deleteCollection []param
}

func newParamSets() paramSets {
	list := optionParams(metav1.ListOptions{})
	return paramSets{
		list:   mergeParams(list),
		watch:  mergeParams(list),
		create: mergeParams(optionParams(metav1.CreateOptions{})),
		update: mergeParams(optionParams(metav1.UpdateOptions{})),
		patch:  mergeParams(optionParams(metav1.PatchOptions{})),
		delete: mergeParams(optionParams(metav1.DeleteOptions{})),
		// Upstream's deletecollection takes the list options except the
		// watch-only ones.
		deleteCollection: mergeParams(optionParams(metav1.DeleteOptions{}),
			optionParams(metav1.ListOptions{}, "watch", "allowWatchBookmarks")),
	}
}

// endpoint is what the route generator needs to know about one served
// kind, built-in or custom.
type endpoint struct {
	Group, Version, Kind, ListKind, Plural string
	Namespaced                             bool
	Verbs                                  []string
	Subresources                           []string
	// Def and ListDef are the definition names of the kind and its list;
	// ListDef is empty for kinds without a list (bindings).
	Def, ListDef string
	// Type and ListType are the Go types of typed kinds. When Type is nil
	// the kind is schema-described (custom resources, or built-ins served as
	// unstructured) and Schema holds its openAPIV3Schema JSON, if any.
	Type, ListType reflect.Type
	Schema         json.RawMessage
	// Custom marks unstructured kinds, which do not accept strategic merge
	// patches.
	Custom bool
}

func (e *endpoint) has(verb string) bool { return contains(e.Verbs, verb) }

// gvPath is the URL prefix of a group/version: "/api/v1", "/apis/apps/v1".
func gvPath(group, version string) string {
	if group == "" {
		return "/api/" + version
	}
	return "/apis/" + group + "/" + version
}

// gvKey is the OpenAPI v3 discovery key of a group/version: "api/v1",
// "apis/apps/v1".
func gvKey(group, version string) string { return strings.TrimPrefix(gvPath(group, version), "/") }

// opGroupName is the group part of upstream operation ids: "" → "Core",
// "rbac.authorization.k8s.io" → "RbacAuthorization".
func opGroupName(group string) string {
	if group == "" {
		return "Core"
	}
	group = strings.TrimSuffix(group, ".k8s.io")
	var b strings.Builder
	for _, part := range strings.FieldsFunc(group, func(r rune) bool { return r == '.' || r == '-' }) {
		b.WriteString(strings.ToUpper(part[:1]) + part[1:])
	}
	return b.String()
}

// tagName is upstream's operation tag: "apps_v1", "rbacAuthorization_v1".
func tagName(group, version string) string {
	g := opGroupName(group)
	return strings.ToLower(g[:1]) + g[1:] + "_" + version
}

// subresourceKinds describes subresources whose body is not the parent
// object; others (status, approval, ephemeralcontainers, finalize) carry the
// parent.
var subresourceKinds = map[string]struct {
	typ reflect.Type
	gvk gvkExt
}{
	"scale":    {reflect.TypeFor[autoscalingv1.Scale](), gvkExt{Group: "autoscaling", Version: "v1", Kind: "Scale"}},
	"eviction": {reflect.TypeFor[policyv1.Eviction](), gvkExt{Group: "policy", Version: "v1", Kind: "Eviction"}},
	"binding":  {reflect.TypeFor[corev1.Binding](), gvkExt{Version: "v1", Kind: "Binding"}},
	"token":    {reflect.TypeFor[authenticationv1.TokenRequest](), gvkExt{Group: "authentication.k8s.io", Version: "v1", Kind: "TokenRequest"}},
}

// routes returns upstream's path set for one endpoint: collection and item
// paths (namespaced and, for namespaced kinds, the all-namespaces list),
// subresources and the deprecated watch paths. Only verbs the endpoint
// serves get operations.
func routes(e *endpoint, ps *paramSets) []route {
	prefix := gvPath(e.Group, e.Version)
	gvk := &gvkExt{Group: e.Group, Version: e.Version, Kind: e.Kind}
	opGV := opGroupName(e.Group) + strings.ToUpper(e.Version[:1]) + e.Version[1:]
	tag := tagName(e.Group, e.Version)
	scope, nsPath := "", ""
	if e.Namespaced {
		scope, nsPath = "Namespaced", "/namespaces/{namespace}"
	}
	nameParam := param{Name: "name", In: "path", Description: "name of the " + e.Kind, Type: "string", Required: true}
	nsParam := param{Name: "namespace", In: "path", Description: namespaceDesc, Type: "string", Required: true}
	pretty := param{Name: prettyParamName, In: "query", Description: prettyParamDesc, Type: "string"}
	collParams := []param{pretty}
	itemParams := []param{nameParam, pretty}
	if e.Namespaced {
		collParams = []param{nsParam, pretty}
		itemParams = []param{nameParam, nsParam, pretty}
	}
	objResp := func(codes ...string) []response {
		var rs []response
		for _, c := range codes {
			rs = append(rs, response{Code: c, Description: statusText(c), Def: e.Def})
		}
		return append(rs, response{Code: unauthorizedCode, Description: "Unauthorized"})
	}
	op := func(method, verb, action, suffix, desc string) operation {
		return operation{Method: method, ID: verb + opGV + suffix, Description: desc, Action: action, GVK: gvk, Tag: tag}
	}

	var out []route
	coll := route{Path: prefix + nsPath + "/" + e.Plural, Params: collParams}
	if e.has("list") && e.ListDef != "" {
		o := op("get", "list", "list", scope+e.Kind, "list or watch objects of kind "+e.Kind)
		o.Params = ps.list
		o.Responses = []response{{Code: "200", Description: "OK", Def: e.ListDef}, {Code: unauthorizedCode, Description: "Unauthorized"}}
		o.Watch = true
		coll.Ops = append(coll.Ops, o)
	}
	if e.has("create") {
		o := op("post", "create", "post", scope+e.Kind, "create "+article(e.Kind))
		o.Params, o.Body, o.Responses = ps.create, e.Def, objResp("200", "201", "202")
		coll.Ops = append(coll.Ops, o)
	}
	if e.has("deletecollection") {
		o := op("delete", "delete", "deletecollection", "Collection"+scope+e.Kind, "delete collection of "+e.Kind)
		o.Params, o.Body = ps.deleteCollection, deleteOptsDef
		o.Responses = []response{{Code: "200", Description: "OK", Def: statusDef}, {Code: unauthorizedCode, Description: "Unauthorized"}}
		coll.Ops = append(coll.Ops, o)
	}
	if len(coll.Ops) > 0 {
		out = append(out, coll)
	}

	item := route{Path: prefix + nsPath + "/" + e.Plural + "/{name}", Params: itemParams}
	if e.has("get") {
		o := op("get", "read", "get", scope+e.Kind, "read the specified "+e.Kind)
		o.Responses = objResp("200")
		item.Ops = append(item.Ops, o)
	}
	if e.has("update") {
		o := op("put", "replace", "put", scope+e.Kind, "replace the specified "+e.Kind)
		o.Params, o.Body, o.Responses = ps.update, e.Def, objResp("200", "201")
		item.Ops = append(item.Ops, o)
	}
	if e.has("patch") {
		o := op("patch", "patch", "patch", scope+e.Kind, "partially update the specified "+e.Kind)
		o.Params, o.Body, o.Patch, o.StrategicMerge, o.Responses = ps.patch, patchDef, true, !e.Custom, objResp("200", "201")
		item.Ops = append(item.Ops, o)
	}
	if e.has("delete") {
		o := op("delete", "delete", "delete", scope+e.Kind, "delete "+article(e.Kind))
		o.Params, o.Body = ps.delete, deleteOptsDef
		o.Responses = []response{
			{Code: "200", Description: "OK", Def: statusDef},
			{Code: "202", Description: "Accepted", Def: statusDef},
			{Code: unauthorizedCode, Description: "Unauthorized"},
		}
		item.Ops = append(item.Ops, o)
	}
	if len(item.Ops) > 0 {
		out = append(out, item)
	}

	for _, sub := range e.Subresources {
		if r, ok := subresourceRoute(e, sub, prefix+nsPath+"/"+e.Plural+"/{name}/"+sub, itemParams, op, scope, ps); ok {
			out = append(out, r)
		}
	}

	if e.Namespaced && e.has("list") && e.ListDef != "" {
		o := op("get", "list", "list", e.Kind+"ForAllNamespaces", "list or watch objects of kind "+e.Kind)
		o.Responses = []response{{Code: "200", Description: "OK", Def: e.ListDef}, {Code: unauthorizedCode, Description: "Unauthorized"}}
		o.Watch = true
		out = append(out, route{Path: prefix + "/" + e.Plural, Params: mergeParams(ps.list, []param{pretty}), Ops: []operation{o}})
	}

	if e.has("watch") {
		watchResp := []response{{Code: "200", Description: "OK", Def: watchEventDef}, {Code: unauthorizedCode, Description: "Unauthorized"}}
		watchOp := func(action, suffix, desc string) []operation {
			o := op("get", "watch", action, suffix, desc)
			o.Responses, o.Watch = watchResp, true
			return []operation{o}
		}
		out = append(out,
			route{
				Path:   prefix + "/watch" + nsPath + "/" + e.Plural,
				Params: mergeParams(ps.watch, collParams),
				Ops: watchOp("watchlist", scope+e.Kind+"List",
					"watch individual changes to a list of "+e.Kind+". deprecated: use the 'watch' parameter with a list operation instead."),
			},
			route{
				Path:   prefix + "/watch" + nsPath + "/" + e.Plural + "/{name}",
				Params: mergeParams(ps.watch, itemParams),
				Ops: watchOp("watch", scope+e.Kind,
					"watch changes to an object of kind "+e.Kind+". deprecated: use the 'watch' parameter with a list operation instead, filtered to a single item with the 'fieldSelector' parameter."),
			})
		if e.Namespaced {
			out = append(out, route{
				Path:   prefix + "/watch/" + e.Plural,
				Params: mergeParams(ps.watch, []param{pretty}),
				Ops: watchOp("watchlist", e.Kind+"ListForAllNamespaces",
					"watch individual changes to a list of "+e.Kind+". deprecated: use the 'watch' parameter with a list operation instead."),
			})
		}
	}
	return out
}

// subresourceRoute returns the route of one subresource, or false for
// subresources this package does not describe (the connect-style ones: log
// aside, exec, attach, portforward and proxy are streaming endpoints kubectl
// never looks up in OpenAPI).
func subresourceRoute(e *endpoint, sub, path string, itemParams []param,
	op func(method, verb, action, suffix, desc string) operation, scope string, ps *paramSets) (route, bool) {
	suffix := scope + e.Kind + strings.ToUpper(sub[:1]) + sub[1:]
	r := route{Path: path, Params: itemParams}
	def, gvk := e.Def, (*gvkExt)(nil)
	if k, ok := subresourceKinds[sub]; ok {
		def = definitionName(k.typ)
		gvk = &k.gvk
	}
	resp := func(codes ...string) []response {
		var rs []response
		for _, c := range codes {
			rs = append(rs, response{Code: c, Description: statusText(c), Def: def})
		}
		return append(rs, response{Code: unauthorizedCode, Description: "Unauthorized"})
	}
	withGVK := func(o operation) operation {
		if gvk != nil {
			o.GVK = gvk
		}
		return o
	}
	switch sub {
	case "status", "scale", "approval", "ephemeralcontainers":
		get := withGVK(op("get", "read", "get", suffix, "read "+sub+" of the specified "+e.Kind))
		get.Responses = resp("200")
		put := withGVK(op("put", "replace", "put", suffix, "replace "+sub+" of the specified "+e.Kind))
		put.Params, put.Body, put.Responses = ps.update, def, resp("200", "201")
		patch := withGVK(op("patch", "patch", "patch", suffix, "partially update "+sub+" of the specified "+e.Kind))
		patch.Params, patch.Body, patch.Patch, patch.StrategicMerge, patch.Responses = ps.patch, patchDef, true, !e.Custom, resp("200", "201")
		r.Ops = []operation{get, put, patch}
	case "finalize":
		put := withGVK(op("put", "replace", "put", suffix, "replace finalize of the specified "+e.Kind))
		put.Params, put.Body, put.Responses = ps.update, def, resp("200", "201")
		r.Ops = []operation{put}
	case "binding", "eviction", "token":
		post := withGVK(op("post", "create", "post", suffix, "create "+sub+" of "+article(e.Kind)))
		post.Params, post.Body, post.Responses = ps.create, def, resp("200", "201", "202")
		r.Ops = []operation{post}
	case "log":
		get := op("get", "read", "get", suffix, "read log of the specified "+e.Kind)
		get.Responses = []response{{Code: "200", Description: "OK", Def: plainTextDef}, {Code: unauthorizedCode, Description: "Unauthorized"}}
		r.Ops = []operation{get}
	default:
		return route{}, false
	}
	return r, true
}

// resourcesRoute is the group/version's discovery path ("/apis/apps/v1/").
func resourcesRoute(group, version string) route {
	return route{
		Path: gvPath(group, version) + "/",
		Ops: []operation{{
			Method: "get", ID: "get" + opGroupName(group) + strings.ToUpper(version[:1]) + version[1:] + "APIResources",
			Description: "get available resources", Tag: tagName(group, version),
			Responses: []response{{Code: "200", Description: "OK", Def: resourceListDef}, {Code: unauthorizedCode, Description: "Unauthorized"}},
		}},
	}
}

func statusText(code string) string {
	switch code {
	case "200":
		return "OK"
	case "201":
		return "Created"
	case "202":
		return "Accepted"
	}
	return ""
}

// article prefixes a kind with "a" or "an" as upstream descriptions do.
func article(kind string) string {
	if kind != "" && strings.ContainsRune("AEIOU", rune(kind[0])) {
		return "an " + kind
	}
	return "a " + kind
}
