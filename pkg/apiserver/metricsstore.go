package apiserver

import (
	"math"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// The resource metrics store: what the scraper (metricsscrape.go) keeps of
// each node's kubelet /metrics/resource, and the usage it derives, as
// metrics-server does. It does no I/O and reads no clock.

// metricPoint is one sample of a node or container: cumulative CPU and the
// memory working set.
type metricPoint struct {
	// start is when the container started; zero for a node (the
	// resource metrics carry no node start time).
	start time.Time
	// at is when the cumulative CPU was read.
	at time.Time
	// cpu is the cumulative CPU time, in core-nanoseconds.
	cpu uint64
	// memory is the working set, in bytes.
	memory uint64
}

// series holds the last two usable samples of one node or container: the
// CPU rate is the difference between them.
type series struct {
	prev, last metricPoint
	hasPrev    bool
}

// advance returns the series after sample p. A sample not newer than the
// last one (the kubelet answered from a cache) changes nothing; a restart
// (the container started after the last sample) or a decrease of the
// cumulative CPU starts the series over from p, since no rate spans it.
func (s series) advance(p metricPoint) series {
	if s.last.at.IsZero() {
		return series{last: p}
	}
	if !p.at.After(s.last.at) {
		return s
	}
	if p.start.After(s.last.at) || p.cpu < s.last.cpu {
		return series{last: p}
	}
	return series{prev: s.last, last: p, hasPrev: true}
}

// usage is what metrics.k8s.io reports for one node or container.
type usage struct {
	nanoCores uint64 // CPU rate over the window
	memory    uint64 // working set at timestamp
	timestamp time.Time
	window    time.Duration
}

// usage computes the CPU rate between the two samples (usage = Δcpu/Δt
// over the window Δt) and the latest working set. ok is false until the
// series has two samples.
func (s series) usage() (usage, bool) {
	if !s.hasPrev {
		return usage{}, false
	}
	window := s.last.at.Sub(s.prev.at)
	if window <= 0 || s.last.cpu < s.prev.cpu {
		return usage{}, false
	}
	rate := float64(s.last.cpu-s.prev.cpu) / window.Seconds()
	return usage{nanoCores: uint64(math.Round(rate)), memory: s.last.memory, timestamp: s.last.at, window: window}, true
}

// resourceList renders u as metrics-server does: CPU in nano-cores
// (decimal), memory in bytes (binary).
func (u usage) resourceList() corev1.ResourceList {
	cpu := resource.NewScaledQuantity(clampInt64(u.nanoCores), resource.Nano)
	cpu.Format = resource.DecimalSI
	return corev1.ResourceList{
		corev1.ResourceCPU:    *cpu,
		corev1.ResourceMemory: *resource.NewQuantity(clampInt64(u.memory), resource.BinarySI),
	}
}

func clampInt64(v uint64) int64 {
	if v > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(v)
}

// containerKey names a container as the resource metrics label it.
type containerKey struct {
	namespace, pod, container string
}

// podKey names a pod.
type podKey struct {
	namespace, name string
}

// metricsBatch is one decoded scrape of a node's kubelet.
type metricsBatch struct {
	node       metricPoint
	hasNode    bool
	containers map[containerKey]metricPoint
}

// nodeMetricsState is what the store keeps of one node. Not safe for
// concurrent use: the scraper replaces it as a whole (see resourceMetrics).
type nodeMetricsState struct {
	node       series
	containers map[containerKey]series
	// pods indexes containers by pod, in no particular order.
	pods map[podKey][]string
}

// next returns the node's state after batch b: every series advanced by
// its new sample; containers missing from b are gone. settled reports
// whether every series now has two samples; when it is false a prompt
// second scrape makes the new node or containers visible.
func (n *nodeMetricsState) next(b metricsBatch) (out *nodeMetricsState, settled bool) {
	out = &nodeMetricsState{containers: make(map[containerKey]series, len(b.containers)), pods: map[podKey][]string{}}
	if n != nil {
		out.node = n.node
	}
	settled = true
	if b.hasNode {
		out.node = out.node.advance(b.node)
		settled = out.node.hasPrev
	}
	for k, p := range b.containers {
		var s series
		if n != nil {
			s = n.containers[k]
		}
		s = s.advance(p)
		out.containers[k] = s
		pk := podKey{k.namespace, k.pod}
		out.pods[pk] = append(out.pods[pk], k.container)
		if !s.hasPrev {
			settled = false
		}
	}
	return out, settled
}

// podUsage returns the usage of each container of the pod, and the pod's
// timestamp and window (those of the container sampled earliest, as
// metrics-server reports). ok is false unless every container the kubelet
// reported for the pod has a usage.
func (n *nodeMetricsState) podUsage(namespace, name string) (containers map[string]usage, earliest usage, ok bool) {
	names := n.pods[podKey{namespace, name}]
	if len(names) == 0 {
		return nil, usage{}, false
	}
	containers = make(map[string]usage, len(names))
	for _, c := range names {
		u, ok := n.containers[containerKey{namespace, name, c}].usage()
		if !ok {
			return nil, usage{}, false
		}
		containers[c] = u
		if earliest.timestamp.IsZero() || u.timestamp.Before(earliest.timestamp) {
			earliest = u
		}
	}
	return containers, earliest, true
}
