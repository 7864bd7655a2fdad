package criruntime

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	internalapi "k8s.io/cri-api/pkg/apis"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	statsapi "k8s.io/kubelet/pkg/apis/stats/v1alpha1"
)

// fakeStatsCRI implements the CRI calls Summary makes (the embedded nil
// interfaces panic on any other). Its list filters are the state filters
// Summary uses.
type fakeStatsCRI struct {
	internalapi.RuntimeService
	sandboxes       []*runtimeapi.PodSandbox
	containers      []*runtimeapi.Container
	containerStats  []*runtimeapi.ContainerStats
	sandboxStats    []*runtimeapi.PodSandboxStats
	imageFs         []*runtimeapi.FilesystemUsage
	sandboxStatsErr error
	containerErr    error
}

// fakeImageFs is the image service half of fakeStatsCRI (both CRI
// interfaces have a Close, so one struct cannot embed both).
type fakeImageFs struct {
	internalapi.ImageManagerService
	f *fakeStatsCRI
}

func (i fakeImageFs) ImageFsInfo(context.Context) (*runtimeapi.ImageFsInfoResponse, error) {
	return &runtimeapi.ImageFsInfoResponse{ImageFilesystems: i.f.imageFs}, nil
}

func (f *fakeStatsCRI) ListPodSandbox(_ context.Context, filter *runtimeapi.PodSandboxFilter) ([]*runtimeapi.PodSandbox, error) {
	var out []*runtimeapi.PodSandbox
	for _, sb := range f.sandboxes {
		if filter.GetState() == nil || filter.GetState().State == sb.State {
			out = append(out, sb)
		}
	}
	return out, nil
}

func (f *fakeStatsCRI) ListContainers(_ context.Context, filter *runtimeapi.ContainerFilter) ([]*runtimeapi.Container, error) {
	var out []*runtimeapi.Container
	for _, c := range f.containers {
		if filter.GetState() == nil || filter.GetState().State == c.State {
			out = append(out, c)
		}
	}
	return out, nil
}

func (f *fakeStatsCRI) ListContainerStats(context.Context, *runtimeapi.ContainerStatsFilter) ([]*runtimeapi.ContainerStats, error) {
	return f.containerStats, f.containerErr
}

func (f *fakeStatsCRI) ListPodSandboxStats(context.Context, *runtimeapi.PodSandboxStatsFilter) ([]*runtimeapi.PodSandboxStats, error) {
	if f.sandboxStatsErr != nil {
		return nil, f.sandboxStatsErr
	}
	return f.sandboxStats, nil
}

