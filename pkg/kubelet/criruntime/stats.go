package criruntime

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	internalapi "k8s.io/cri-api/pkg/apis"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"
	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"
)

// userHZ is the unit of /proc/stat's CPU times: USER_HZ, 100 on every
// Linux architecture Skiff runs on.
const userHZ = 100

// Summary reports the node's and its pods' resource usage, as upstream's
// CRI stats provider does; it implements the kubelet server's
// StatsProvider.
//
//   - Node CPU comes from /proc/stat (busy time of all CPUs), node memory
//     from /proc/meminfo (working set = used − inactive file pages, the
//     memory the kernel cannot drop), the node's file system is the one
//     holding the pod logs, and the image file system is the CRI's
//     ImageFsInfo.
//   - Pods are the ready sandboxes carrying the pod labels, with their
//     running containers. Container CPU and memory come from CRI
//     ListContainerStats, pod CPU and memory from ListPodSandboxStats;
//     whatever the CRI leaves out is read from the pod's or container's
//     cgroup (cgroup v1 cpuacct/memory or v2 cpu.stat/memory.current under
//     the kubepods hierarchy), and a pod with neither is the sum of its
//     containers.
//   - usageNanoCores is derived from the previous call's cumulative
//     sample when the CRI does not report it.
//
// Summary is safe for concurrent use.
func (r *Runtime) Summary(ctx context.Context) (*statsapi.Summary, error) {
	sr := statsReader{
		rs:         r.rs,
		is:         r.is,
		procRoot:   "/proc",
		mounts:     r.cgroups.mounts,
		cgroupRoot: r.cfg.CgroupRoot,
		fsPath:     r.cfg.PodLogsRoot,
		now:        time.Now,
		rates:      &r.cpuRates,
	}
	return sr.summary(ctx)
}

// statsReader gathers one Summary. It is separate from Runtime so tests
// can point it at fake /proc and cgroup trees and a fake CRI.
type statsReader struct {
	rs         internalapi.RuntimeService
	is         internalapi.ImageManagerService
	procRoot   string        // where proc is mounted ("/proc")
	mounts     []cgroupMount // cgroup hierarchies
	cgroupRoot string        // the parent of "kubepods" (cgroupfs notation)
	fsPath     string        // a path on the node's (kubelet's) file system
	now        func() time.Time
	rates      *cpuRates // never nil
}

func (sr *statsReader) summary(ctx context.Context) (*statsapi.Summary, error) {
	node, err := sr.nodeStats(ctx)
	if err != nil {
		return nil, err
	}
	pods, err := sr.podStats(ctx)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{"node": true}
	sr.rates.fill("node", node.CPU)
	for i := range pods {
		p := &pods[i]
		key := "pod/" + p.PodRef.UID
		seen[key] = true
		sr.rates.fill(key, p.CPU)
		for j := range p.Containers {
			ckey := key + "/" + p.Containers[j].Name + "/" + strconv.FormatInt(p.Containers[j].StartTime.UnixNano(), 10)
			seen[ckey] = true
			sr.rates.fill(ckey, p.Containers[j].CPU)
		}
	}
	sr.rates.prune(seen)
	return &statsapi.Summary{Node: node, Pods: pods}, nil
}

// nodeStats reads the node's CPU, memory, file systems and process limits.
func (sr *statsReader) nodeStats(ctx context.Context) (statsapi.NodeStats, error) {
	var ns statsapi.NodeStats
	now := metav1.NewTime(sr.now())
	busy, boot, err := readProcStat(filepath.Join(sr.procRoot, "stat"))
	if err != nil {
		return ns, err
	}
	ns.StartTime = metav1.NewTime(boot)
	ns.CPU = &statsapi.CPUStats{Time: now, UsageCoreNanoSeconds: &busy}
	mem, err := readMeminfo(filepath.Join(sr.procRoot, "meminfo"))
	if err != nil {
		return ns, err
	}
	ns.Memory = mem.stats(now)
	if fs, err := statfs(sr.fsPath, now); err == nil {
		ns.Fs = fs
	} else {
		klog.V(4).InfoS("node file system stats", "path", sr.fsPath, "err", err)
	}
	ns.Rlimit = sr.rlimit(now)
	if fs, err := sr.imageFs(ctx, now); err == nil {
		ns.Runtime = &statsapi.RuntimeStats{ImageFs: fs, ContainerFs: fs}
	} else {
		klog.V(4).InfoS("image file system stats", "err", err)
	}
	return ns, nil
}

