package openapi

import (
	"reflect"
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// schema is the subset of an OpenAPI (Swagger 2.0 / OpenAPI 3.0) schema
// object Skiff emits for built-in types. It is one struct for both
// versions because the two differ only in how references are wrapped and in
// the int-or-string/quantity encodings, which the builder decides. Field
// order is irrelevant: encoding/json output is deterministic, which keeps the
// documents' hashes stable across builds.
type schema struct {
	Ref                  string             `json:"$ref,omitempty"`
	Description          string             `json:"description,omitempty"`
	Type                 string             `json:"type,omitempty"`
	Format               string             `json:"format,omitempty"`
	UniqueItems          bool               `json:"uniqueItems,omitempty"`
	AllOf                []*schema          `json:"allOf,omitempty"`
	OneOf                []*schema          `json:"oneOf,omitempty"`
	Items                *schema            `json:"items,omitempty"`
	Properties           map[string]*schema `json:"properties,omitempty"`
	AdditionalProperties *schema            `json:"additionalProperties,omitempty"`
	Required             []string           `json:"required,omitempty"`

	GVK                   []gvkExt `json:"x-kubernetes-group-version-kind,omitempty"`
	IntOrString           bool     `json:"x-kubernetes-int-or-string,omitempty"`
	PreserveUnknownFields bool     `json:"x-kubernetes-preserve-unknown-fields,omitempty"`
	PatchMergeKey         string   `json:"x-kubernetes-patch-merge-key,omitempty"`
	PatchStrategy         string   `json:"x-kubernetes-patch-strategy,omitempty"`
}

// gvkExt is one value of the x-kubernetes-group-version-kind extension.
// Field names and order follow upstream documents.
type gvkExt struct {
	Group   string `json:"group"`
	Kind    string `json:"kind"`
	Version string `json:"version"`
}

// Methods apimachinery's and k8s.io/api's types implement for
// kube-openapi's generator. Honouring them by reflection keeps names,
// descriptions and the special wire types (Quantity, IntOrString, Time,
// MicroTime, Duration) exactly as upstream renders them without a
// hand-written list.
const (
	methodSwaggerDoc   = "SwaggerDoc"          // map[string]string: "" = type doc, json name = field doc
	methodModelName    = "OpenAPIModelName"    // string
	methodSchemaType   = "OpenAPISchemaType"   // []string
	methodSchemaFormat = "OpenAPISchemaFormat" // string
	methodV3OneOfTypes = "OpenAPIV3OneOfTypes" // []string
)

// ownMethod calls the niladic, single-result method name on t's zero value
// and returns the result, unless t does not have it or merely inherits it
// from an embedded field: every API type embeds metav1.TypeMeta, whose
// promoted SwaggerDoc and OpenAPIModelName must not be taken for the
// embedding type's own (a type that declares its own method returns a
// different value, which is how the two cases are told apart).
func ownMethod(t reflect.Type, name string) (reflect.Value, bool) {
	m, ok := t.MethodByName(name)
	if !ok || m.Type.NumIn() != 1 || m.Type.NumOut() != 1 {
		return reflect.Value{}, false
	}
	out := reflect.Zero(t).Method(m.Index).Call(nil)[0]
	if t.Kind() != reflect.Struct {
		return out, true
	}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.Anonymous {
			continue
		}
		ft := f.Type
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem() // call on a zero value, never through a nil pointer
		}
		em, ok := ft.MethodByName(name)
		if !ok || em.Type.NumIn() != 1 || em.Type.NumOut() != 1 {
			continue
		}
		if sameValue(out, reflect.Zero(ft).Method(em.Index).Call(nil)[0]) {
			return reflect.Value{}, false
		}
	}
	return out, true
}

// sameValue compares method results; maps by identity, since generated
// SwaggerDoc methods return their package-level map.
func sameValue(a, b reflect.Value) bool {
	if a.Type() != b.Type() {
		return false
	}
	if a.Kind() == reflect.Map {
		return a.UnsafePointer() == b.UnsafePointer()
	}
	return reflect.DeepEqual(a.Interface(), b.Interface())
}