func writeFiles(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func u64v(v uint64) *runtimeapi.UInt64Value { return &runtimeapi.UInt64Value{Value: v} }

// statsFixture is a fake CRI with three pods, fake /proc and cgroup v1
// trees, and a statsReader over them.
type statsFixture struct {
	rs     *fakeStatsCRI
	reader *statsReader
	root   string
	now    time.Time
}

const (
	t0ns = int64(1700000000) * int64(time.Second)
	mib  = uint64(1 << 20)
)

func newStatsFixture(t *testing.T) *statsFixture {
	t.Helper()
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		// busy: user 100 + nice 5 + system 50 + irq 3 + softirq 2 + steal 1 = 161 ticks
		"proc/stat":               "cpu  100 5 50 1000 20 3 2 1 0 0\ncpu0 100 5 50 1000 20 3 2 1 0 0\nbtime 1699990000\n",
		"proc/meminfo":            "MemTotal:       8000 kB\nMemFree:        2000 kB\nMemAvailable:   5000 kB\nInactive(file):  1000 kB\nAnonPages:       1500 kB\n",
		"proc/sys/kernel/pid_max": "32768\n",
		"proc/loadavg":            "0.10 0.20 0.30 2/345 6789\n",
		// Pod "batch" has no CRI sandbox stats: its cgroup (BestEffort) serves.
		"cpuacct/kubepods/besteffort/podub/cpuacct.usage":        "7000000000\n",
		"memory/kubepods/besteffort/podub/memory.usage_in_bytes": "20971520\n",
		"memory/kubepods/besteffort/podub/memory.stat":           "cache 1\ntotal_inactive_file 5242880\n",
		// Container "side" of pod "web" has no CRI memory stats.
		"memory/kubepods/burstable/podua/ca2/memory.usage_in_bytes": "4194304\n",
		"memory/kubepods/burstable/podua/ca2/memory.stat":           "total_inactive_file 1048576\n",
	})
	rs := &fakeStatsCRI{}
	imageDir := t.TempDir()
	rs.imageFs = []*runtimeapi.FilesystemUsage{{Timestamp: t0ns, FsId: &runtimeapi.FilesystemIdentifier{Mountpoint: imageDir}, UsedBytes: u64v(12345), InodesUsed: u64v(67)}}

	sandbox := func(id, name, uid string, state runtimeapi.PodSandboxState, created int64) *runtimeapi.PodSandbox {
		labels := map[string]string{LabelPodName: name, LabelPodNamespace: "default", LabelPodUID: uid}
		if name == "" {
			labels = nil
		}
		return &runtimeapi.PodSandbox{
			Id: id, State: state, CreatedAt: created, Labels: labels,
			Metadata: &runtimeapi.PodSandboxMetadata{Name: name, Namespace: "default", Uid: uid},
		}
	}
	rs.sandboxes = []*runtimeapi.PodSandbox{
		sandbox("sa", "web", "ua", runtimeapi.PodSandboxState_SANDBOX_READY, t0ns-100e9),
		sandbox("sb", "batch", "ub", runtimeapi.PodSandboxState_SANDBOX_READY, t0ns-200e9),
		sandbox("sc", "nocg", "uc", runtimeapi.PodSandboxState_SANDBOX_READY, t0ns-300e9),
		sandbox("sd", "gone", "ud", runtimeapi.PodSandboxState_SANDBOX_NOTREADY, t0ns-400e9),
		sandbox("se", "", "", runtimeapi.PodSandboxState_SANDBOX_READY, t0ns-400e9),
	}
	container := func(id, sb, name string, state runtimeapi.ContainerState, created int64) *runtimeapi.Container {
		return &runtimeapi.Container{
			Id: id, PodSandboxId: sb, State: state, CreatedAt: created, Metadata: &runtimeapi.ContainerMetadata{Name: name},
			Labels: map[string]string{LabelContainerName: name},
		}
	}
	rs.containers = []*runtimeapi.Container{
		container("ca1", "sa", "nginx", runtimeapi.ContainerState_CONTAINER_RUNNING, t0ns-90e9),
		container("ca2", "sa", "side", runtimeapi.ContainerState_CONTAINER_RUNNING, t0ns-80e9),
		container("ca0", "sa", "old", runtimeapi.ContainerState_CONTAINER_EXITED, t0ns-95e9),
		container("cb1", "sb", "job", runtimeapi.ContainerState_CONTAINER_RUNNING, t0ns-190e9),
		container("cc1", "sc", "c", runtimeapi.ContainerState_CONTAINER_RUNNING, t0ns-290e9),
	}
	f := &statsFixture{rs: rs, root: root, now: time.Unix(0, t0ns+5e8)}
	f.setStats(0)
	f.reader = &statsReader{
		rs: rs, is: fakeImageFs{f: rs}, procRoot: filepath.Join(root, "proc"),
		mounts: []cgroupMount{
			{path: filepath.Join(root, "cpuacct"), controllers: map[string]bool{"cpuacct": true}},
			{path: filepath.Join(root, "memory"), controllers: map[string]bool{"memory": true}},
		},
		cgroupRoot: "/", fsPath: root, now: func() time.Time { return f.now }, rates: &cpuRates{},
	}
	return f
}

// setStats sets the CRI stats, dt seconds after t0: every cumulative CPU
// grows by a fixed rate per second.
func (f *statsFixture) setStats(dt int64) {
	at := t0ns + dt*int64(time.Second)
	cpu := func(total, perSecond uint64) *runtimeapi.CpuUsage {
		return &runtimeapi.CpuUsage{Timestamp: at, UsageCoreNanoSeconds: u64v(total + uint64(dt)*perSecond)}
	}
	mem := func(ws uint64) *runtimeapi.MemoryUsage {
		return &runtimeapi.MemoryUsage{Timestamp: at, WorkingSetBytes: u64v(ws), UsageBytes: u64v(ws + mib), RssBytes: u64v(ws / 2)}
	}
	f.rs.containerStats = []*runtimeapi.ContainerStats{
		{Attributes: &runtimeapi.ContainerAttributes{Id: "ca1"}, Cpu: cpu(2e9, 1e8), Memory: mem(10 * mib),
			WritableLayer: &runtimeapi.FilesystemUsage{Timestamp: at, UsedBytes: u64v(4096), InodesUsed: u64v(3)}},
		{Attributes: &runtimeapi.ContainerAttributes{Id: "ca2"}, Cpu: cpu(1e9, 5e7)},
		{Attributes: &runtimeapi.ContainerAttributes{Id: "cb1"}, Cpu: cpu(6e9, 2e8), Memory: mem(12 * mib)},
		{Attributes: &runtimeapi.ContainerAttributes{Id: "cc1"}, Cpu: cpu(3e8, 1e7), Memory: mem(2 * mib)},
	}
	f.rs.sandboxStats = []*runtimeapi.PodSandboxStats{
		{Attributes: &runtimeapi.PodSandboxAttributes{Id: "sa"}, Linux: &runtimeapi.LinuxPodSandboxStats{Cpu: cpu(3.5e9, 1.6e8), Memory: mem(15 * mib)}},
	}
}