// imageFs is the CRI's image file system usage with the capacity of the
// file system holding it.
func (sr *statsReader) imageFs(ctx context.Context, now metav1.Time) (*statsapi.FsStats, error) {
	resp, err := sr.is.ImageFsInfo(ctx)
	if err != nil {
		return nil, fmt.Errorf("CRI ImageFsInfo: %w", err)
	}
	if len(resp.GetImageFilesystems()) == 0 {
		return nil, errors.New("CRI ImageFsInfo reported no image file system")
	}
	u := resp.ImageFilesystems[0]
	fs := &statsapi.FsStats{Time: now}
	if mp := u.GetFsId().GetMountpoint(); mp != "" {
		if st, err := statfs(mp, now); err == nil {
			fs = st
		}
	}
	if u.UsedBytes != nil {
		v := u.UsedBytes.Value
		fs.UsedBytes = &v
	}
	if u.InodesUsed != nil {
		v := u.InodesUsed.Value
		fs.InodesUsed = &v
	}
	return fs, nil
}

// rlimit reports pid_max and the number of processes, as upstream's node
// Rlimit stats do; missing files leave the fields out.
func (sr *statsReader) rlimit(now metav1.Time) *statsapi.RlimitStats {
	rl := &statsapi.RlimitStats{Time: now}
	if b, err := os.ReadFile(filepath.Join(sr.procRoot, "sys/kernel/pid_max")); err == nil {
		if v, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil {
			rl.MaxPID = &v
		}
	}
	// loadavg's fourth field is "running/total" scheduling entities.
	if b, err := os.ReadFile(filepath.Join(sr.procRoot, "loadavg")); err == nil {
		if f := strings.Fields(string(b)); len(f) >= 4 {
			if _, total, ok := strings.Cut(f[3], "/"); ok {
				if v, err := strconv.ParseInt(total, 10, 64); err == nil {
					rl.NumOfRunningProcesses = &v
				}
			}
		}
	}
	return rl
}

