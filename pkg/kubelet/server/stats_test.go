package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"
)

func u64(v uint64) *uint64 { return &v }

// fakeSummary is a node with two pods: "web" (two containers) and
// "db\"x" (a name that needs escaping in the text format).
func fakeSummary() *statsapi.Summary {
	t0 := metav1.NewTime(time.UnixMilli(1700000000123))
	t1 := metav1.NewTime(time.UnixMilli(1700000001456))
	start := metav1.NewTime(time.Unix(1699999000, 500000000))
	cpu := func(ns uint64, at metav1.Time) *statsapi.CPUStats {
		return &statsapi.CPUStats{Time: at, UsageCoreNanoSeconds: u64(ns)}
	}
	mem := func(b uint64, at metav1.Time) *statsapi.MemoryStats {
		return &statsapi.MemoryStats{Time: at, WorkingSetBytes: u64(b), UsageBytes: u64(b + 100)}
	}
	return &statsapi.Summary{
		Node: statsapi.NodeStats{
			StartTime: start, CPU: cpu(197853363000, t0), Memory: mem(686260224, t0),
			Fs: &statsapi.FsStats{Time: t0, CapacityBytes: u64(1 << 30)},
		},
		Pods: []statsapi.PodStats{
			{
				PodRef: statsapi.PodReference{Name: "web", Namespace: "default", UID: "u1"}, StartTime: start,
				Containers: []statsapi.ContainerStats{
					{Name: "nginx", StartTime: start, CPU: cpu(2500000000, t1), Memory: mem(10<<20, t1), Rootfs: &statsapi.FsStats{Time: t1, UsedBytes: u64(4096)}},
					{Name: "agent", StartTime: start, CPU: cpu(1000, t1), Memory: mem(1<<20, t1)},
				},
				CPU: cpu(2500001000, t1), Memory: mem(11<<20, t1),
			},
			{
				PodRef: statsapi.PodReference{Name: `db"x`, Namespace: "data", UID: "u2"}, StartTime: start,
				// No start time and no memory: only the CPU sample.
				Containers: []statsapi.ContainerStats{{Name: "pg", CPU: cpu(3000000000, t0)}},
				CPU:        cpu(3000000000, t0),
			},
		},
	}
}

func TestWriteResourceMetrics(t *testing.T) {
	var b strings.Builder
	if err := WriteResourceMetrics(&b, fakeSummary()); err != nil {
		t.Fatal(err)
	}
	want := `# HELP container_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the container in core-seconds
# TYPE container_cpu_usage_seconds_total counter
container_cpu_usage_seconds_total{container="agent",namespace="default",pod="web"} 1e-06 1700000001456
container_cpu_usage_seconds_total{container="nginx",namespace="default",pod="web"} 2.5 1700000001456
container_cpu_usage_seconds_total{container="pg",namespace="data",pod="db\"x"} 3 1700000000123
# HELP container_memory_working_set_bytes [STABLE] Current working set of the container in bytes
# TYPE container_memory_working_set_bytes gauge
container_memory_working_set_bytes{container="agent",namespace="default",pod="web"} 1.048576e+06 1700000001456
container_memory_working_set_bytes{container="nginx",namespace="default",pod="web"} 1.048576e+07 1700000001456
# HELP container_start_time_seconds [STABLE] Start time of the container since unix epoch in seconds
# TYPE container_start_time_seconds gauge
container_start_time_seconds{container="agent",namespace="default",pod="web"} 1.6999990005e+09 1699999000500
container_start_time_seconds{container="nginx",namespace="default",pod="web"} 1.6999990005e+09 1699999000500
# HELP node_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the node in core-seconds
# TYPE node_cpu_usage_seconds_total counter
node_cpu_usage_seconds_total 197.853363 1700000000123
# HELP node_memory_working_set_bytes [STABLE] Current working set of the node in bytes
# TYPE node_memory_working_set_bytes gauge
node_memory_working_set_bytes 6.86260224e+08 1700000000123
# HELP pod_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the pod in core-seconds
# TYPE pod_cpu_usage_seconds_total counter
pod_cpu_usage_seconds_total{namespace="data",pod="db\"x"} 3 1700000000123
pod_cpu_usage_seconds_total{namespace="default",pod="web"} 2.500001 1700000001456
# HELP pod_memory_working_set_bytes [STABLE] Current working set of the pod in bytes
# TYPE pod_memory_working_set_bytes gauge
pod_memory_working_set_bytes{namespace="default",pod="web"} 1.1534336e+07 1700000001456
# HELP resource_scrape_error [STABLE] 1 if there was an error while getting container metrics, 0 otherwise
# TYPE resource_scrape_error gauge
resource_scrape_error 0
`
	if diff := cmp.Diff(want, b.String()); diff != "" {
		t.Errorf("resource metrics (-want +got):\n%s", diff)
	}

	b.Reset()
	if err := WriteResourceMetrics(&b, nil); err != nil {
		t.Fatal(err)
	}
	wantErr := `# HELP resource_scrape_error [STABLE] 1 if there was an error while getting container metrics, 0 otherwise
# TYPE resource_scrape_error gauge
resource_scrape_error 1
`
	if diff := cmp.Diff(wantErr, b.String()); diff != "" {
		t.Errorf("failed scrape (-want +got):\n%s", diff)
	}
}

