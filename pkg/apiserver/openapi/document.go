package openapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"

	authenticationv1 "k8s.io/api/authentication/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// knownTypes are the definitions operations refer to by name besides the
// served kinds themselves; they are built only when referenced.
var knownTypes = map[string]reflect.Type{
	statusDef:       reflect.TypeFor[metav1.Status](),
	deleteOptsDef:   reflect.TypeFor[metav1.DeleteOptions](),
	watchEventDef:   reflect.TypeFor[metav1.WatchEvent](),
	patchDef:        reflect.TypeFor[metav1.Patch](),
	resourceListDef: reflect.TypeFor[metav1.APIResourceList](),
	objectMetaDef:   reflect.TypeFor[metav1.ObjectMeta](),
	listMetaDef:     reflect.TypeFor[metav1.ListMeta](),
	definitionName(reflect.TypeFor[autoscalingv1.Scale]()):           reflect.TypeFor[autoscalingv1.Scale](),
	definitionName(reflect.TypeFor[policyv1.Eviction]()):             reflect.TypeFor[policyv1.Eviction](),
	definitionName(reflect.TypeFor[corev1.Binding]()):                reflect.TypeFor[corev1.Binding](),
	definitionName(reflect.TypeFor[authenticationv1.TokenRequest]()): reflect.TypeFor[authenticationv1.TokenRequest](),
}

// Media types of requests and responses, as upstream lists them.
var (
	objectMediaTypes = []string{"application/json", "application/yaml", "application/vnd.kubernetes.protobuf"}
	watchMediaTypes  = []string{"application/json", "application/yaml", "application/vnd.kubernetes.protobuf",
		"application/json;stream=watch", "application/vnd.kubernetes.protobuf;stream=watch"}
	patchMediaTypes = []string{"application/json-patch+json", "application/merge-patch+json",
		"application/strategic-merge-patch+json", "application/apply-patch+yaml"}
)

// ensure makes sure the named definition exists, building it from the
// endpoint or well-known types. It reports false for unknown names, which
// is a bug in route generation, not bad input.
func (b *builder) ensure(name string) bool {
	if _, ok := b.defs[name]; ok {
		return true
	}
	if t, ok := b.types[name]; ok {
		b.define(t)
		return true
	}
	if t, ok := knownTypes[name]; ok {
		b.define(t)
		return true
	}
	return false
}

// addEndpoint registers an endpoint's kinds with the builder: typed kinds
// are built on first reference, custom ones right away from their schema.
func (b *builder) addEndpoint(e *endpoint) error {
	if e.Type != nil {
		b.types[e.Def] = e.Type
		if e.ListType != nil {
			b.types[e.ListDef] = e.ListType
		}
		return nil
	}
	obj, err := b.customSchema(e)
	if err != nil {
		return err
	}
	b.defs[e.Def] = obj
	b.ensure(listMetaDef)
	b.defs[e.ListDef] = map[string]any{
		"description": e.Kind + "List is a list of " + e.Kind,
		"type":        "object",
		"required":    []string{"items"},
		"properties": map[string]any{
			"apiVersion": typeMetaProp("apiVersion"),
			"kind":       typeMetaProp("kind"),
			"items": map[string]any{
				"description": "List of " + strings.ToLower(e.Plural) + ". More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md",
				"type":        "array",
				"items":       b.refTo(e.Def),
			},
			"metadata": b.withDescription(b.refTo(listMetaDef), "Standard list metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"),
		},
		"x-kubernetes-group-version-kind": []gvkExt{{Group: e.Group, Version: e.Version, Kind: e.ListKind}},
	}
	return nil
}

// typeMetaProp returns the apiVersion or kind property as TypeMeta
// documents it.
func typeMetaProp(name string) map[string]any {
	return map[string]any{"type": "string", "description": metav1.TypeMeta{}.SwaggerDoc()[name]}
}