func TestSummaryFromCRIAndCgroups(t *testing.T) {
	f := newStatsFixture(t)
	sum, err := f.reader.summary(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// Node.
	if got, want := *sum.Node.CPU.UsageCoreNanoSeconds, uint64(161)*uint64(time.Second/userHZ); got != want {
		t.Errorf("node cpu = %d, want %d (busy ticks of /proc/stat)", got, want)
	}
	if !sum.Node.CPU.Time.Time.Equal(f.now) || !sum.Node.StartTime.Time.Equal(time.Unix(1699990000, 0)) {
		t.Errorf("node times: cpu at %v, start %v", sum.Node.CPU.Time, sum.Node.StartTime)
	}
	m := sum.Node.Memory
	if *m.UsageBytes != 6000*1024 || *m.WorkingSetBytes != 5000*1024 || *m.AvailableBytes != 5000*1024 || *m.RSSBytes != 1500*1024 {
		t.Errorf("node memory: usage %d ws %d available %d rss %d", *m.UsageBytes, *m.WorkingSetBytes, *m.AvailableBytes, *m.RSSBytes)
	}
	if sum.Node.Fs == nil || sum.Node.Fs.CapacityBytes == nil || *sum.Node.Fs.CapacityBytes == 0 {
		t.Errorf("node fs: %+v", sum.Node.Fs)
	}
	if fs := sum.Node.Runtime.ImageFs; fs == nil || *fs.UsedBytes != 12345 || *fs.InodesUsed != 67 || fs.CapacityBytes == nil {
		t.Errorf("image fs: %+v", fs)
	}
	if rl := sum.Node.Rlimit; *rl.MaxPID != 32768 || *rl.NumOfRunningProcesses != 345 {
		t.Errorf("rlimit: %+v", rl)
	}

	// Pods: ready sandboxes with pod labels, sorted; running containers.
	type cont struct {
		Name         string
		Start        int64
		CPU, Mem     uint64
		CPUFromCRI   bool
		RootfsUsed   uint64
		PodCPU, PMem uint64
	}
	var got []cont
	var pods []string
	for _, p := range sum.Pods {
		pods = append(pods, p.PodRef.Namespace+"/"+p.PodRef.Name+"/"+p.PodRef.UID)
		for _, c := range p.Containers {
			x := cont{Name: p.PodRef.Name + "/" + c.Name, Start: c.StartTime.UnixNano(), CPU: *c.CPU.UsageCoreNanoSeconds, Mem: *c.Memory.WorkingSetBytes,
				CPUFromCRI: c.CPU.Time.UnixNano() == t0ns, PodCPU: *p.CPU.UsageCoreNanoSeconds, PMem: *p.Memory.WorkingSetBytes}
			if c.Rootfs != nil {
				x.RootfsUsed = *c.Rootfs.UsedBytes
			}
			got = append(got, x)
		}
	}
	if diff := cmp.Diff([]string{"default/batch/ub", "default/nocg/uc", "default/web/ua"}, pods); diff != "" {
		t.Errorf("pods (-want +got):\n%s", diff)
	}
	want := []cont{
		// Pod CPU and memory from its cgroup (no sandbox stats):
		// working set 20Mi - 5Mi inactive file.
		{Name: "batch/job", Start: t0ns - 190e9, CPU: 6e9, Mem: 12 * mib, CPUFromCRI: true, PodCPU: 7e9, PMem: 15 * mib},
		// Neither sandbox stats nor cgroup: the containers' sum.
		{Name: "nocg/c", Start: t0ns - 290e9, CPU: 3e8, Mem: 2 * mib, CPUFromCRI: true, PodCPU: 3e8, PMem: 2 * mib},
		// Sandbox stats from the CRI; "side" has its memory from its
		// container cgroup (4Mi - 1Mi inactive file).
		{Name: "web/nginx", Start: t0ns - 90e9, CPU: 2e9, Mem: 10 * mib, CPUFromCRI: true, RootfsUsed: 4096, PodCPU: 3.5e9, PMem: 15 * mib},
		{Name: "web/side", Start: t0ns - 80e9, CPU: 1e9, Mem: 3 * mib, CPUFromCRI: true, PodCPU: 3.5e9, PMem: 15 * mib},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("containers (-want +got):\n%s", diff)
	}
	for _, p := range sum.Pods {
		if p.CPU.UsageNanoCores != nil {
			t.Errorf("pod %s has usageNanoCores %d after one sample", p.PodRef.Name, *p.CPU.UsageNanoCores)
		}
	}

	// A second sample 10 s later: rates from the previous one.
	f.setStats(10)
	f.now = f.now.Add(10 * time.Second)
	sum, err = f.reader.summary(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	rates := map[string]uint64{}
	for _, p := range sum.Pods {
		if p.CPU.UsageNanoCores != nil {
			rates[p.PodRef.Name] = *p.CPU.UsageNanoCores
		}
		for _, c := range p.Containers {
			if c.CPU.UsageNanoCores != nil {
				rates[p.PodRef.Name+"/"+c.Name] = *c.CPU.UsageNanoCores
			}
		}
	}
	wantRates := map[string]uint64{
		"web": 1.6e8, "web/nginx": 1e8, "web/side": 5e7, "batch/job": 2e8, "nocg": 1e7, "nocg/c": 1e7,
		// batch's cgroup did not change: zero.
		"batch": 0,
	}
	if diff := cmp.Diff(wantRates, rates); diff != "" {
		t.Errorf("usageNanoCores (-want +got):\n%s", diff)
	}
	if sum.Node.CPU.UsageNanoCores == nil || *sum.Node.CPU.UsageNanoCores != 0 {
		t.Errorf("node usageNanoCores with an unchanged /proc/stat = %v, want 0", sum.Node.CPU.UsageNanoCores)
	}
}

func TestSummaryErrors(t *testing.T) {
	f := newStatsFixture(t)
	// Sandbox stats are optional.
	f.rs.sandboxStatsErr = errors.New("unimplemented")
	sum, err := f.reader.summary(context.Background())
	if err != nil {
		t.Fatalf("summary without sandbox stats: %v", err)
	}
	for _, p := range sum.Pods {
		if p.PodRef.Name == "web" && *p.CPU.UsageCoreNanoSeconds != 3e9 {
			t.Errorf("web without sandbox stats: cpu %d, want the containers' sum 3e9", *p.CPU.UsageCoreNanoSeconds)
		}
	}
	// Container stats are not.
	f.rs.containerErr = errors.New("boom")
	if _, err := f.reader.summary(context.Background()); err == nil {
		t.Error("summary with failing ListContainerStats succeeded")
	}
	f.reader.procRoot = filepath.Join(f.root, "missing")
	if _, err := f.reader.summary(context.Background()); err == nil {
		t.Error("summary without /proc/stat succeeded")
	}
}

func TestCgroupV2Usage(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"kubepods/podx/cpu.stat":       "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n",
		"kubepods/podx/memory.current": "8388608\n",
		"kubepods/podx/memory.stat":    "anon 1\ninactive_file 2097152\nactive_file 3\n",
	})
	sr := &statsReader{mounts: []cgroupMount{{path: root, v2: true}}, cgroupRoot: "/", now: time.Now}
	if got := sr.podCgroup("x"); got != "/kubepods/podx" {
		t.Fatalf("podCgroup = %q", got)
	}
	cpu, mem := sr.cgroupUsage("/kubepods/podx")
	if cpu == nil || *cpu.UsageCoreNanoSeconds != 1500000 {
		t.Errorf("cpu = %+v, want 1500000 ns", cpu)
	}
	if mem == nil || *mem.WorkingSetBytes != 6<<20 || *mem.UsageBytes != 8<<20 {
		t.Errorf("memory = %+v, want working set 6Mi of 8Mi", mem)
	}
	if cpu, mem := sr.cgroupUsage("/kubepods/missing"); cpu != nil || mem != nil {
		t.Errorf("missing cgroup: %+v %+v", cpu, mem)
	}
}

