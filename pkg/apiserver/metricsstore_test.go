package apiserver

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"

	kserver "github.com/skiff-project/skiff/pkg/kubelet/server"
)

var mt0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func at(sec float64) time.Time { return mt0.Add(time.Duration(sec * float64(time.Second))) }

func TestSeriesRate(t *testing.T) {
	start := at(-100)
	p := func(sec float64, cpu, mem uint64) metricPoint {
		return metricPoint{start: start, at: at(sec), cpu: cpu, memory: mem}
	}
	for _, tc := range []struct {
		name   string
		points []metricPoint
		want   *usage
	}{
		{name: "one sample has no rate", points: []metricPoint{p(0, 1e9, 10)}},
		{name: "usage is Δcpu/Δt over the window Δt, memory the latest",
			points: []metricPoint{p(0, 1e9, 10), p(15, 4e9, 20)},
			want:   &usage{nanoCores: 2e8, memory: 20, timestamp: at(15), window: 15 * time.Second}},
		{name: "the last two samples count",
			points: []metricPoint{p(0, 1e9, 10), p(10, 2e9, 20), p(12, 3e9, 30)},
			want:   &usage{nanoCores: 5e8, memory: 30, timestamp: at(12), window: 2 * time.Second}},
		{name: "a repeated (cached) sample changes nothing",
			points: []metricPoint{p(0, 1e9, 10), p(10, 2e9, 20), p(10, 2e9, 99)},
			want:   &usage{nanoCores: 1e8, memory: 20, timestamp: at(10), window: 10 * time.Second}},
		{name: "an older sample changes nothing",
			points: []metricPoint{p(0, 1e9, 10), p(10, 2e9, 20), p(5, 9e9, 99)},
			want:   &usage{nanoCores: 1e8, memory: 20, timestamp: at(10), window: 10 * time.Second}},
		{name: "a decreasing counter starts over",
			points: []metricPoint{p(0, 5e9, 10), p(10, 1e9, 20)}},
		{name: "a restart after the last sample starts over",
			points: []metricPoint{p(0, 5e9, 10), {start: at(5), at: at(10), cpu: 6e9, memory: 20}}},
		{name: "a restart then a new sample has a rate again",
			points: []metricPoint{p(0, 5e9, 10), {start: at(5), at: at(10), cpu: 1e9, memory: 20}, {start: at(5), at: at(20), cpu: 2e9, memory: 30}},
			want:   &usage{nanoCores: 1e8, memory: 30, timestamp: at(20), window: 10 * time.Second}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s series
			for _, pt := range tc.points {
				s = s.advance(pt)
			}
			u, ok := s.usage()
			if tc.want == nil {
				if ok {
					t.Errorf("usage = %+v, want none", u)
				}
				return
			}
			if !ok {
				t.Fatalf("no usage, want %+v", *tc.want)
			}
			if diff := cmp.Diff(*tc.want, u, cmp.AllowUnexported(usage{})); diff != "" {
				t.Errorf("usage (-want +got):\n%s", diff)
			}
		})
	}
}

func TestUsageResourceList(t *testing.T) {
	rl := usage{nanoCores: 12345678, memory: 10 << 20}.resourceList()
	cpu, mem := rl["cpu"], rl["memory"]
	if cpu.String() != "12345678n" || mem.String() != "10Mi" {
		t.Errorf("usage renders as cpu %s memory %s, want 12345678n and 10Mi (metrics-server's units)", cpu.String(), mem.String())
	}
}