// customSchema returns the definition of a custom resource: its
// openAPIV3Schema (converted to Swagger 2.0 for v2 documents) with the
// standard apiVersion/kind/metadata properties and the GVK extension added,
// as upstream's CRD builder does. A missing schema accepts anything.
func (b *builder) customSchema(e *endpoint) (map[string]any, error) {
	obj := map[string]any{"type": "object", "x-kubernetes-preserve-unknown-fields": true}
	if len(e.Schema) > 0 {
		obj = nil
		if err := json.Unmarshal(e.Schema, &obj); err != nil {
			return nil, fmt.Errorf("decoding schema of %s/%s %s: %w", e.Group, e.Version, e.Kind, err)
		}
		if !b.v3 {
			obj = toSwagger2(obj)
		}
	}
	props, _ := obj["properties"].(map[string]any)
	if props == nil {
		props = map[string]any{}
	}
	props["apiVersion"] = typeMetaProp("apiVersion")
	props["kind"] = typeMetaProp("kind")
	b.ensure(objectMetaDef)
	props["metadata"] = b.withDescription(b.refTo(objectMetaDef), "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata")
	obj["properties"] = props
	if _, ok := obj["type"]; !ok {
		obj["type"] = "object"
	}
	obj["x-kubernetes-group-version-kind"] = []gvkExt{{Group: e.Group, Version: e.Version, Kind: e.Kind}}
	return obj, nil
}

// swagger2SchemaKeys are the JSON Schema keywords Swagger 2.0 allows;
// OpenAPI 3.0-only ones (nullable, oneOf, anyOf, not, ...) must go or
// gnostic (and so kubectl) rejects the whole v2 document.
var swagger2SchemaKeys = map[string]bool{
	"$ref": true, "format": true, "title": true, "description": true, "default": true,
	"multipleOf": true, "maximum": true, "exclusiveMaximum": true, "minimum": true,
	"exclusiveMinimum": true, "maxLength": true, "minLength": true, "pattern": true,
	"maxItems": true, "minItems": true, "uniqueItems": true, "maxProperties": true,
	"minProperties": true, "required": true, "enum": true, "additionalProperties": true,
	"type": true, "items": true, "allOf": true, "properties": true, "discriminator": true,
	"readOnly": true, "externalDocs": true, "example": true,
}

// toSwagger2 returns a copy of an OpenAPI 3.0 schema restricted to Swagger
// 2.0 keywords (plus vendor extensions), recursively.
func toSwagger2(s map[string]any) map[string]any {
	out := make(map[string]any, len(s))
	for k, v := range s {
		if !swagger2SchemaKeys[k] && !strings.HasPrefix(k, "x-") {
			continue
		}
		switch k {
		case "properties":
			if props, ok := v.(map[string]any); ok {
				np := make(map[string]any, len(props))
				for pk, pv := range props {
					if ps, ok := pv.(map[string]any); ok {
						np[pk] = toSwagger2(ps)
					}
				}
				v = np
			}
		case "items", "additionalProperties":
			if sub, ok := v.(map[string]any); ok {
				v = toSwagger2(sub)
			}
		case "allOf":
			if list, ok := v.([]any); ok {
				nl := make([]any, 0, len(list))
				for _, item := range list {
					if sub, ok := item.(map[string]any); ok {
						nl = append(nl, toSwagger2(sub))
					}
				}
				v = nl
			}
		}
		out[k] = v
	}
	return out
}

// marshal encodes v as compact JSON without encoding/json's HTML escaping:
// descriptions are full of "<" and ">" (Quantity's grammar), which escaped
// would bloat the documents and make them harder to read.
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// info is the document's info object.
type info struct {
	Title   string `json:"title"`
	Version string `json:"version"`
}

// ---- OpenAPI 3.0 ----

type doc3 struct {
	OpenAPI    string                `json:"openapi"`
	Info       info                  `json:"info"`
	Paths      map[string]*pathItem3 `json:"paths"`
	Components components3           `json:"components"`
}

type components3 struct {
	Schemas map[string]any `json:"schemas"`
}

type pathItem3 struct {
	Get        *operation3 `json:"get,omitempty"`
	Put        *operation3 `json:"put,omitempty"`
	Post       *operation3 `json:"post,omitempty"`
	Delete     *operation3 `json:"delete,omitempty"`
	Patch      *operation3 `json:"patch,omitempty"`
	Parameters []*param3   `json:"parameters,omitempty"`
}