// podStats lists the ready sandboxes with our pod labels and their running
// containers, with their CPU and memory.
func (sr *statsReader) podStats(ctx context.Context) ([]statsapi.PodStats, error) {
	sandboxes, err := sr.rs.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{
		State: &runtimeapi.PodSandboxStateValue{State: runtimeapi.PodSandboxState_SANDBOX_READY},
	})
	if err != nil {
		return nil, fmt.Errorf("criruntime: listing pod sandboxes: %w", err)
	}
	containers, err := sr.rs.ListContainers(ctx, &runtimeapi.ContainerFilter{
		State: &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING},
	})
	if err != nil {
		return nil, fmt.Errorf("criruntime: listing containers: %w", err)
	}
	cstats, err := sr.rs.ListContainerStats(ctx, &runtimeapi.ContainerStatsFilter{})
	if err != nil {
		return nil, fmt.Errorf("criruntime: listing container stats: %w", err)
	}
	byContainer := make(map[string]*runtimeapi.ContainerStats, len(cstats))
	for _, st := range cstats {
		byContainer[st.GetAttributes().GetId()] = st
	}
	// Pod sandbox stats are optional in the CRI (containerd before 1.6
	// lacks them): without them the cgroup or the containers' sum serves.
	bySandbox := map[string]*runtimeapi.PodSandboxStats{}
	if pstats, err := sr.rs.ListPodSandboxStats(ctx, &runtimeapi.PodSandboxStatsFilter{}); err == nil {
		for _, st := range pstats {
			bySandbox[st.GetAttributes().GetId()] = st
		}
	} else {
		klog.V(4).InfoS("CRI ListPodSandboxStats failed; using cgroups", "err", err)
	}
	bySandboxID := map[string][]*runtimeapi.Container{}
	for _, c := range containers {
		bySandboxID[c.PodSandboxId] = append(bySandboxID[c.PodSandboxId], c)
	}

	// A pod restarted under the same UID can briefly have two ready
	// sandboxes: report the newest, as upstream's removeTerminatedPods.
	newest := map[string]*runtimeapi.PodSandbox{}
	for _, sb := range sandboxes {
		uid := sb.Labels[LabelPodUID]
		if uid == "" || sb.Labels[LabelPodName] == "" {
			continue
		}
		if cur, ok := newest[uid]; !ok || sb.CreatedAt > cur.CreatedAt {
			newest[uid] = sb
		}
	}
	out := make([]statsapi.PodStats, 0, len(newest))
	for uid, sb := range newest {
		ps := statsapi.PodStats{
			PodRef:     statsapi.PodReference{Name: sb.Labels[LabelPodName], Namespace: sb.Labels[LabelPodNamespace], UID: uid},
			StartTime:  metav1.NewTime(time.Unix(0, sb.CreatedAt)),
			Containers: []statsapi.ContainerStats{},
		}
		podDir := sr.podCgroup(uid)
		for _, c := range newestContainers(bySandboxID[sb.Id]) {
			ps.Containers = append(ps.Containers, sr.containerStats(c, byContainer[c.Id], podDir))
		}
		sort.Slice(ps.Containers, func(i, j int) bool { return ps.Containers[i].Name < ps.Containers[j].Name })
		var linux *runtimeapi.LinuxPodSandboxStats
		if st := bySandbox[sb.Id]; st != nil {
			linux = st.Linux
		}
		ps.CPU = cpuFromCRI(linux.GetCpu(), sr.now)
		ps.Memory = memoryFromCRI(linux.GetMemory(), sr.now)
		if (ps.CPU == nil || ps.Memory == nil) && podDir != "" {
			cpu, mem := sr.cgroupUsage(podDir)
			if ps.CPU == nil {
				ps.CPU = cpu
			}
			if ps.Memory == nil {
				ps.Memory = mem
			}
		}
		if ps.CPU == nil {
			ps.CPU = sumCPU(ps.Containers)
		}
		if ps.Memory == nil {
			ps.Memory = sumMemory(ps.Containers)
		}
		out = append(out, ps)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].PodRef.Namespace != out[j].PodRef.Namespace {
			return out[i].PodRef.Namespace < out[j].PodRef.Namespace
		}
		return out[i].PodRef.Name < out[j].PodRef.Name
	})
	return out, nil
}

// newestContainers keeps the newest running instance of each container
// name (a restart can briefly leave two).
func newestContainers(cs []*runtimeapi.Container) []*runtimeapi.Container {
	byName := map[string]*runtimeapi.Container{}
	for _, c := range cs {
		name := c.GetMetadata().GetName()
		if name == "" {
			name = c.Labels[LabelContainerName]
		}
		if cur, ok := byName[name]; !ok || c.CreatedAt > cur.CreatedAt {
			byName[name] = c
		}
	}
	out := make([]*runtimeapi.Container, 0, len(byName))
	for _, c := range byName {
		out = append(out, c)
	}
	return out
}

// containerStats converts the CRI's stats of c, reading the container's
// cgroup for whatever the CRI left out.
func (sr *statsReader) containerStats(c *runtimeapi.Container, st *runtimeapi.ContainerStats, podDir string) statsapi.ContainerStats {
	name := c.GetMetadata().GetName()
	if name == "" {
		name = c.Labels[LabelContainerName]
	}
	// Upstream's CRI stats provider reports the creation time as the
	// start time.
	cs := statsapi.ContainerStats{Name: name, StartTime: metav1.NewTime(time.Unix(0, c.CreatedAt))}
	cs.CPU = cpuFromCRI(st.GetCpu(), sr.now)
	cs.Memory = memoryFromCRI(st.GetMemory(), sr.now)
	if (cs.CPU == nil || cs.Memory == nil) && podDir != "" {
		// cgroupfs driver: runc puts a container in <parent>/<id>.
		cpu, mem := sr.cgroupUsage(podDir + "/" + c.Id)
		if cs.CPU == nil {
			cs.CPU = cpu
		}
		if cs.Memory == nil {
			cs.Memory = mem
		}
	}
	if wl := st.GetWritableLayer(); wl != nil && wl.UsedBytes != nil {
		used := wl.UsedBytes.Value
		cs.Rootfs = &statsapi.FsStats{Time: criTime(wl.Timestamp, sr.now), UsedBytes: &used}
		if wl.InodesUsed != nil {
			inodes := wl.InodesUsed.Value
			cs.Rootfs.InodesUsed = &inodes
		}
	}
	return cs
}