func TestNodeStateNext(t *testing.T) {
	web := containerKey{"default", "web", "nginx"}
	side := containerKey{"default", "web", "side"}
	batch := func(sec float64, cpu uint64, containers ...containerKey) metricsBatch {
		b := metricsBatch{hasNode: true, node: metricPoint{at: at(sec), cpu: cpu * 10, memory: 1000}, containers: map[containerKey]metricPoint{}}
		for _, k := range containers {
			b.containers[k] = metricPoint{start: at(-1), at: at(sec), cpu: cpu, memory: 100}
		}
		return b
	}
	var st *nodeMetricsState
	st, settled := st.next(batch(0, 1e9, web))
	if settled {
		t.Error("first scrape settled")
	}
	if _, _, ok := st.podUsage("default", "web"); ok {
		t.Error("pod usage after one scrape")
	}
	st, settled = st.next(batch(2, 2e9, web))
	if !settled {
		t.Error("second scrape not settled")
	}
	cs, earliest, ok := st.podUsage("default", "web")
	if !ok || cs["nginx"].nanoCores != 5e8 || earliest.window != 2*time.Second {
		t.Errorf("pod usage = %+v %+v %v", cs, earliest, ok)
	}
	if u, ok := st.node.usage(); !ok || u.nanoCores != 5e9 {
		t.Errorf("node usage = %+v %v, want 5 cores", u, ok)
	}
	// A new container: unsettled, and the pod has no usage until it has
	// two samples too.
	st, settled = st.next(batch(4, 3e9, web, side))
	if settled {
		t.Error("scrape with a new container settled")
	}
	if _, _, ok := st.podUsage("default", "web"); ok {
		t.Error("pod usage with a container seen once")
	}
	st, _ = st.next(batch(6, 4e9, web, side))
	if cs, _, ok := st.podUsage("default", "web"); !ok || len(cs) != 2 {
		t.Errorf("pod usage = %+v %v, want both containers", cs, ok)
	}
	// A pod gone from the scrape is gone from the store.
	st, _ = st.next(batch(8, 5e9))
	if _, _, ok := st.podUsage("default", "web"); ok || len(st.containers) != 0 {
		t.Errorf("deleted pod still has usage: %+v", st.containers)
	}
	// A scrape without the node's samples keeps the node settled.
	if _, settled := st.next(metricsBatch{}); !settled {
		t.Error("scrape without node samples and containers not settled")
	}
}

// TestDecodeKubeletOutput decodes what the kubelet server writes.
func TestDecodeKubeletOutput(t *testing.T) {
	u := func(v uint64) *uint64 { return &v }
	t1 := metav1.NewTime(time.UnixMilli(1700000001456))
	start := metav1.NewTime(time.Unix(1699999000, 500000000))
	sum := &statsapi.Summary{
		Node: statsapi.NodeStats{
			CPU:    &statsapi.CPUStats{Time: t1, UsageCoreNanoSeconds: u(197853363000)},
			Memory: &statsapi.MemoryStats{Time: t1, WorkingSetBytes: u(686260224)},
		},
		Pods: []statsapi.PodStats{{
			PodRef: statsapi.PodReference{Name: `we"b`, Namespace: "default"},
			Containers: []statsapi.ContainerStats{{
				Name: "nginx", StartTime: start,
				CPU:    &statsapi.CPUStats{Time: t1, UsageCoreNanoSeconds: u(2500000123)},
				Memory: &statsapi.MemoryStats{Time: t1, WorkingSetBytes: u(10 << 20)},
			}},
		}},
	}
	var b strings.Builder
	if err := kserver.WriteResourceMetrics(&b, sum); err != nil {
		t.Fatal(err)
	}
	got, err := decodeResourceMetrics([]byte(b.String()), mt0)
	if err != nil {
		t.Fatal(err)
	}
	want := metricsBatch{
		hasNode: true,
		node:    metricPoint{at: t1.Time, cpu: 197853363000, memory: 686260224},
		containers: map[containerKey]metricPoint{
			{"default", `we"b`, "nginx"}: {start: start.Time, at: t1.Time, cpu: 2500000123, memory: 10 << 20},
		},
	}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(metricsBatch{}, metricPoint{}, containerKey{})); diff != "" {
		t.Errorf("decoded (-want +got):\n%s", diff)
	}
}