type operation3 struct {
	Tags        []string              `json:"tags,omitempty"`
	Description string                `json:"description,omitempty"`
	OperationID string                `json:"operationId"`
	Parameters  []*param3             `json:"parameters,omitempty"`
	RequestBody *requestBody3         `json:"requestBody,omitempty"`
	Responses   map[string]*response3 `json:"responses"`
	Action      string                `json:"x-kubernetes-action,omitempty"`
	GVK         *gvkExt               `json:"x-kubernetes-group-version-kind,omitempty"`
}

type param3 struct {
	Name        string  `json:"name"`
	In          string  `json:"in"`
	Description string  `json:"description,omitempty"`
	Required    bool    `json:"required,omitempty"`
	Schema      *schema `json:"schema"`
}

type requestBody3 struct {
	Content  map[string]mediaType3 `json:"content"`
	Required bool                  `json:"required,omitempty"`
}

type response3 struct {
	Description string                `json:"description"`
	Content     map[string]mediaType3 `json:"content,omitempty"`
}

type mediaType3 struct {
	Schema *schema `json:"schema"`
}

// buildV3 renders the OpenAPI 3.0 document of one group/version. endpoints
// are the kinds of that group/version; gvks indexes the kinds served by
// the documents' shared types.
func buildV3(version, group, gv string, endpoints []*endpoint, gvks map[string][]gvkExt, ps *paramSets) ([]byte, error) {
	b := newBuilder(true, gvks)
	d := &doc3{
		OpenAPI:    "3.0.0",
		Info:       info{Title: "Kubernetes", Version: version},
		Paths:      map[string]*pathItem3{},
		Components: components3{Schemas: b.defs},
	}
	rs := []route{resourcesRoute(group, gv)}
	for _, e := range endpoints {
		if err := b.addEndpoint(e); err != nil {
			return nil, err
		}
		rs = append(rs, routes(e, ps)...)
	}
	for _, r := range rs {
		item := d.Paths[r.Path]
		if item == nil {
			item = &pathItem3{}
			d.Paths[r.Path] = item
		}
		item.Parameters = params3(r.Params)
		for i := range r.Ops {
			op, err := b.operation3(&r.Ops[i])
			if err != nil {
				return nil, fmt.Errorf("path %s: %w", r.Path, err)
			}
			switch r.Ops[i].Method {
			case "get":
				item.Get = op
			case "put":
				item.Put = op
			case "post":
				item.Post = op
			case "delete":
				item.Delete = op
			case "patch":
				item.Patch = op
			}
		}
	}
	out, err := marshal(d)
	if err != nil {
		return nil, fmt.Errorf("encoding OpenAPI v3 document for %s: %w", gvKey(group, gv), err)
	}
	return out, nil
}

func params3(ps []param) []*param3 {
	if len(ps) == 0 {
		return nil
	}
	out := make([]*param3, len(ps))
	for i, p := range ps {
		// uniqueItems on scalar parameters is an upstream quirk kept for
		// byte-level familiarity; it is harmless.
		out[i] = &param3{Name: p.Name, In: p.In, Description: p.Description, Required: p.Required,
			Schema: &schema{Type: p.Type, UniqueItems: true}}
	}
	return out
}

// bodySchema returns the schema of a request or response body naming def.
func (b *builder) bodySchema(def string) (*schema, error) {
	if def == plainTextDef {
		return &schema{Type: "string"}, nil
	}
	if !b.ensure(def) {
		return nil, fmt.Errorf("no definition %q", def)
	}
	return b.refTo(def), nil
}

