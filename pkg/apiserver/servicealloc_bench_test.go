package apiserver

import (
	"context"
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilnet "k8s.io/apimachinery/pkg/util/net"
)

// BenchmarkRangeAllocate is one allocation's compare-and-swap on the
// record: a linearizable read and a conditional write of the bitmap (128
// KiB once a /12 has an address in its upper band, like upstream's).
func BenchmarkRangeAllocate(b *testing.B) {
	for _, tc := range []struct {
		name         string
		size, static int
	}{
		{"serviceips-/12", 1<<20 - 2, 256},
		{"servicenodeports-2768", 2768, 86},
	} {
		b.Run(tc.name, func(b *testing.B) {
			ctx := context.Background()
			r := testRange(b, testStore(b), "bench", tc.size, tc.static)
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				off, err := allocNext(ctx, r)
				if err != nil {
					b.Fatal(err)
				}
				// Keep the range from filling up on long runs.
				if i%1000 == 999 {
					if err := r.release(ctx, []int{off}); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}

// BenchmarkCreateThroughAPI is the allocation cost per Service create as a
// client sees it: a ConfigMap create (no allocation) is the baseline, a
// ClusterIP Service adds one compare-and-swap on the IP record, a NodePort
// Service one more on the port record. The port range is widened so long
// runs do not fill it.
func BenchmarkCreateThroughAPI(b *testing.B) {
	ts := startTestServerWith(b, testStore(b), Config{ServiceNodePortRange: utilnet.PortRange{Base: 10000, Size: 55000}}, nil)
	ctx := context.Background()
	b.Run("configmap", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cm-%d", i)}}
			if _, err := ts.client.CoreV1().ConfigMaps("default").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("service-headless", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			svc := clusterIPService(fmt.Sprintf("headless-%d", i))
			svc.Spec.ClusterIP = corev1.ClusterIPNone
			if _, err := ts.client.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, typ := range []corev1.ServiceType{corev1.ServiceTypeClusterIP, corev1.ServiceTypeNodePort} {
		b.Run("service-"+string(typ), func(b *testing.B) {
			for i := 0; b.Loop(); i++ {
				svc := clusterIPService(strings.ToLower(fmt.Sprintf("%s-%d", typ, i)))
				svc.Spec.Type = typ
				if _, err := ts.client.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