func TestDecodeResourceMetrics(t *testing.T) {
	text := `# HELP whatever
node_cpu_usage_seconds_total 10.5
node_memory_working_set_bytes 2048 1700000000000
container_cpu_usage_seconds_total{container="a",namespace="ns",pod="ok"} 1.5 1700000000000
container_memory_working_set_bytes{container="a",namespace="ns",pod="ok",} 100 1700000000000
container_cpu_usage_seconds_total{container="a",namespace="ns",pod="half"} 1 1700000000000
container_memory_working_set_bytes{container="a",namespace="ns",pod="half"} 1 1700000000000
container_cpu_usage_seconds_total{container="b",namespace="ns",pod="half"} 1 1700000000000
container_cpu_usage_seconds_total{container="x\\y\nz",namespace="ns",pod="esc"} 2 1700000000000
container_memory_working_set_bytes{container="x\\y\nz",namespace="ns",pod="esc"} 2 1700000000000
some_other_metric{label="v"} 42
`
	got, err := decodeResourceMetrics([]byte(text), mt0)
	if err != nil {
		t.Fatal(err)
	}
	if !got.hasNode || !got.node.at.Equal(mt0) || got.node.cpu != 10.5e9 || got.node.memory != 2048 {
		t.Errorf("node = %+v (a sample without timestamp is taken at the scrape time)", got.node)
	}
	var keys []string
	for k := range got.containers {
		keys = append(keys, k.pod+"/"+k.container)
	}
	if len(keys) != 2 || got.containers[containerKey{"ns", "ok", "a"}].memory != 100 || got.containers[containerKey{"ns", "esc", "x\\y\nz"}].cpu != 2e9 {
		t.Errorf("containers = %v; want ok/a and esc/x\\y\\nz, pod half dropped for its incomplete container b", keys)
	}

	for _, bad := range []string{
		"resource_scrape_error 1\n",
		"node_cpu_usage_seconds_total NaN\n",
		"node_cpu_usage_seconds_total -1\n",
		"container_cpu_usage_seconds_total{container=\"a\" 1\n",
		"node_cpu_usage_seconds_total 1 2 3\n",
		"node_cpu_usage_seconds_total one\n",
	} {
		if _, err := decodeResourceMetrics([]byte(bad), mt0); err == nil {
			t.Errorf("decoding %q succeeded", bad)
		}
	}
}

// scripted answers scrapes from a table and records them.
type scripted struct {
	mu      sync.Mutex
	calls   []string
	batches map[string]metricsBatch
	fail    map[string]bool
}

func (s *scripted) scrape(_ context.Context, t scrapeTarget) (metricsBatch, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, t.node)
	if s.fail[t.node] {
		return metricsBatch{}, errors.New("connection refused")
	}
	return s.batches[t.node], nil
}

func (s *scripted) take() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.calls
	s.calls = nil
	return c
}