// criTime converts a CRI timestamp (ns since the epoch); zero means the
// runtime did not say, and now is used.
func criTime(ns int64, now func() time.Time) metav1.Time {
	if ns == 0 {
		return metav1.NewTime(now())
	}
	return metav1.NewTime(time.Unix(0, ns))
}

// cpuFromCRI converts CRI CPU usage; nil without a cumulative value.
func cpuFromCRI(u *runtimeapi.CpuUsage, now func() time.Time) *statsapi.CPUStats {
	if u == nil || u.UsageCoreNanoSeconds == nil {
		return nil
	}
	total := u.UsageCoreNanoSeconds.Value
	out := &statsapi.CPUStats{Time: criTime(u.Timestamp, now), UsageCoreNanoSeconds: &total}
	if u.UsageNanoCores != nil {
		v := u.UsageNanoCores.Value
		out.UsageNanoCores = &v
	}
	return out
}

// memoryFromCRI converts CRI memory usage; nil without a working set.
func memoryFromCRI(u *runtimeapi.MemoryUsage, now func() time.Time) *statsapi.MemoryStats {
	if u == nil || u.WorkingSetBytes == nil {
		return nil
	}
	ws := u.WorkingSetBytes.Value
	out := &statsapi.MemoryStats{Time: criTime(u.Timestamp, now), WorkingSetBytes: &ws}
	for _, f := range []struct {
		from *runtimeapi.UInt64Value
		to   **uint64
	}{
		{u.AvailableBytes, &out.AvailableBytes}, {u.UsageBytes, &out.UsageBytes}, {u.RssBytes, &out.RSSBytes},
		{u.PageFaults, &out.PageFaults}, {u.MajorPageFaults, &out.MajorPageFaults},
	} {
		if f.from != nil {
			v := f.from.Value
			*f.to = &v
		}
	}
	return out
}

// sumCPU adds up the containers' cumulative CPU, timed at the latest
// sample; nil if any container lacks one.
func sumCPU(cs []statsapi.ContainerStats) *statsapi.CPUStats {
	if len(cs) == 0 {
		return nil
	}
	var total uint64
	var at time.Time
	for _, c := range cs {
		if c.CPU == nil || c.CPU.UsageCoreNanoSeconds == nil {
			return nil
		}
		total += *c.CPU.UsageCoreNanoSeconds
		if c.CPU.Time.After(at) {
			at = c.CPU.Time.Time
		}
	}
	return &statsapi.CPUStats{Time: metav1.NewTime(at), UsageCoreNanoSeconds: &total}
}

// sumMemory adds up the containers' working sets; nil if any lacks one.
func sumMemory(cs []statsapi.ContainerStats) *statsapi.MemoryStats {
	if len(cs) == 0 {
		return nil
	}
	var ws uint64
	var at time.Time
	for _, c := range cs {
		if c.Memory == nil || c.Memory.WorkingSetBytes == nil {
			return nil
		}
		ws += *c.Memory.WorkingSetBytes
		if c.Memory.Time.After(at) {
			at = c.Memory.Time.Time
		}
	}
	return &statsapi.MemoryStats{Time: metav1.NewTime(at), WorkingSetBytes: &ws}
}

// podCgroup finds the pod's cgroup (cgroupfs notation) in any QoS class;
// "" when it does not exist.
func (sr *statsReader) podCgroup(uid string) string {
	base := strings.TrimRight(sr.cgroupRoot, "/") + "/kubepods"
	for _, qos := range []string{"", "/burstable", "/besteffort"} {
		p := base + qos + "/pod" + uid
		for _, m := range sr.mounts {
			if _, err := os.Stat(filepath.Join(m.path, p)); err == nil {
				return p
			}
		}
	}
	return ""
}

