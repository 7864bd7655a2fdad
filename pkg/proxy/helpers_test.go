package proxy

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/cache"
)

// fakeCall is one command the fake executor received.
type fakeCall struct {
	name  string
	args  []string
	stdin string
}

func (c fakeCall) String() string { return c.name + " " + strings.Join(c.args, " ") }

// fakeExec records commands and answers reads with canned output.
type fakeExec struct {
	mu    sync.Mutex
	calls []fakeCall
	// saved is what iptables-save prints per table ("" for an empty
	// table).
	saved map[string]string
	// nftList is what `nft -j list <what> ip` prints per what.
	nftList map[string]string
	// outputs answers other commands by their "name args" prefix.
	outputs map[string]string
	// missing are tools that are "not installed".
	missing map[string]bool
	// fail makes commands whose "name args" starts with a key fail with
	// the value as stderr.
	fail map[string]string
}

func newFakeExec() *fakeExec {
	return &fakeExec{saved: map[string]string{}, nftList: map[string]string{}, outputs: map[string]string{}, missing: map[string]bool{}, fail: map[string]string{}}
}

func (f *fakeExec) Run(_ context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := fakeCall{name: name, args: args, stdin: string(stdin)}
	f.calls = append(f.calls, c)
	if f.missing[name] {
		return nil, fmt.Errorf("%s: %w", name, ErrToolMissing)
	}
	line := c.String()
	for prefix, stderr := range f.fail {
		if strings.HasPrefix(line, prefix) {
			return nil, fmt.Errorf("%s: exit status 1: %s", line, stderr)
		}
	}
	switch {
	case name == "iptables-save":
		table := args[len(args)-1]
		if s, ok := f.saved[table]; ok {
			return []byte(s), nil
		}
		return []byte("*" + table + "\nCOMMIT\n"), nil
	case name == "nft" && len(args) >= 3 && args[0] == "-j" && args[1] == "list":
		if s, ok := f.nftList[args[2]]; ok {
			return []byte(s), nil
		}
		return []byte(`{"nftables": [{"metainfo": {"version": "1.0.6"}}]}`), nil
	}
	for prefix, out := range f.outputs {
		if strings.HasPrefix(line, prefix) {
			return []byte(out), nil
		}
	}
	return nil, nil
}

// take returns the calls since the last take.
func (f *fakeExec) take() []fakeCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.calls
	f.calls = nil
	return c
}

// writes filters the calls that change the kernel's rules.
func writes(calls []fakeCall) []fakeCall {
	var out []fakeCall
	for _, c := range calls {
		if c.name == "iptables-restore" || (c.name == "nft" && slices.Contains(c.args, "-f")) {
			out = append(out, c)
		}
	}
	return out
}

// svcOpt modifies a test Service.
type svcOpt func(*corev1.Service)

func newService(ns, name, clusterIP string, opts ...svcOpt) *corev1.Service {
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: corev1.ServiceSpec{
			Type:       corev1.ServiceTypeClusterIP,
			ClusterIP:  clusterIP,
			ClusterIPs: []string{clusterIP},
			Ports:      []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}},
		},
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

func withPorts(ports ...corev1.ServicePort) svcOpt {
	return func(s *corev1.Service) { s.Spec.Ports = ports }
}

func withNodePort(np int32) svcOpt {
	return func(s *corev1.Service) {
		s.Spec.Type = corev1.ServiceTypeNodePort
		s.Spec.Ports[0].NodePort = np
	}
}

func withAffinity(seconds int32) svcOpt {
	return func(s *corev1.Service) {
		s.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
		s.Spec.SessionAffinityConfig = &corev1.SessionAffinityConfig{ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: &seconds}}
	}
}

func withExternalIPs(ips ...string) svcOpt {
	return func(s *corev1.Service) { s.Spec.ExternalIPs = ips }
}

// ep describes one endpoint of a test slice.
type ep struct {
	ip                          string
	ready, serving, terminating bool
}