func TestCPURatesIgnoreStaleAndDecreasingSamples(t *testing.T) {
	var c cpuRates
	at := time.Unix(100, 0)
	sample := func(sec int, total uint64) *statsapi.CPUStats {
		st := &statsapi.CPUStats{UsageCoreNanoSeconds: &total}
		st.Time.Time = at.Add(time.Duration(sec) * time.Second)
		c.fill("k", st)
		return st
	}
	if st := sample(0, 1e9); st.UsageNanoCores != nil {
		t.Fatal("rate from one sample")
	}
	if st := sample(2, 2e9); st.UsageNanoCores == nil || *st.UsageNanoCores != 5e8 {
		t.Fatalf("rate = %v, want 5e8", st.UsageNanoCores)
	}
	if st := sample(2, 2e9); st.UsageNanoCores == nil || *st.UsageNanoCores != 5e8 {
		t.Errorf("repeated sample: rate %v, want the same 5e8", st.UsageNanoCores)
	}
	if st := sample(1, 3e9); st.UsageNanoCores != nil {
		t.Errorf("older sample got a rate %d", *st.UsageNanoCores)
	}
	if st := sample(3, 1e8); st.UsageNanoCores != nil {
		t.Errorf("decreasing (restarted) counter got a rate %d", *st.UsageNanoCores)
	}
	c.prune(map[string]bool{})
	if len(c.last) != 0 {
		t.Errorf("prune kept %v", c.last)
	}
}
