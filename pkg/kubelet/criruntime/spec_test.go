package criruntime

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	testingclock "k8s.io/utils/clock/testing"
)

func TestExpand(t *testing.T) {
	vars := map[string]string{"A": "1", "B": "two"}
	for in, want := range map[string]string{
		"plain":        "plain",
		"$(A)-$(B)":    "1-two",
		"$(C)":         "$(C)",
		"$$(A)":        "$(A)",
		"cost $5":      "cost $5",
		"open $(A":     "open $(A",
		"trailing $":   "trailing $",
		"$(A)$(A)$$$$": "11$$",
	} {
		if got := expand(in, vars); got != want {
			t.Errorf("expand(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestBackoff(t *testing.T) {
	clk := testingclock.NewFakeClock(time.Unix(1000, 0))
	b := newBackoff(clk, 10*time.Second, 40*time.Second)
	exit := clk.Now()
	steps := []struct {
		advance   time.Duration
		next      bool
		wantLeft  time.Duration
		wantDelay time.Duration
	}{
		{0, false, 0, 0}, // never failed: go
		{0, true, 10 * time.Second, 10 * time.Second}, // first restart recorded
		{4 * time.Second, false, 6 * time.Second, 10 * time.Second},
		{6 * time.Second, true, 20 * time.Second, 20 * time.Second},
		{0, true, 40 * time.Second, 40 * time.Second},
		{0, true, 40 * time.Second, 40 * time.Second}, // capped
	}
	for i, s := range steps {
		clk.Step(s.advance)
		if s.next {
			exit = clk.Now()
			b.next("uid/c", exit)
		}
		left, delay := b.remaining("uid/c", exit)
		if left != s.wantLeft || delay != s.wantDelay {
			t.Errorf("step %d: remaining = %v/%v, want %v/%v", i, left, delay, s.wantLeft, s.wantDelay)
		}
	}
	b.forget("uid")
	if left, _ := b.remaining("uid/c", exit); left != 0 {
		t.Errorf("after forget: %v left", left)
	}
}

func TestPodCgroupLimitsAndPaths(t *testing.T) {
	res := func(cpu, mem string) corev1.ResourceRequirements {
		l := corev1.ResourceList{}
		if cpu != "" {
			l[corev1.ResourceCPU] = resource.MustParse(cpu)
		}
		if mem != "" {
			l[corev1.ResourceMemory] = resource.MustParse(mem)
		}
		return corev1.ResourceRequirements{Requests: l, Limits: l}
	}
	r := &Runtime{cfg: Config{CgroupRoot: "/"}}
	for _, tc := range []struct {
		name       string
		containers []corev1.Container
		init       []corev1.Container
		want       podLimits
		wantPath   string
	}{
		{"best effort", []corev1.Container{{Name: "a"}}, nil,
			podLimits{cpuShares: 2, cpuPeriod: quotaPeriod}, "/kubepods/besteffort/poduid"},
		{"guaranteed, init counts by max", []corev1.Container{{Name: "a", Resources: res("250m", "64Mi")}, {Name: "b", Resources: res("250m", "64Mi")}},
			[]corev1.Container{{Name: "i", Resources: res("1", "256Mi")}},
			podLimits{cpuShares: 512, cpuQuota: 100000, cpuPeriod: quotaPeriod, memoryLimit: 256 << 20}, "/kubepods/poduid"},
		{"burstable without memory limit everywhere", []corev1.Container{{Name: "a", Resources: res("100m", "")}, {Name: "b", Resources: res("", "32Mi")}}, nil,
			podLimits{cpuShares: 102, cpuPeriod: quotaPeriod}, "/kubepods/burstable/poduid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{UID: "uid"}, Spec: corev1.PodSpec{Containers: tc.containers, InitContainers: tc.init}}
			if diff := cmp.Diff(tc.want, podCgroupLimits(pod), cmp.AllowUnexported(podLimits{})); diff != "" {
				t.Errorf("limits (-want +got):\n%s", diff)
			}
			if got := r.podCgroup(pod.UID, qosClass(pod)); got != tc.wantPath {
				t.Errorf("cgroup %s, want %s", got, tc.wantPath)
			}
		})
	}
}

func TestDNSConfig(t *testing.T) {
	resolv := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(resolv, []byte("# host\nnameserver 10.255.255.53\nsearch corp.example\noptions edns0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ndots := "2"
	for _, tc := range []struct {
		name       string
		clusterDNS []string
		spec       corev1.PodSpec
		want       *runtimeapi.DNSConfig
	}{
		{"ClusterFirst", []string{"10.96.0.10"}, corev1.PodSpec{DNSPolicy: corev1.DNSClusterFirst},
			&runtimeapi.DNSConfig{Servers: []string{"10.96.0.10"}, Searches: []string{"ns.svc.cluster.local", "svc.cluster.local", "cluster.local", "corp.example"}, Options: []string{"ndots:5"}}},
		{"ClusterFirst without cluster DNS falls back to the node's", nil, corev1.PodSpec{DNSPolicy: corev1.DNSClusterFirst},
			&runtimeapi.DNSConfig{Servers: []string{"10.255.255.53"}, Searches: []string{"corp.example"}, Options: []string{"edns0"}}},
		{"ClusterFirst on the host network uses the node's", []string{"10.96.0.10"}, corev1.PodSpec{DNSPolicy: corev1.DNSClusterFirst, HostNetwork: true},
			&runtimeapi.DNSConfig{Servers: []string{"10.255.255.53"}, Searches: []string{"corp.example"}, Options: []string{"edns0"}}},
		{"None with dnsConfig", []string{"10.96.0.10"}, corev1.PodSpec{DNSPolicy: corev1.DNSNone, DNSConfig: &corev1.PodDNSConfig{
			Nameservers: []string{"1.1.1.1"}, Searches: []string{"a.b"}, Options: []corev1.PodDNSConfigOption{{Name: "ndots", Value: &ndots}}}},
			&runtimeapi.DNSConfig{Servers: []string{"1.1.1.1"}, Searches: []string{"a.b"}, Options: []string{"ndots:2"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &Runtime{cfg: Config{ClusterDNS: tc.clusterDNS, ClusterDomain: "cluster.local", ResolvConf: resolv}}
			got, err := r.dnsConfig(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns"}, Spec: tc.spec})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got.Servers, tc.want.Servers) || !slices.Equal(got.Searches, tc.want.Searches) || !slices.Equal(got.Options, tc.want.Options) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}