func (b *builder) operation3(o *operation) (*operation3, error) {
	out := &operation3{
		Description: o.Description, OperationID: o.ID, Action: o.Action, GVK: o.GVK,
		Parameters: params3(o.Params), Responses: map[string]*response3{},
	}
	if o.Tag != "" {
		out.Tags = []string{o.Tag}
	}
	if o.Body != "" {
		s, err := b.bodySchema(o.Body)
		if err != nil {
			return nil, err
		}
		types := []string{"*/*"}
		if o.Patch {
			types = patchTypes(o.StrategicMerge)
		}
		out.RequestBody = &requestBody3{Content: map[string]mediaType3{}, Required: o.Method != "delete"}
		for _, t := range types {
			out.RequestBody.Content[t] = mediaType3{Schema: s}
		}
	}
	for _, r := range o.Responses {
		resp := &response3{Description: r.Description}
		if r.Def != "" {
			s, err := b.bodySchema(r.Def)
			if err != nil {
				return nil, err
			}
			resp.Content = map[string]mediaType3{}
			types := objectMediaTypes
			switch {
			case r.Def == plainTextDef:
				types = []string{"text/plain"}
			case o.Watch:
				types = watchMediaTypes
			}
			for _, t := range types {
				resp.Content[t] = mediaType3{Schema: s}
			}
		}
		out.Responses[r.Code] = resp
	}
	return out, nil
}

func patchTypes(strategic bool) []string {
	if strategic {
		return patchMediaTypes
	}
	var out []string
	for _, t := range patchMediaTypes {
		if t != "application/strategic-merge-patch+json" {
			out = append(out, t)
		}
	}
	return out
}

// ---- Swagger 2.0 ----

type doc2 struct {
	Swagger     string                `json:"swagger"`
	Info        info                  `json:"info"`
	Paths       map[string]*pathItem2 `json:"paths"`
	Definitions map[string]any        `json:"definitions"`
}

type pathItem2 struct {
	Get        *operation2 `json:"get,omitempty"`
	Put        *operation2 `json:"put,omitempty"`
	Post       *operation2 `json:"post,omitempty"`
	Delete     *operation2 `json:"delete,omitempty"`
	Patch      *operation2 `json:"patch,omitempty"`
	Parameters []*param2   `json:"parameters,omitempty"`
}

type operation2 struct {
	Description string                `json:"description,omitempty"`
	Consumes    []string              `json:"consumes,omitempty"`
	Produces    []string              `json:"produces,omitempty"`
	Schemes     []string              `json:"schemes,omitempty"`
	Tags        []string              `json:"tags,omitempty"`
	OperationID string                `json:"operationId"`
	Parameters  []*param2             `json:"parameters,omitempty"`
	Responses   map[string]*response2 `json:"responses"`
	Action      string                `json:"x-kubernetes-action,omitempty"`
	GVK         *gvkExt               `json:"x-kubernetes-group-version-kind,omitempty"`
}

type param2 struct {
	Name        string  `json:"name"`
	In          string  `json:"in"`
	Description string  `json:"description,omitempty"`
	Required    bool    `json:"required,omitempty"`
	Type        string  `json:"type,omitempty"`
	UniqueItems bool    `json:"uniqueItems,omitempty"`
	Schema      *schema `json:"schema,omitempty"`
}

type response2 struct {
	Description string  `json:"description"`
	Schema      *schema `json:"schema,omitempty"`
}

// buildV2 renders the Swagger 2.0 document of every endpoint.
func buildV2(version string, endpoints []*endpoint, gvks map[string][]gvkExt, ps *paramSets) ([]byte, error) {
	b := newBuilder(false, gvks)
	d := &doc2{
		Swagger:     "2.0",
		Info:        info{Title: "Kubernetes", Version: version},
		Paths:       map[string]*pathItem2{},
		Definitions: b.defs,
	}
	var rs []route
	seenGV := map[string]bool{}
	for _, e := range endpoints {
		if err := b.addEndpoint(e); err != nil {
			return nil, err
		}
		if k := gvKey(e.Group, e.Version); !seenGV[k] {
			seenGV[k] = true
			rs = append(rs, resourcesRoute(e.Group, e.Version))
		}
		rs = append(rs, routes(e, ps)...)
	}
	for _, r := range rs {
		item := d.Paths[r.Path]
		if item == nil {
			item = &pathItem2{}
			d.Paths[r.Path] = item
		}
		item.Parameters = params2(r.Params)
		for i := range r.Ops {
			op, err := b.operation2(&r.Ops[i])
			if err != nil {
				return nil, fmt.Errorf("path %s: %w", r.Path, err)
			}
			switch r.Ops[i].Method {
			case "get":
				item.Get = op
			case "put":
				item.Put = op
			case "post":
				item.Post = op
			case "delete":
				item.Delete = op
			case "patch":
				item.Patch = op
			}
		}
	}
	out, err := marshal(d)
	if err != nil {
		return nil, fmt.Errorf("encoding OpenAPI v2 document: %w", err)
	}
	return out, nil
}