// swaggerDoc returns t's generated documentation map, or nil.
func swaggerDoc(t reflect.Type) map[string]string {
	v, ok := ownMethod(t, methodSwaggerDoc)
	if !ok {
		return nil
	}
	doc, _ := v.Interface().(map[string]string)
	return doc
}

// stringMethod returns the string result of t's own method name, or "".
func stringMethod(t reflect.Type, name string) string {
	v, ok := ownMethod(t, name)
	if !ok {
		return ""
	}
	s, _ := v.Interface().(string)
	return s
}

// stringsMethod returns the []string result of t's own method name.
func stringsMethod(t reflect.Type, name string) []string {
	v, ok := ownMethod(t, name)
	if !ok {
		return nil
	}
	s, _ := v.Interface().([]string)
	return s
}

var (
	rawExtensionType = reflect.TypeFor[runtime.RawExtension]()
	fieldsV1Type     = reflect.TypeFor[metav1.FieldsV1]()
	patchType        = reflect.TypeFor[metav1.Patch]()
	byteSliceType    = reflect.TypeFor[[]byte]()
)

// opaqueDescriptions are the descriptions of types that serialize as
// free-form JSON (their Go structs are not their wire shape) or whose
// generated docs are not reachable through SwaggerDoc. Texts are abridged
// from upstream's.
var opaqueDescriptions = map[string]string{
	"io.k8s.apimachinery.pkg.runtime.RawExtension":    "RawExtension is used to hold extensions in external versions: an arbitrary embedded object, serialized as its JSON.",
	"io.k8s.apimachinery.pkg.api.resource.Quantity":   "Quantity is a fixed-point representation of a number. It provides convenient marshaling/unmarshaling in JSON and YAML, in addition to String() and AsInt64() accessors.\n\nThe serialization format is:\n\n``` <quantity>        ::= <signedNumber><suffix>\n\n\t(Note that <suffix> may be empty, from the \"\" case in <decimalSI>.)\n\n<digit>           ::= 0 | 1 | ... | 9 <digits>          ::= <digit> | <digit><digits> <number>          ::= <digits> | <digits>.<digits> | <digits>. | .<digits> <sign>            ::= \"+\" | \"-\" <signedNumber>    ::= <number> | <sign><number> <suffix>          ::= <binarySI> | <decimalExponent> | <decimalSI> <binarySI>        ::= Ki | Mi | Gi | Ti | Pi | Ei\n\n\t(International System of units; See: http://physics.nist.gov/cuu/Units/binary.html)\n\n<decimalSI>       ::= m | \"\" | k | M | G | T | P | E\n\n\t(Note that 1024 = 1Ki but 1000 = 1k; I didn't choose the capitalization.)\n\n<decimalExponent> ::= \"e\" <signedNumber> | \"E\" <signedNumber> ```\n\nNo matter which of the three exponent forms is used, no quantity may represent a number greater than 2^63-1 in magnitude, nor may it have more than 3 decimal places. Numbers larger or more precise will be capped or rounded up. (E.g.: 0.1m will rounded up to 1m.)\n\nExamples:\n\n- 1.5 will be serialized as \"1500m\" - 1.5Gi will be serialized as \"1536Mi\"",
	"io.k8s.apimachinery.pkg.util.intstr.IntOrString": "IntOrString is a type that can hold an int32 or a string.  When used in JSON or YAML marshalling and unmarshalling, it produces or consumes the inner type.  This allows you to have, for example, a JSON field that can accept a name or number.",
	"io.k8s.apimachinery.pkg.apis.meta.v1.Time":       "Time is a wrapper around time.Time which supports correct marshaling to YAML and JSON.  Wrappers are provided for many of the factory methods that the time package offers.",
	"io.k8s.apimachinery.pkg.apis.meta.v1.MicroTime":  "MicroTime is version of Time with microsecond level precision.",
	"io.k8s.apimachinery.pkg.apis.meta.v1.Duration":   "Duration is a wrapper around time.Duration which supports correct marshaling to YAML and JSON. In particular, it marshals into strings, which can be used as map keys in json.",
}