type fakeStats struct {
	sum *statsapi.Summary
	err error
}

func (f fakeStats) Summary(context.Context) (*statsapi.Summary, error) { return f.sum, f.err }

// statsRequest sends a request to the server's handler as a TLS client
// with the given verified subject (none when nil).
func statsRequest(s *Server, path string, subject *pkix.Name) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodGet, path, nil)
	if subject != nil {
		req.TLS = &tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{{Subject: *subject}}}}
	}
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	return rec
}

func TestStatsEndpoints(t *testing.T) {
	apiServer := &pkix.Name{CommonName: APIServerClientCN}
	s, err := New(Config{Runtime: CRI{}, Stats: fakeStats{sum: fakeSummary()}, NodeName: "node1"})
	if err != nil {
		t.Fatal(err)
	}

	t.Run("summary", func(t *testing.T) {
		rec := statsRequest(s, "/stats/summary", apiServer)
		if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/json" {
			t.Fatalf("GET /stats/summary: %d %q: %s", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
		}
		var got statsapi.Summary
		if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
			t.Fatal(err)
		}
		want := fakeSummary()
		want.Node.NodeName = "node1"
		// metav1.Time travels in JSON with second precision.
		b, err := json.Marshal(want)
		if err != nil {
			t.Fatal(err)
		}
		want = &statsapi.Summary{}
		if err := json.Unmarshal(b, want); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, &got); diff != "" {
			t.Errorf("summary (-want +got):\n%s", diff)
		}
	})

	t.Run("summary with only_cpu_and_memory", func(t *testing.T) {
		rec := statsRequest(s, "/stats/summary?only_cpu_and_memory=true", apiServer)
		var got statsapi.Summary
		if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
			t.Fatalf("%d: %v: %s", rec.Code, err, rec.Body)
		}
		if got.Node.Fs != nil || got.Pods[0].Containers[0].Rootfs != nil {
			t.Errorf("file system stats kept: %s", rec.Body)
		}
		if got.Node.NodeName != "node1" || got.Node.CPU == nil || got.Pods[0].Containers[0].Memory == nil {
			t.Errorf("cpu and memory stats lost: %s", rec.Body)
		}
		if rec := statsRequest(s, "/stats/summary?only_cpu_and_memory=maybe", apiServer); rec.Code != http.StatusBadRequest {
			t.Errorf("invalid only_cpu_and_memory: %d", rec.Code)
		}
	})

	t.Run("resource metrics", func(t *testing.T) {
		rec := statsRequest(s, "/metrics/resource", apiServer)
		if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/plain; version=0.0.4") {
			t.Fatalf("GET /metrics/resource: %d %q", rec.Code, rec.Header().Get("Content-Type"))
		}
		if !strings.Contains(rec.Body.String(), "\nnode_cpu_usage_seconds_total 197.853363 1700000000123\n") {
			t.Errorf("no node CPU sample in:\n%s", rec.Body)
		}
	})

	t.Run("a failing provider", func(t *testing.T) {
		failing, err := New(Config{Runtime: CRI{}, Stats: fakeStats{err: errors.New("runtime down")}})
		if err != nil {
			t.Fatal(err)
		}
		if rec := statsRequest(failing, "/stats/summary", apiServer); rec.Code != http.StatusInternalServerError || !strings.Contains(rec.Body.String(), "runtime down") {
			t.Errorf("summary of a failing provider: %d %s", rec.Code, rec.Body)
		}
		if rec := statsRequest(failing, "/metrics/resource", apiServer); rec.Code != http.StatusOK || !strings.HasSuffix(rec.Body.String(), "\nresource_scrape_error 1\n") {
			t.Errorf("resource metrics of a failing provider: %d %s", rec.Code, rec.Body)
		}
	})

	t.Run("authentication and authorization", func(t *testing.T) {
		for _, path := range []string{"/stats/summary", "/metrics/resource"} {
			if rec := statsRequest(s, path, nil); rec.Code != http.StatusUnauthorized {
				t.Errorf("%s without a client certificate: %d, want 401", path, rec.Code)
			}
			if rec := statsRequest(s, path, &pkix.Name{CommonName: "bob"}); rec.Code != http.StatusForbidden {
				t.Errorf("%s as bob: %d, want 403", path, rec.Code)
			}
			if rec := statsRequest(s, path, &pkix.Name{CommonName: "admin", Organization: []string{MastersGroup}}); rec.Code != http.StatusOK {
				t.Errorf("%s as a cluster admin: %d, want 200", path, rec.Code)
			}
		}
	})

	t.Run("no provider", func(t *testing.T) {
		plain, err := New(Config{Runtime: CRI{}})
		if err != nil {
			t.Fatal(err)
		}
		if rec := statsRequest(plain, "/metrics/resource", apiServer); rec.Code != http.StatusNotFound {
			t.Errorf("resource metrics without a provider: %d, want 404", rec.Code)
		}
	})
}