func params2(ps []param) []*param2 {
	if len(ps) == 0 {
		return nil
	}
	out := make([]*param2, len(ps))
	for i, p := range ps {
		out[i] = &param2{Name: p.Name, In: p.In, Description: p.Description, Required: p.Required, Type: p.Type, UniqueItems: true}
	}
	return out
}

func (b *builder) operation2(o *operation) (*operation2, error) {
	out := &operation2{
		Description: o.Description, OperationID: o.ID, Action: o.Action, GVK: o.GVK,
		Schemes: []string{"https"}, Produces: objectMediaTypes, Consumes: []string{"*/*"},
		Parameters: params2(o.Params), Responses: map[string]*response2{},
	}
	if o.Tag != "" {
		out.Tags = []string{o.Tag}
	}
	if o.Watch {
		out.Produces = watchMediaTypes
	}
	if o.Patch {
		out.Consumes = patchTypes(o.StrategicMerge)
	}
	if o.Body != "" {
		s, err := b.bodySchema(o.Body)
		if err != nil {
			return nil, err
		}
		body := &param2{Name: "body", In: "body", Required: o.Method != "delete", Schema: s}
		// Upstream lists the body first; order matters to nobody but
		// readers comparing documents.
		out.Parameters = append([]*param2{body}, out.Parameters...)
	}
	for _, r := range o.Responses {
		resp := &response2{Description: r.Description}
		if r.Def != "" {
			s, err := b.bodySchema(r.Def)
			if err != nil {
				return nil, err
			}
			resp.Schema = s
			if r.Def == plainTextDef {
				out.Produces = []string{"text/plain"}
			}
		}
		out.Responses[r.Code] = resp
	}
	return out, nil
}

// ---- GVK index ----

// gvkIndex returns, per definition name, the kinds it is served as: each
// endpoint's kind and list kind, the subresource kinds, and the meta/v1
// kinds every group/version shares (DeleteOptions, WatchEvent). Lists are
// sorted so documents are deterministic.
func gvkIndex(endpoints []*endpoint) map[string][]gvkExt {
	idx := map[string][]gvkExt{}
	add := func(name string, g gvkExt) {
		for _, have := range idx[name] {
			if have == g {
				return
			}
		}
		idx[name] = append(idx[name], g)
	}
	gvs := map[[2]string]bool{{"", "v1"}: true}
	for _, e := range endpoints {
		add(e.Def, gvkExt{Group: e.Group, Version: e.Version, Kind: e.Kind})
		if e.ListDef != "" {
			add(e.ListDef, gvkExt{Group: e.Group, Version: e.Version, Kind: e.ListKind})
		}
		gvs[[2]string{e.Group, e.Version}] = true
		for _, sub := range e.Subresources {
			if k, ok := subresourceKinds[sub]; ok {
				add(definitionName(k.typ), k.gvk)
			}
		}
	}
	for gv := range gvs {
		add(deleteOptsDef, gvkExt{Group: gv[0], Version: gv[1], Kind: "DeleteOptions"})
		add(watchEventDef, gvkExt{Group: gv[0], Version: gv[1], Kind: "WatchEvent"})
	}
	add(statusDef, gvkExt{Version: "v1", Kind: "Status"})
	add(resourceListDef, gvkExt{Version: "v1", Kind: "APIResourceList"})
	for _, list := range idx {
		sort.Slice(list, func(i, j int) bool {
			a, b := list[i], list[j]
			if a.Group != b.Group {
				return a.Group < b.Group
			}
			if a.Version != b.Version {
				return a.Version < b.Version
			}
			return a.Kind < b.Kind
		})
	}
	return idx
}