// builder turns Go types into the definitions of one document. It is used
// by one goroutine for one document and then dropped, so the (large)
// intermediate schemas never outlive a build.
type builder struct {
	v3 bool
	// gvks maps a definition name to the kinds it is served as; set before
	// any define call.
	gvks map[string][]gvkExt
	// defs holds every definition referenced so far, built-in and custom.
	defs map[string]any
	// types maps the definition names of served kinds to their Go types,
	// so they are built only when a document references them.
	types map[string]reflect.Type
}

func newBuilder(v3 bool, gvks map[string][]gvkExt) *builder {
	return &builder{v3: v3, gvks: gvks, defs: map[string]any{}, types: map[string]reflect.Type{}}
}

// refPrefix is where definitions live in the document being built.
func (b *builder) refPrefix() string {
	if b.v3 {
		return "#/components/schemas/"
	}
	return "#/definitions/"
}

// refTo returns a schema that references the named definition.
func (b *builder) refTo(name string) *schema {
	return &schema{Ref: b.refPrefix() + name}
}

// withDescription attaches a field description to a referencing schema.
// Swagger 2.0 documents (as upstream emits them) put it beside $ref; OpenAPI
// 3.0 ignores siblings of $ref, so there the reference is wrapped in allOf,
// which kubectl's explain templates and strategic-merge lookup both unwrap.
func (b *builder) withDescription(s *schema, desc string) *schema {
	if desc == "" {
		return s
	}
	if s.Ref == "" {
		s.Description = desc
		return s
	}
	if !b.v3 {
		s.Description = desc
		return s
	}
	return &schema{Description: desc, AllOf: []*schema{s}}
}

// definitionName returns the upstream model name of a named Go type:
// OpenAPIModelName when generated, otherwise the package path with its
// domain reversed ("k8s.io/api/apps/v1".Deployment →
// "io.k8s.api.apps.v1.Deployment").
func definitionName(t reflect.Type) string {
	if name := stringMethod(t, methodModelName); name != "" {
		return name
	}
	return pathToName(t.PkgPath()) + "." + t.Name()
}

// pathToName reverses the domain of a Go package path and joins the rest
// with dots, as upstream's canonical type names do.
func pathToName(pkgPath string) string {
	parts := strings.Split(pkgPath, "/")
	domain := strings.Split(parts[0], ".")
	for i, j := 0, len(domain)-1; i < j; i, j = i+1, j-1 {
		domain[i], domain[j] = domain[j], domain[i]
	}
	parts[0] = strings.Join(domain, ".")
	return strings.Join(parts, ".")
}

// define makes sure the definition for struct (or special) type t exists
// and returns its name. Definitions are registered before their fields are
// walked, which is what terminates recursion on self-referencing types.
func (b *builder) define(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	name := definitionName(t)
	if _, ok := b.defs[name]; ok {
		return name
	}
	s := &schema{}
	b.defs[name] = s
	doc := swaggerDoc(t)
	s.Description = doc[""]
	if s.Description == "" {
		s.Description = opaqueDescriptions[name]
	}
	s.GVK = b.gvks[name]

	if types := stringsMethod(t, methodSchemaType); len(types) > 0 {
		// Special scalar-on-the-wire types (Quantity, IntOrString, Time...).
		s.Type = types[0]
		s.Format = stringMethod(t, methodSchemaFormat)
		if oneOf := stringsMethod(t, methodV3OneOfTypes); len(oneOf) > 0 && b.v3 {
			s.Type = ""
			for _, typ := range oneOf {
				s.OneOf = append(s.OneOf, &schema{Type: typ})
			}
			// Structural-schema consumers (schemaconv, CEL) only recognise
			// int-or-string through the extension, so emit it as well.
			s.IntOrString = s.Format == "int-or-string"
		}
		return name
	}
	switch t {
	case rawExtensionType, fieldsV1Type, patchType:
		// Their Go fields are not their JSON: they carry arbitrary objects.
		s.Type = "object"
		return name
	}
	if t.Kind() != reflect.Struct {
		// Named non-struct types are inlined by schemaFor; reaching here
		// means a caller asked for a definition of one. Describe it inline.
		*s = *b.schemaFor(t)
		return name
	}
	s.Type = "object"
	b.addFields(s, t, doc)
	sort.Strings(s.Required)
	return name
}