// cgroupUsage reads the cumulative CPU and the memory working set of the
// cgroup at path (cgroupfs notation): from the v1 cpuacct and memory
// hierarchies when mounted, else from the v2 hierarchy. Either result is
// nil when its files are missing.
func (sr *statsReader) cgroupUsage(path string) (*statsapi.CPUStats, *statsapi.MemoryStats) {
	now := metav1.NewTime(sr.now())
	var cpu *statsapi.CPUStats
	var mem *statsapi.MemoryStats
	for _, m := range sr.mounts {
		dir := filepath.Join(m.path, path)
		switch {
		case !m.v2 && m.controllers["cpuacct"] && cpu == nil:
			if v, err := readUint(filepath.Join(dir, "cpuacct.usage")); err == nil {
				cpu = &statsapi.CPUStats{Time: now, UsageCoreNanoSeconds: &v}
			}
		case !m.v2 && m.controllers["memory"] && mem == nil:
			mem = cgroupMemory(dir, "memory.usage_in_bytes", "total_inactive_file", now)
		}
	}
	for _, m := range sr.mounts {
		if !m.v2 {
			continue
		}
		dir := filepath.Join(m.path, path)
		if cpu == nil {
			if kv, err := readKeyValues(filepath.Join(dir, "cpu.stat")); err == nil {
				if usec, ok := kv["usage_usec"]; ok {
					v := usec * 1000
					cpu = &statsapi.CPUStats{Time: now, UsageCoreNanoSeconds: &v}
				}
			}
		}
		if mem == nil {
			mem = cgroupMemory(dir, "memory.current", "inactive_file", now)
		}
	}
	return cpu, mem
}

// cgroupMemory computes the working set as cadvisor does: usage minus
// inactive file pages, never below zero.
func cgroupMemory(dir, usageFile, inactiveKey string, now metav1.Time) *statsapi.MemoryStats {
	usage, err := readUint(filepath.Join(dir, usageFile))
	if err != nil {
		return nil
	}
	ws := usage
	if kv, err := readKeyValues(filepath.Join(dir, "memory.stat")); err == nil {
		if inactive := kv[inactiveKey]; inactive < ws {
			ws -= inactive
		} else {
			ws = 0
		}
	}
	return &statsapi.MemoryStats{Time: now, UsageBytes: &usage, WorkingSetBytes: &ws}
}

// readProcStat returns the CPUs' busy time (user, nice, system, irq,
// softirq and steal; guest time is already in user) in nanoseconds, and
// the boot time.
func readProcStat(path string) (busy uint64, boot time.Time, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("criruntime: reading %s: %w", path, err)
	}
	found := false
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) >= 9 && f[0] == "cpu":
			var ticks uint64
			for _, i := range []int{1, 2, 3, 6, 7, 8} { // user nice system irq softirq steal
				v, err := strconv.ParseUint(f[i], 10, 64)
				if err != nil {
					return 0, time.Time{}, fmt.Errorf("criruntime: parsing %s line %q: %w", path, sc.Text(), err)
				}
				ticks += v
			}
			busy = ticks * uint64(time.Second/userHZ)
			found = true
		case len(f) == 2 && f[0] == "btime":
			if s, err := strconv.ParseInt(f[1], 10, 64); err == nil {
				boot = time.Unix(s, 0)
			}
		}
	}
	if !found {
		return 0, time.Time{}, fmt.Errorf("criruntime: no cpu line in %s", path)
	}
	return busy, boot, nil
}

// meminfo holds the /proc/meminfo fields the node's memory stats need, in
// bytes.
type meminfo struct {
	total, free, available, inactiveFile, anon uint64
	hasAvailable                               bool
}

