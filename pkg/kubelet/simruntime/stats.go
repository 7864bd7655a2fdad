package simruntime

import (
	"context"
	"hash/fnv"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"
)

// Synthetic usage of the simulated node itself (its "system daemons"),
// added to its pods' usage.
const (
	nodeBaseNanoCores = 50_000_000 // 50m
	nodeBaseMemory    = 256 << 20
)

// Usage of containers without requests: a few millicores and MiB.
const (
	bestEffortMinNanoCores = 1_000_000 // 1m
	bestEffortMaxNanoCores = 5_000_000 // 5m
	bestEffortMinMemory    = 4 << 20
	bestEffortMaxMemory    = 16 << 20
)

// containerUsage is the steady synthetic usage of one container.
type containerUsage struct {
	name      string
	nanoCores uint64 // CPU rate
	memory    uint64 // working set, bytes
}

// syntheticUsage derives each regular container's usage from its
// requests: 30-70% of the CPU and memory requests (a fraction fixed per
// pod UID and container name, so numbers are stable and differ between
// pods), capped at the limits; containers without requests use a few
// millicores and MiB.
func syntheticUsage(pod *corev1.Pod) []containerUsage {
	out := make([]containerUsage, 0, len(pod.Spec.Containers))
	for _, c := range pod.Spec.Containers {
		h := fnv.New64a()
		_, _ = h.Write([]byte(string(pod.UID) + "/" + c.Name))
		f := float64(h.Sum64()%1000) / 1000 // [0, 1)
		u := containerUsage{name: c.Name}
		if q, ok := request(c, corev1.ResourceCPU); ok && q.MilliValue() > 0 {
			u.nanoCores = uint64(float64(q.MilliValue()) * 1e6 * (0.3 + 0.4*f))
			if l, ok := c.Resources.Limits[corev1.ResourceCPU]; ok && uint64(l.MilliValue())*1e6 < u.nanoCores {
				u.nanoCores = uint64(l.MilliValue()) * 1e6
			}
		} else {
			u.nanoCores = bestEffortMinNanoCores + uint64(f*(bestEffortMaxNanoCores-bestEffortMinNanoCores))
		}
		if q, ok := request(c, corev1.ResourceMemory); ok && q.Value() > 0 {
			u.memory = uint64(float64(q.Value()) * (0.3 + 0.4*f))
			if l, ok := c.Resources.Limits[corev1.ResourceMemory]; ok && uint64(l.Value()) < u.memory {
				u.memory = uint64(l.Value())
			}
		} else {
			u.memory = bestEffortMinMemory + uint64(f*(bestEffortMaxMemory-bestEffortMinMemory))
		}
		out = append(out, u)
	}
	return out
}

// request is the container's request of r, or its limit when only that
// is set (what the API server's defaulting would make the request).
func request(c corev1.Container, r corev1.ResourceName) (resource.Quantity, bool) {
	if v, ok := c.Resources.Requests[r]; ok {
		return v, true
	}
	v, ok := c.Resources.Limits[r]
	return v, ok
}

// running returns when p's containers started and until when they run
// (the zero time: forever) at now; ok is false before they started.
func (r *Runtime) running(p *simPod, now time.Time) (start, end time.Time, ok bool) {
	start = p.created.Add(r.startupDelay)
	if now.Before(start) {
		return start, time.Time{}, false
	}
	if p.exits {
		end = start.Add(r.jobDuration)
	}
	return start, end, true
}

// cpuSeconds is the core-seconds a container using u has used from start
// until now (or until end, when it stopped).
func cpuSeconds(u containerUsage, start, end, now time.Time) float64 {
	if !end.IsZero() && end.Before(now) {
		now = end
	}
	if !now.After(start) {
		return 0
	}
	return float64(u.nanoCores) / 1e9 * now.Sub(start).Seconds()
}

// podCPUSeconds is the core-seconds all of p's containers used until now.
// Callers hold r.mu.
func (r *Runtime) podCPUSeconds(p *simPod, now time.Time) float64 {
	start, end, ok := r.running(p, now)
	if !ok {
		return 0
	}
	var sum float64
	for _, u := range p.usage {
		sum += cpuSeconds(u, start, end, now)
	}
	return sum
}

// Summary implements the kubelet server's StatsProvider with synthetic
// numbers (see syntheticUsage): each running container uses a steady CPU
// rate and working set since it started, a pod is the sum of its
// containers, and the node adds 50m and 256Mi of its own. Cumulative CPU
// grows with the runtime's clock, so rates computed from two summaries
// equal the synthetic rates.
func (r *Runtime) Summary(context.Context) (*statsapi.Summary, error) {
	now := r.clock.Now()
	ts := metav1.NewTime(now)
	r.mu.Lock()
	defer r.mu.Unlock()
	nodeCPU := float64(nodeBaseNanoCores)/1e9*now.Sub(r.started).Seconds() + r.retiredCPU
	nodeMem := uint64(nodeBaseMemory)
	pods := make([]statsapi.PodStats, 0, len(r.pods))
	for uid, p := range r.pods {
		nodeCPU += r.podCPUSeconds(p, now)
		start, end, ok := r.running(p, now)
		if !ok || (!end.IsZero() && !now.Before(end)) {
			continue // not started yet, or a finished job: no running containers
		}
		ps := statsapi.PodStats{
			PodRef:     statsapi.PodReference{Name: p.name, Namespace: p.namespace, UID: string(uid)},
			StartTime:  metav1.NewTime(p.created),
			Containers: make([]statsapi.ContainerStats, 0, len(p.usage)),
		}
		var podCPU, podMem uint64
		for _, u := range p.usage {
			cpu := uint64(cpuSeconds(u, start, end, now) * 1e9)
			rate, mem := u.nanoCores, u.memory
			ps.Containers = append(ps.Containers, statsapi.ContainerStats{
				Name:      u.name,
				StartTime: metav1.NewTime(start),
				CPU:       &statsapi.CPUStats{Time: ts, UsageCoreNanoSeconds: &cpu, UsageNanoCores: &rate},
				Memory:    &statsapi.MemoryStats{Time: ts, WorkingSetBytes: &mem, UsageBytes: &mem, RSSBytes: &mem},
			})
			podCPU += cpu
			podMem += mem
		}
		var podRate uint64
		for _, u := range p.usage {
			podRate += u.nanoCores
		}
		podMemCopy := podMem
		ps.CPU = &statsapi.CPUStats{Time: ts, UsageCoreNanoSeconds: &podCPU, UsageNanoCores: &podRate}
		ps.Memory = &statsapi.MemoryStats{Time: ts, WorkingSetBytes: &podMem, UsageBytes: &podMemCopy}
		nodeMem += podMem
		pods = append(pods, ps)
	}
	sort.Slice(pods, func(i, j int) bool {
		if pods[i].PodRef.Namespace != pods[j].PodRef.Namespace {
			return pods[i].PodRef.Namespace < pods[j].PodRef.Namespace
		}
		return pods[i].PodRef.Name < pods[j].PodRef.Name
	})
	nodeCPUNanos := uint64(nodeCPU * 1e9)
	nodeMemUsage := nodeMem
	return &statsapi.Summary{
		Node: statsapi.NodeStats{
			StartTime: metav1.NewTime(r.started),
			CPU:       &statsapi.CPUStats{Time: ts, UsageCoreNanoSeconds: &nodeCPUNanos},
			Memory:    &statsapi.MemoryStats{Time: ts, WorkingSetBytes: &nodeMem, UsageBytes: &nodeMemUsage},
		},
		Pods: pods,
	}, nil
}