// addFields adds t's JSON fields to s, flattening embedded and ",inline"
// structs the way encoding/json does. doc holds t's field descriptions.
//
// Required is an approximation: upstream derives it from "+optional"
// markers in Go comments, which reflection cannot see. Here a field is
// required when its json tag lacks omitempty/omitzero and its type is not a
// pointer, slice, map or interface (those encode absent values as null).
func (b *builder) addFields(s *schema, t reflect.Type, doc map[string]string) {
	for i := range t.NumField() {
		f := t.Field(i)
		tag, hasTag := f.Tag.Lookup("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		ft := f.Type
		if f.Anonymous && name == "" {
			et := ft
			if et.Kind() == reflect.Pointer {
				et = et.Elem()
			}
			if et.Kind() == reflect.Struct {
				b.addFields(s, et, swaggerDoc(et))
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		if !hasTag && ft.Kind() == reflect.Interface {
			continue
		}
		fs := b.withDescription(b.schemaFor(ft), doc[name])
		if strategy := f.Tag.Get("patchStrategy"); strategy != "" {
			fs.PatchStrategy = strategy
		}
		if key := f.Tag.Get("patchMergeKey"); key != "" {
			fs.PatchMergeKey = key
		}
		if s.Properties == nil {
			s.Properties = map[string]*schema{}
		}
		s.Properties[name] = fs
		if !hasOpt(opts, "omitempty") && !hasOpt(opts, "omitzero") {
			switch ft.Kind() {
			case reflect.Pointer, reflect.Slice, reflect.Map, reflect.Interface:
			default:
				s.Required = append(s.Required, name)
			}
		}
	}
}

func hasOpt(opts, want string) bool {
	for opts != "" {
		var o string
		o, opts, _ = strings.Cut(opts, ",")
		if o == want {
			return true
		}
	}
	return false
}

// schemaFor returns the schema of a value of type t as it appears inside a
// property, items or additionalProperties: structs and special types become
// references, everything else is inlined like upstream does.
func (b *builder) schemaFor(t reflect.Type) *schema {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == byteSliceType || (t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Uint8) {
		return &schema{Type: "string", Format: "byte"}
	}
	if t.Name() != "" && len(stringsMethod(t, methodSchemaType)) > 0 {
		return b.refTo(b.define(t))
	}
	switch t.Kind() {
	case reflect.Struct:
		return b.refTo(b.define(t))
	case reflect.Slice, reflect.Array:
		return &schema{Type: "array", Items: b.schemaFor(t.Elem())}
	case reflect.Map:
		return &schema{Type: "object", AdditionalProperties: b.schemaFor(t.Elem())}
	case reflect.String:
		return &schema{Type: "string"}
	case reflect.Bool:
		return &schema{Type: "boolean"}
	case reflect.Int32, reflect.Int16, reflect.Int8, reflect.Uint16, reflect.Uint8:
		return &schema{Type: "integer", Format: "int32"}
	case reflect.Int, reflect.Int64, reflect.Uint, reflect.Uint32, reflect.Uint64:
		return &schema{Type: "integer", Format: "int64"}
	case reflect.Float32:
		return &schema{Type: "number", Format: "float"}
	case reflect.Float64:
		return &schema{Type: "number", Format: "double"}
	default:
		// interface{} and anything exotic: free-form.
		return &schema{Type: "object", PreserveUnknownFields: true}
	}
}