func readMeminfo(path string) (meminfo, error) {
	var m meminfo
	b, err := os.ReadFile(path)
	if err != nil {
		return m, fmt.Errorf("criruntime: reading %s: %w", path, err)
	}
	seen := 0
	for _, line := range strings.Split(string(b), "\n") {
		key, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		kb, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			continue
		}
		v := kb * 1024
		switch key {
		case "MemTotal":
			m.total, seen = v, seen|1
		case "MemFree":
			m.free, seen = v, seen|2
		case "MemAvailable":
			m.available, m.hasAvailable = v, true
		case "Inactive(file)":
			m.inactiveFile = v
		case "AnonPages":
			m.anon = v
		}
	}
	if seen != 3 {
		return m, fmt.Errorf("criruntime: %s lacks MemTotal or MemFree", path)
	}
	return m, nil
}

// stats is the node's memory as cadvisor computes it for the root cgroup:
// usage = total − free, working set = usage − inactive file pages.
func (m meminfo) stats(now metav1.Time) *statsapi.MemoryStats {
	usage := m.total - min(m.free, m.total)
	ws := usage - min(m.inactiveFile, usage)
	rss := m.anon
	out := &statsapi.MemoryStats{Time: now, UsageBytes: &usage, WorkingSetBytes: &ws, RSSBytes: &rss}
	if m.hasAvailable {
		avail := m.available
		out.AvailableBytes = &avail
	}
	return out
}

// statfs reports the file system holding path.
func statfs(path string, now metav1.Time) (*statsapi.FsStats, error) {
	if path == "" {
		return nil, errors.New("no path")
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return nil, fmt.Errorf("statfs %s: %w", path, err)
	}
	bsize := uint64(st.Bsize)
	capacity, avail, used := st.Blocks*bsize, st.Bavail*bsize, (st.Blocks-st.Bfree)*bsize
	inodes, free := st.Files, st.Ffree
	inodesUsed := inodes - min(free, inodes)
	return &statsapi.FsStats{Time: now, CapacityBytes: &capacity, AvailableBytes: &avail, UsedBytes: &used,
		Inodes: &inodes, InodesFree: &free, InodesUsed: &inodesUsed}, nil
}

func readUint(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parsing %s: %w", path, err)
	}
	return v, nil
}

// readKeyValues reads a flat keyed cgroup file ("key value" lines).
func readKeyValues(path string) (map[string]uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out := map[string]uint64{}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		if n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64); err == nil {
			out[k] = n
		}
	}
	return out, nil
}

// cpuRates derives usageNanoCores from consecutive cumulative samples
// when the CRI does not report it, as upstream's CRI stats provider does
// with its cache of the previous sample. The zero value is ready to use.
type cpuRates struct {
	mu   sync.Mutex
	last map[string]cpuSample // by series key; guarded by mu
}

type cpuSample struct {
	at    time.Time
	total uint64  // cumulative core-nanoseconds
	rate  *uint64 // the usageNanoCores reported with it, if any
}

// fill records st's cumulative sample under key and sets
// st.UsageNanoCores from the previous one when the runtime did not.
func (c *cpuRates) fill(key string, st *statsapi.CPUStats) {
	if st == nil || st.UsageCoreNanoSeconds == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.last == nil {
		c.last = map[string]cpuSample{}
	}
	cur := cpuSample{at: st.Time.Time, total: *st.UsageCoreNanoSeconds}
	prev, ok := c.last[key]
	if ok && !cur.at.After(prev.at) {
		// An older or repeated sample (a concurrent call): keep the
		// newer one and compute nothing from it.
		if st.UsageNanoCores == nil && cur.at.Equal(prev.at) && prev.rate != nil {
			v := *prev.rate
			st.UsageNanoCores = &v
		}
		return
	}
	if ok && cur.total >= prev.total && st.UsageNanoCores == nil {
		v := uint64(float64(cur.total-prev.total) / cur.at.Sub(prev.at).Seconds())
		st.UsageNanoCores = &v
	}
	cur.rate = st.UsageNanoCores
	c.last[key] = cur
}

// prune forgets the series not in seen (pods and containers gone).
func (c *cpuRates) prune(seen map[string]bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k := range c.last {
		if !seen[k] {
			delete(c.last, k)
		}
	}
}