func TestScrapeRounds(t *testing.T) {
	m := newResourceMetrics(15 * time.Second)
	if m.followUp != 3*time.Second {
		t.Fatalf("followUp = %v, want 3s", m.followUp)
	}
	ctx := context.Background()
	nodeBatch := func(sec float64) metricsBatch {
		return metricsBatch{hasNode: true, node: metricPoint{at: at(sec), cpu: uint64(sec * 1e9), memory: 1}}
	}
	sc := &scripted{batches: map[string]metricsBatch{"a": nodeBatch(0)}, fail: map[string]bool{"dead": true}}
	targets := []scrapeTarget{{node: "a"}, {node: "dead"}}

	// New nodes are scraped at once; a follow-up comes soon after the
	// first sample.
	next := m.round(ctx, at(0), targets, sc.scrape)
	if got := sc.take(); len(got) != 2 {
		t.Fatalf("first round scraped %v, want both nodes", got)
	}
	if !next.Equal(at(3)) {
		t.Errorf("next round at %v, want the follow-up at +3s", next.Sub(mt0))
	}
	sc.batches["a"] = nodeBatch(3)
	next = m.round(ctx, at(3), targets, sc.scrape)
	if got := sc.take(); !cmp.Equal(got, []string{"a"}) {
		t.Errorf("follow-up round scraped %v, want [a] (dead backs off for a resolution)", got)
	}
	if u, ok := m.node("a").node.usage(); !ok || u.nanoCores != 1e9 {
		t.Errorf("node a usage after two scrapes = %+v %v", u, ok)
	}
	if m.node("dead") != nil {
		t.Error("a failing node has metrics")
	}
	// Settled: the next scrape of a is a resolution later; dead's retry
	// (15 s after its failure) comes first.
	if !next.Equal(at(6)) {
		t.Errorf("next round at %v, want +6s (new nodes are looked for every follow-up period)", next.Sub(mt0))
	}
	m.round(ctx, at(6), targets, sc.scrape)
	if got := sc.take(); len(got) != 0 {
		t.Errorf("round at +6s scraped %v, want nothing due", got)
	}
	m.round(ctx, at(15), targets, sc.scrape)
	if got := sc.take(); !cmp.Equal(got, []string{"dead"}) {
		t.Errorf("round at +15s scraped %v, want [dead]", got)
	}
	// dead failed twice: it backs off 30 s.
	m.round(ctx, at(18), targets, sc.scrape)
	if got := sc.take(); !cmp.Equal(got, []string{"a"}) {
		t.Errorf("round at +18s scraped %v, want [a]", got)
	}
	m.round(ctx, at(44), targets, sc.scrape)
	if got := sc.take(); !cmp.Equal(got, []string{"a"}) {
		t.Errorf("round at +44s scraped %v, want [a] (due since +33s), not dead", got)
	}
	m.round(ctx, at(45), targets, sc.scrape)
	if got := sc.take(); !cmp.Equal(got, []string{"dead"}) {
		t.Errorf("round at +45s scraped %v, want [dead] after 30 s", got)
	}
	// A deleted node is forgotten.
	m.round(ctx, at(46), targets[1:], sc.scrape)
	if m.node("a") != nil {
		t.Error("deleted node a still has metrics")
	}
}

// BenchmarkDecodeResourceMetrics decodes a full node's resource metrics:
// 110 pods of 2 containers, as the kubelet server writes them.
func BenchmarkDecodeResourceMetrics(b *testing.B) {
	u := func(v uint64) *uint64 { return &v }
	now := metav1.NewTime(time.Now())
	sum := &statsapi.Summary{Node: statsapi.NodeStats{
		CPU:    &statsapi.CPUStats{Time: now, UsageCoreNanoSeconds: u(1e12)},
		Memory: &statsapi.MemoryStats{Time: now, WorkingSetBytes: u(1 << 30)},
	}}
	for i := range 110 {
		p := statsapi.PodStats{PodRef: statsapi.PodReference{Namespace: "default", Name: "pod-" + strings.Repeat("x", i%7) + string(rune('a'+i%26))}}
		for _, c := range []string{"app", "sidecar"} {
			p.Containers = append(p.Containers, statsapi.ContainerStats{Name: c, StartTime: now,
				CPU: &statsapi.CPUStats{Time: now, UsageCoreNanoSeconds: u(uint64(i) * 1e9)}, Memory: &statsapi.MemoryStats{Time: now, WorkingSetBytes: u(1 << 20)}})
		}
		p.CPU, p.Memory = p.Containers[0].CPU, p.Containers[0].Memory
		sum.Pods = append(sum.Pods, p)
	}
	var buf strings.Builder
	if err := kserver.WriteResourceMetrics(&buf, sum); err != nil {
		b.Fatal(err)
	}
	text := []byte(buf.String())
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeResourceMetrics(text, mt0); err != nil {
			b.Fatal(err)
		}
	}
}
