package server

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"k8s.io/klog/v2"
	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"
)

// StatsProvider reports the resource usage of the node and of its pods,
// for /stats/summary and /metrics/resource. The CRI runtime
// (criruntime.Runtime) and the simulated one (simruntime.Runtime)
// implement it. Implementations must be safe for concurrent use.
type StatsProvider interface {
	// Summary returns the node's and its running pods' statistics.
	// Cumulative CPU usage (UsageCoreNanoSeconds) of a running container,
	// pod or node never decreases, and every CPU and memory sample carries
	// the time it was taken (CPUStats.Time, MemoryStats.Time), because
	// the metrics pipeline computes rates from two samples. Pods holds
	// only pods with a running sandbox and their running containers. The
	// server fills Node.NodeName when it is empty.
	Summary(ctx context.Context) (*statsapi.Summary, error)
}

// summaryTimeout bounds one Summary call, so a stuck runtime cannot hold
// a scraper's connection forever.
const summaryTimeout = 30 * time.Second

// summary asks the provider for a summary and names the node.
func (s *Server) summary(ctx context.Context) (*statsapi.Summary, error) {
	ctx, cancel := context.WithTimeout(ctx, summaryTimeout)
	defer cancel()
	sum, err := s.cfg.Stats.Summary(ctx)
	if err != nil {
		return nil, fmt.Errorf("stats summary: %w", err)
	}
	if sum.Node.NodeName == "" {
		sum.Node.NodeName = s.cfg.NodeName
	}
	return sum, nil
}