func readyEP(ip string) ep { return ep{ip: ip, ready: true, serving: true} }

func newSlice(ns, svc, suffix, portName string, port int32, proto corev1.Protocol, eps ...ep) *discoveryv1.EndpointSlice {
	es := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: ns, Name: svc + "-" + suffix,
			Labels: map[string]string{discoveryv1.LabelServiceName: svc},
		},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: &portName, Port: &port, Protocol: &proto}},
	}
	for _, e := range eps {
		es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{
			Addresses: []string{e.ip},
			Conditions: discoveryv1.EndpointConditions{
				Ready: &e.ready, Serving: &e.serving, Terminating: &e.terminating,
			},
		})
	}
	return es
}

// unitProxier returns a Proxier on a fake clientset holding objs, with
// started informers and a fake executor; the sync loop is not running, so
// tests call syncOnce themselves.
func unitProxier(t *testing.T, mode Mode, objs ...runtime.Object) (*Proxier, *fake.Clientset, *fakeExec) {
	t.Helper()
	client := fake.NewClientset(objs...)
	fx := newFakeExec()
	p, err := New(Config{
		Client: client, NodeName: "node-a", Mode: mode,
		ClusterCIDR: netip.MustParsePrefix("10.244.0.0/16"),
		Executor:    fx,
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() {
		cancel()
		p.factory.Shutdown()
	})
	p.factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), p.synced...) {
		t.Fatal("caches did not sync")
	}
	p.needFull = true
	return p, client, fx
}

// waitDirty waits until the informers have delivered a change of the
// Service key.
func waitDirty(t *testing.T, p *Proxier, key string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		p.mu.Lock()
		d := p.dirty[key]
		p.mu.Unlock()
		if d {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("no event for %s within 10s", key)
}

// updateSlice stores es, waits until the proxier saw the change of its
// Service and syncs.
func updateSlice(t *testing.T, client *fake.Clientset, p *Proxier, es *discoveryv1.EndpointSlice) {
	t.Helper()
	if _, err := client.DiscoveryV1().EndpointSlices(es.Namespace).Update(context.Background(), es, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitDirty(t, p, es.Namespace+"/"+es.Labels[discoveryv1.LabelServiceName])
	mustSync(t, p)
}

// updateService applies change to the Service default/name, waits until
// the proxier saw it and syncs.
func updateService(t *testing.T, client *fake.Clientset, p *Proxier, name string, change func(*corev1.Service)) {
	t.Helper()
	svc, err := client.CoreV1().Services("default").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	change(svc)
	if _, err := client.CoreV1().Services("default").Update(context.Background(), svc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitDirty(t, p, "default/"+name)
	mustSync(t, p)
}

func mustSync(t *testing.T, p *Proxier) {
	t.Helper()
	if err := p.syncOnce(context.Background()); err != nil {
		t.Fatalf("sync: %v", err)
	}
}

// parseRestore splits iptables-restore input into table → chain → lines
// ("-A" lines, and "-X"/"-I"/"-D" lines under the chain they name) plus
// the declared chains.
type restoreInput struct {
	declared map[string][]string            // table → declared chains
	lines    map[string]map[string][]string // table → chain → lines
}

func parseRestore(t *testing.T, in string) restoreInput {
	t.Helper()
	r := restoreInput{declared: map[string][]string{}, lines: map[string]map[string][]string{}}
	table := ""
	for line := range strings.Lines(in) {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "*"):
			table = line[1:]
			if r.lines[table] == nil {
				r.lines[table] = map[string][]string{}
			}
		case line == "COMMIT":
			table = ""
		case strings.HasPrefix(line, ":"):
			name, _, _ := strings.Cut(line[1:], " ")
			r.declared[table] = append(r.declared[table], name)
		default:
			if table == "" {
				t.Fatalf("restore line outside a table: %q", line)
			}
			f := strings.Fields(line)
			r.lines[table][f[1]] = append(r.lines[table][f[1]], line)
		}
	}
	return r
}

var errTest = errors.New("test")
