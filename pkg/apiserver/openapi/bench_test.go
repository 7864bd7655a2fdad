package openapi

import (
	"runtime"
	"testing"

	"github.com/skiff-project/skiff/pkg/registry"
)

// heapInUse returns the live heap after a full collection.
func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// cachedBytes sums the compressed documents a Service holds.
func cachedBytes(s *Service) int {
	n := len(s.state.v2.json.gz) + len(s.state.v2.pb.gz) + len(s.state.index.json.gz)
	for _, d := range s.state.v3 {
		n += len(d.json.gz) + len(d.pb.gz)
	}
	return n
}

// BenchmarkBuild measures building every document the way kubectl's first
// calls do (the v3 index, which builds all group/versions, then v2 as
// protobuf), and what stays resident afterwards: retained-B is the live
// heap the Service keeps, cached-B the compressed documents within it. The
// transient cost shows in B/op.
func BenchmarkBuild(b *testing.B) {
	b.ReportAllocs()
	var retained uint64
	var cached int
	for b.Loop() {
		before := heapInUse()
		s, err := New(registry.Builtin())
		if err != nil {
			b.Fatal(err)
		}
		if _, err := s.state.index.get(); err != nil {
			b.Fatal(err)
		}
		if _, err := s.state.v2.getProto(); err != nil {
			b.Fatal(err)
		}
		if after := heapInUse(); after > before {
			retained = after - before
		}
		cached = cachedBytes(s)
		runtime.KeepAlive(s)
	}
	b.ReportMetric(float64(retained), "retained-B")
	b.ReportMetric(float64(cached), "cached-B")
}

// BenchmarkNew measures the idle cost: a Service that has served nothing.
func BenchmarkNew(b *testing.B) {
	b.ReportAllocs()
	var retained uint64
	for b.Loop() {
		before := heapInUse()
		s, err := New(registry.Builtin())
		if err != nil {
			b.Fatal(err)
		}
		if after := heapInUse(); after > before {
			retained = after - before
		}
		runtime.KeepAlive(s)
	}
	b.ReportMetric(float64(retained), "retained-B")
}

// BenchmarkServeCachedV3 measures serving an already built group/version.
func BenchmarkServeCachedV3(b *testing.B) {
	s, err := New(registry.Builtin())
	if err != nil {
		b.Fatal(err)
	}
	d := s.state.v3["apis/apps/v1"]
	if _, err := d.get(); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := d.get(); err != nil {
			b.Fatal(err)
		}
	}
}