// serveStatsSummary answers GET /stats/summary with upstream's Summary
// (JSON, indented as the kubelet writes it). only_cpu_and_memory=true keeps
// only the CPU and memory statistics, as upstream's parameter does.
func (s *Server) serveStatsSummary(w http.ResponseWriter, r *http.Request) {
	onlyCPUAndMemory := false
	if v := r.URL.Query().Get("only_cpu_and_memory"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			http.Error(w, fmt.Sprintf("invalid only_cpu_and_memory %q: %v", v, err), http.StatusBadRequest)
			return
		}
		onlyCPUAndMemory = b
	}
	sum, err := s.summary(r.Context())
	if err != nil {
		http.Error(w, "Internal Error: "+err.Error(), http.StatusInternalServerError)
		return
	}
	if onlyCPUAndMemory {
		sum = cpuAndMemoryOnly(sum)
	}
	body, err := json.MarshalIndent(sum, "", "  ")
	if err != nil {
		http.Error(w, "Internal Error: encoding summary: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}

// cpuAndMemoryOnly copies the parts of sum that upstream's
// only_cpu_and_memory summary keeps.
func cpuAndMemoryOnly(sum *statsapi.Summary) *statsapi.Summary {
	out := &statsapi.Summary{Node: statsapi.NodeStats{
		NodeName: sum.Node.NodeName, StartTime: sum.Node.StartTime, CPU: sum.Node.CPU, Memory: sum.Node.Memory,
	}}
	for _, sc := range sum.Node.SystemContainers {
		out.Node.SystemContainers = append(out.Node.SystemContainers, statsapi.ContainerStats{Name: sc.Name, StartTime: sc.StartTime, CPU: sc.CPU, Memory: sc.Memory})
	}
	out.Pods = make([]statsapi.PodStats, 0, len(sum.Pods))
	for _, p := range sum.Pods {
		ps := statsapi.PodStats{PodRef: p.PodRef, StartTime: p.StartTime, CPU: p.CPU, Memory: p.Memory,
			Containers: make([]statsapi.ContainerStats, 0, len(p.Containers))}
		for _, c := range p.Containers {
			ps.Containers = append(ps.Containers, statsapi.ContainerStats{Name: c.Name, StartTime: c.StartTime, CPU: c.CPU, Memory: c.Memory})
		}
		out.Pods = append(out.Pods, ps)
	}
	return out
}

// resourceMetricsContentType is the Prometheus text exposition format.
const resourceMetricsContentType = "text/plain; version=0.0.4; charset=utf-8"

// serveResourceMetrics answers GET /metrics/resource: upstream's resource
// metrics in the Prometheus text format, each sample with the time it was
// taken. A failing provider yields resource_scrape_error 1 and no other
// sample, as upstream's collector does, with status 200.
func (s *Server) serveResourceMetrics(w http.ResponseWriter, r *http.Request) {
	sum, err := s.summary(r.Context())
	if err != nil {
		klog.V(2).InfoS("resource metrics: summary failed", "err", err)
		sum = nil
	}
	w.Header().Set("Content-Type", resourceMetricsContentType)
	if err := WriteResourceMetrics(w, sum); err != nil {
		klog.V(2).InfoS("writing resource metrics", "err", err)
	}
}

// Upstream's resource metric families (k8s.io/kubernetes
// pkg/kubelet/metrics/collectors/resource_metrics.go), all STABLE.
var resourceFamilies = map[string]struct{ help, typ string }{
	"container_cpu_usage_seconds_total":  {"Cumulative cpu time consumed by the container in core-seconds", "counter"},
	"container_memory_working_set_bytes": {"Current working set of the container in bytes", "gauge"},
	"container_start_time_seconds":       {"Start time of the container since unix epoch in seconds", "gauge"},
	"node_cpu_usage_seconds_total":       {"Cumulative cpu time consumed by the node in core-seconds", "counter"},
	"node_memory_working_set_bytes":      {"Current working set of the node in bytes", "gauge"},
	"pod_cpu_usage_seconds_total":        {"Cumulative cpu time consumed by the pod in core-seconds", "counter"},
	"pod_memory_working_set_bytes":       {"Current working set of the pod in bytes", "gauge"},
	"resource_scrape_error":              {"1 if there was an error while getting container metrics, 0 otherwise", "gauge"},
}

// sample is one line of the exposition: labels in name order.
type sample struct {
	labels [][2]string
	value  float64
	ts     time.Time // zero: no timestamp
}

// WriteResourceMetrics writes sum as upstream's /metrics/resource: the
// families in name order, samples within a family ordered by their label
// values (as a Prometheus registry gathers them), families without
// samples left out. A nil sum is a failed scrape: resource_scrape_error 1
// and nothing else.
func WriteResourceMetrics(w io.Writer, sum *statsapi.Summary) error {
	families := map[string][]sample{}
	add := func(name string, value float64, ts time.Time, labels ...[2]string) {
		families[name] = append(families[name], sample{labels: labels, value: value, ts: ts})
	}
	if sum == nil {
		add("resource_scrape_error", 1, time.Time{})
	} else {
		add("resource_scrape_error", 0, time.Time{})
		n := sum.Node
		if n.CPU != nil && n.CPU.UsageCoreNanoSeconds != nil {
			add("node_cpu_usage_seconds_total", coreSeconds(*n.CPU.UsageCoreNanoSeconds), n.CPU.Time.Time)
		}
		if n.Memory != nil && n.Memory.WorkingSetBytes != nil {
			add("node_memory_working_set_bytes", float64(*n.Memory.WorkingSetBytes), n.Memory.Time.Time)
		}
		for _, p := range sum.Pods {
			podLabels := [][2]string{{"namespace", p.PodRef.Namespace}, {"pod", p.PodRef.Name}}
			for _, c := range p.Containers {
				labels := [][2]string{{"container", c.Name}, {"namespace", p.PodRef.Namespace}, {"pod", p.PodRef.Name}}
				if c.StartTime.Unix() > 0 {
					add("container_start_time_seconds", float64(c.StartTime.UnixNano())/float64(time.Second), c.StartTime.Time, labels...)
				}
				if c.CPU != nil && c.CPU.UsageCoreNanoSeconds != nil {
					add("container_cpu_usage_seconds_total", coreSeconds(*c.CPU.UsageCoreNanoSeconds), c.CPU.Time.Time, labels...)
				}
				if c.Memory != nil && c.Memory.WorkingSetBytes != nil {
					add("container_memory_working_set_bytes", float64(*c.Memory.WorkingSetBytes), c.Memory.Time.Time, labels...)
				}
			}
			if p.CPU != nil && p.CPU.UsageCoreNanoSeconds != nil {
				add("pod_cpu_usage_seconds_total", coreSeconds(*p.CPU.UsageCoreNanoSeconds), p.CPU.Time.Time, podLabels...)
			}
			if p.Memory != nil && p.Memory.WorkingSetBytes != nil {
				add("pod_memory_working_set_bytes", float64(*p.Memory.WorkingSetBytes), p.Memory.Time.Time, podLabels...)
			}
		}
	}
	names := make([]string, 0, len(families))
	for name := range families {
		names = append(names, name)
	}
	sort.Strings(names)
	bw := bufio.NewWriter(w)
	for _, name := range names {
		samples := families[name]
		sort.SliceStable(samples, func(i, j int) bool { return labelsLess(samples[i].labels, samples[j].labels) })
		f := resourceFamilies[name]
		fmt.Fprintf(bw, "# HELP %s [STABLE] %s\n# TYPE %s %s\n", name, f.help, name, f.typ)
		for _, s := range samples {
			bw.WriteString(name)
			if len(s.labels) > 0 {
				bw.WriteByte('{')
				for i, l := range s.labels {
					if i > 0 {
						bw.WriteByte(',')
					}
					bw.WriteString(l[0])
					bw.WriteString(`="`)
					bw.WriteString(escapeLabelValue(l[1]))
					bw.WriteByte('"')
				}
				bw.WriteByte('}')
			}
			bw.WriteByte(' ')
			bw.WriteString(strconv.FormatFloat(s.value, 'g', -1, 64))
			if !s.ts.IsZero() {
				bw.WriteByte(' ')
				bw.WriteString(strconv.FormatInt(s.ts.UnixMilli(), 10))
			}
			bw.WriteByte('\n')
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("writing resource metrics: %w", err)
	}
	return nil
}

func coreSeconds(nanos uint64) float64 { return float64(nanos) / float64(time.Second) }

func labelsLess(a, b [][2]string) bool {
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i][1] != b[i][1] {
			return a[i][1] < b[i][1]
		}
	}
	return len(a) < len(b)
}

// labelValueEscaper escapes what the text format escapes in label values:
// backslash, newline and double quote.
var labelValueEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)

func escapeLabelValue(v string) string { return labelValueEscaper.Replace(v) }
