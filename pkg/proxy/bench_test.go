//go:build linux

package proxy

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
)

const (
	benchServices  = 1000
	benchEndpoints = 10
)

// benchObjects returns benchServices Services with benchEndpoints ready
// endpoints each; every tenth is a NodePort.
func benchObjects() []runtime.Object {
	var objs []runtime.Object
	for i := range benchServices {
		name := fmt.Sprintf("svc-%04d", i)
		opts := []svcOpt{}
		if i%10 == 0 {
			opts = append(opts, withNodePort(int32(30000+i)))
		}
		objs = append(objs, newService("bench", name, fmt.Sprintf("10.96.%d.%d", i/250, i%250+1), opts...))
		objs = append(objs, benchSlice(i, -1))
	}
	return objs
}

// benchSlice is the slice of Service i; endpoint notReady (-1: none) is
// not ready.
func benchSlice(i, notReady int) *discoveryv1.EndpointSlice {
	var eps []ep
	for j := range benchEndpoints {
		e := readyEP(fmt.Sprintf("10.244.%d.%d", i/20, (i%20)*10+j+1))
		if j == notReady {
			e.ready, e.serving = false, false
		}
		eps = append(eps, e)
	}
	return newSlice("bench", fmt.Sprintf("svc-%04d", i), "a", "http", 8080, corev1.ProtocolTCP, eps...)
}

// benchModel is the proxy's model of benchObjects.
func benchModel() map[string][]*servicePort {
	objs := benchObjects()
	m := map[string][]*servicePort{}
	for i := 0; i < len(objs); i += 2 {
		svc := objs[i].(*corev1.Service)
		m[svc.Namespace+"/"+svc.Name] = buildServicePorts(svc, []*discoveryv1.EndpointSlice{objs[i+1].(*discoveryv1.EndpointSlice)})
	}
	return m
}

// benchNetns creates an empty network namespace for the benchmark.
func benchNetns(b *testing.B, tools ...string) string {
	b.Helper()
	if os.Geteuid() != 0 {
		b.Skip("needs root for network namespaces")
	}
	for _, tool := range append([]string{"ip"}, tools...) {
		if _, err := exec.LookPath(tool); err != nil {
			b.Skipf("%s not installed", tool)
		}
	}
	ns := "skpb-" + randSuffix()
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		b.Fatalf("ip netns add: %v: %s", err, out)
	}
	b.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
			b.Errorf("ip netns del: %v: %s", err, out)
		}
	})
	return ns
}

func newBenchBackend(mode Mode, exec Executor) backend {
	cidr := netip.MustParsePrefix("10.244.0.0/16")
	if mode == ModeNFTables {
		return newNFTBackend(exec, cidr)
	}
	return newIPTablesBackend(exec, cidr)
}

// cpuMeter reports the CPU time per operation of the benchmark process
// (proxy-cpu-ms/op) and of the tools it ran (tools-cpu-ms/op): on a shared
// machine these vary less than the wall time.
type cpuMeter struct{ self, children time.Duration }

func cpuNow() cpuMeter {
	var self, children syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &self)
	_ = syscall.Getrusage(syscall.RUSAGE_CHILDREN, &children)
	tv := func(r syscall.Rusage) time.Duration {
		return time.Duration(r.Utime.Nano() + r.Stime.Nano())
	}
	return cpuMeter{self: tv(self), children: tv(children)}
}

func (start cpuMeter) report(b *testing.B) {
	end := cpuNow()
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) / float64(b.N) }
	b.ReportMetric(ms(end.self-start.self), "proxy-cpu-ms/op")
	b.ReportMetric(ms(end.children-start.children), "tools-cpu-ms/op")
}

// BenchmarkSync measures applying 1,000 Services × 10 endpoints to a real
// kernel (inside a namespace): a full sync (render, read the kernel's
// state, write everything), and an incremental sync after one endpoint of
// one Service changed.
func BenchmarkSync(b *testing.B) {
	for _, mode := range []Mode{ModeIPTables, ModeNFTables} {
		b.Run(string(mode)+"/full", func(b *testing.B) {
			ns := benchNetns(b, modeTools[mode]...)
			be := newBenchBackend(mode, NewExecutor(ExecOptions{Netns: ns}))
			model := benchModel()
			ctx := context.Background()
			b.ResetTimer()
			cpu := cpuNow()
			for range b.N {
				if _, err := be.sync(ctx, model, nil, true); err != nil {
					b.Fatal(err)
				}
			}
			cpu.report(b)
		})
		b.Run(string(mode)+"/one-endpoint", func(b *testing.B) {
			ns := benchNetns(b, modeTools[mode]...)
			be := newBenchBackend(mode, NewExecutor(ExecOptions{Netns: ns}))
			model := benchModel()
			objs := benchObjects()
			ctx := context.Background()
			if _, err := be.sync(ctx, model, nil, true); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			cpu := cpuNow()
			defer cpu.report(b)
			for i := range b.N {
				// Service i%1000 loses (even i) or regains one endpoint.
				svc := i % benchServices
				key := fmt.Sprintf("bench/svc-%04d", svc)
				notReady := -1
				if (i/benchServices)%2 == 0 {
					notReady = 3
				}
				model[key] = buildServicePorts(objs[2*svc].(*corev1.Service), []*discoveryv1.EndpointSlice{benchSlice(svc, notReady)})
				didFull, err := be.sync(ctx, model, map[string]bool{key: true}, false)
				if err != nil {
					b.Fatal(err)
				}
				if didFull {
					b.Fatal("incremental sync fell back to a full one")
				}
			}
		})
	}
}

// BenchmarkEndpointReadyToRules measures, with a running Proxier over 1,000
// Services × 10 endpoints, the time from an EndpointSlice update making an
// endpoint ready (written to the client; the informer delivers it) to the
// rules being in the kernel. MinSyncPeriod is 1ms and each update comes
// after the previous sync, so the rate limit adds nothing here; with the
// default 1s an update within 1s of the previous sync waits for the rest.
func BenchmarkEndpointReadyToRules(b *testing.B) {
	for _, mode := range []Mode{ModeIPTables, ModeNFTables} {
		b.Run(string(mode), func(b *testing.B) {
			ns := benchNetns(b, modeTools[mode]...)
			client := fake.NewClientset(benchObjects()...)
			p, err := New(Config{
				Client: client, Mode: mode, ClusterCIDR: netip.MustParsePrefix("10.244.0.0/16"),
				MinSyncPeriod: time.Millisecond,
				Executor:      NewExecutor(ExecOptions{Netns: ns}),
			})
			if err != nil {
				b.Fatal(err)
			}
			synced := make(chan struct{}, 1)
			p.afterSync = func() {
				select {
				case synced <- struct{}{}:
				default:
				}
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- p.Run(ctx) }()
			b.Cleanup(func() {
				cancel()
				if err := <-done; err != nil {
					b.Error(err)
				}
			})
			wait := func() {
				select {
				case <-synced:
				case <-time.After(time.Minute):
					b.Fatal("no sync within a minute")
				}
			}
			wait() // the initial full sync
			slices := client.DiscoveryV1().EndpointSlices("bench")
			// Make endpoint 3 of each Service not ready first, untimed.
			update := func(svc, notReady int) {
				if _, err := slices.Update(ctx, benchSlice(svc, notReady), metav1.UpdateOptions{}); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			for i := range b.N {
				svc := i % benchServices
				b.StopTimer()
				update(svc, 3)
				wait()
				b.StartTimer()
				update(svc, -1) // endpoint 3 becomes ready
				wait()
			}
		})
	}
}
