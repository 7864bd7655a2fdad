package deployment

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"

	"github.com/davecgh/go-spew/spew"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/rand"
)

// ComputeHash returns the pod-template-hash of template with collisionCount:
// the FNV-32a hash of the template printed by spew (sorted map keys, no
// Stringer methods), followed by the little-endian collision count when set,
// rendered in decimal and encoded with rand.SafeEncodeString. This is
// upstream's algorithm, so a Deployment created from the same template gets
// the same ReplicaSet name as on upstream Kubernetes (e.g. "web-7d4b8c6f5").
func ComputeHash(template *corev1.PodTemplateSpec, collisionCount *int32) string {
	h := fnv.New32a()
	printer := spew.ConfigState{
		Indent:         " ",
		SortKeys:       true,
		DisableMethods: true,
		SpewKeys:       true,
	}
	printer.Fprintf(h, "%#v", *template)
	if collisionCount != nil {
		b := make([]byte, 8)
		binary.LittleEndian.PutUint32(b, uint32(*collisionCount))
		h.Write(b)
	}
	return rand.SafeEncodeString(fmt.Sprint(h.Sum32()))
}
