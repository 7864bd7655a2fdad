package storage

import (
	"bytes"
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
)

// Codec turns objects into etcd values and back. Implementations must be safe
// for concurrent use and must not modify the object given to Encode.
type Codec interface {
	// Encode returns the value to store for obj.
	Encode(obj runtime.Object) ([]byte, error)
	// Decode returns a new object decoded from a stored value.
	Decode(data []byte) (runtime.Object, error)
}

// protoMarshaler is what every generated built-in type implements.
type protoMarshaler interface {
	Marshal() ([]byte, error)
}

type protobufCodec struct {
	serializer *protobuf.Serializer
	typeMeta   runtime.TypeMeta
}

// NewProtobufCodec returns a Codec that stores typed built-in objects the way
// kube-apiserver does: the "k8s\x00" magic followed by a protobuf
// runtime.Unknown whose apiVersion/kind are gvk (the storage version) and
// whose raw bytes are the object's protobuf encoding. Decode creates objects
// through scheme and returns them with their GroupVersionKind set.
func NewProtobufCodec(scheme *runtime.Scheme, gvk schema.GroupVersionKind) Codec {
	return &protobufCodec{
		serializer: protobuf.NewSerializer(scheme, scheme),
		typeMeta:   runtime.TypeMeta{APIVersion: gvk.GroupVersion().String(), Kind: gvk.Kind},
	}
}

func (c *protobufCodec) Encode(obj runtime.Object) ([]byte, error) {
	m, ok := obj.(protoMarshaler)
	if !ok {
		return nil, fmt.Errorf("encode %T: not a protobuf message", obj)
	}
	// Building the envelope ourselves, rather than letting the serializer read
	// the object's TypeMeta, writes the storage kind without touching the
	// caller's object (typed objects usually carry an empty TypeMeta).
	raw, err := m.Marshal()
	if err != nil {
		return nil, fmt.Errorf("encode %T: %w", obj, err)
	}
	var buf bytes.Buffer
	unk := &runtime.Unknown{TypeMeta: c.typeMeta, Raw: raw}
	if err := c.serializer.Encode(unk, &buf); err != nil {
		return nil, fmt.Errorf("encode %T envelope: %w", obj, err)
	}
	return buf.Bytes(), nil
}

func (c *protobufCodec) Decode(data []byte) (runtime.Object, error) {
	obj, _, err := c.serializer.Decode(data, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("decode protobuf value: %w", err)
	}
	return obj, nil
}

type jsonCodec struct{}

// NewJSONCodec returns a Codec that stores *unstructured.Unstructured objects
// (custom resources, CRDs) as JSON, as kube-apiserver does. Values must carry
// apiVersion and kind.
func NewJSONCodec() Codec { return jsonCodec{} }

func (jsonCodec) Encode(obj runtime.Object) ([]byte, error) {
	var buf bytes.Buffer
	if err := unstructured.UnstructuredJSONScheme.Encode(obj, &buf); err != nil {
		return nil, fmt.Errorf("encode %T as JSON: %w", obj, err)
	}
	// The JSON encoder appends a newline, which is noise in etcd values.
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

func (jsonCodec) Decode(data []byte) (runtime.Object, error) {
	obj, _, err := unstructured.UnstructuredJSONScheme.Decode(data, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("decode JSON value: %w", err)
	}
	return obj, nil
}
