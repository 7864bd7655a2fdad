package nodeipam

import (
	"context"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"

	"github.com/skiff-project/skiff/pkg/controller/controllertest"
)

func TestAllocator(t *testing.T) {
	type step struct {
		op   string // "alloc", "occupy", "release"
		node string
		cidr string // for occupy: input; for alloc: expected result ("" = exhausted)
	}
	tests := []struct {
		name    string
		cluster string
		size    int
		steps   []step
	}{
		{
			name: "sequential allocation", cluster: "10.244.0.0/16", size: 24,
			steps: []step{{"alloc", "a", "10.244.0.0/24"}, {"alloc", "b", "10.244.1.0/24"}, {"alloc", "a", "10.244.0.0/24"}},
		},
		{
			name: "occupied subnets are skipped", cluster: "10.244.0.0/16", size: 24,
			steps: []step{{"occupy", "x", "10.244.0.0/24"}, {"occupy", "y", "10.244.1.0/24"}, {"alloc", "a", "10.244.2.0/24"}},
		},
		{
			name: "exhaustion and release", cluster: "10.0.0.0/23", size: 24,
			steps: []step{{"alloc", "a", "10.0.0.0/24"}, {"alloc", "b", "10.0.1.0/24"}, {"alloc", "c", ""}, {"release", "a", ""}, {"alloc", "c", "10.0.0.0/24"}},
		},
		{
			name: "out-of-range occupy is ignored", cluster: "10.0.0.0/23", size: 24,
			steps: []step{{"occupy", "x", "192.168.0.0/24"}, {"alloc", "a", "10.0.0.0/24"}},
		},
		{
			name: "ipv6", cluster: "fd00::/48", size: 64,
			steps: []step{{"alloc", "a", "fd00::/64"}, {"alloc", "b", "fd00:0:0:1::/64"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := newAllocator(netip.MustParsePrefix(tt.cluster), tt.size)
			if err != nil {
				t.Fatalf("newAllocator: %v", err)
			}
			for i, s := range tt.steps {
				switch s.op {
				case "occupy":
					a.occupy(s.node, netip.MustParsePrefix(s.cidr))
				case "release":
					a.release(s.node)
				case "alloc":
					got, err := a.allocate(s.node)
					gotStr := ""
					if err == nil {
						gotStr = got.String()
					}
					if gotStr != s.cidr {
						t.Errorf("step %d: allocate(%s) = %q, %v; want %q", i, s.node, gotStr, err, s.cidr)
					}
				}
			}
		})
	}
}

func TestNewRejectsBadRange(t *testing.T) {
	client := fake.NewClientset()
	factory := informers.NewSharedInformerFactory(client, 0)
	for _, opts := range []Options{{ClusterCIDR: "nonsense"}, {ClusterCIDR: "10.0.0.0/16", NodeMaskSize: 8}} {
		if _, err := New(client, factory, record.NewFakeRecorder(1), opts); err == nil {
			t.Errorf("New(%+v) succeeded, want error", opts)
		}
	}
}

func node(name, cidr string) *corev1.Node {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if cidr != "" {
		n.Spec.PodCIDR = cidr
		n.Spec.PodCIDRs = []string{cidr}
	}
	return n
}

func TestSync(t *testing.T) {
	tests := []struct {
		name       string
		cluster    string
		nodes      []*corev1.Node // in the cache and the API at start (rebuild input)
		key        string
		wantPatch  []string // patch bodies, in order
		wantEvents []string
		wantErr    bool
	}{
		{
			name: "new node gets the first free CIDR", cluster: "10.244.0.0/16",
			nodes: []*corev1.Node{node("n0", "10.244.0.0/24"), node("n1", "")}, key: "n1",
			wantPatch: []string{`{"spec":{"podCIDR":"10.244.1.0/24","podCIDRs":["10.244.1.0/24"]}}`},
		},
		{
			name: "converged: node already has a CIDR", cluster: "10.244.0.0/16",
			nodes: []*corev1.Node{node("n0", "10.244.0.0/24")}, key: "n0",
		},
		{
			name: "deleted node is a no-op", cluster: "10.244.0.0/16", key: "gone",
		},
		{
			name: "exhausted range emits CIDRNotAvailable", cluster: "10.0.0.0/24",
			nodes: []*corev1.Node{node("n0", "10.0.0.0/24"), node("n1", "")}, key: "n1",
			wantEvents: []string{"Normal CIDRNotAvailable Node n1 status is now: CIDRNotAvailable"},
			wantErr:    true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var objs []runtime.Object
			for _, n := range tt.nodes {
				objs = append(objs, n)
			}
			client := fake.NewClientset(objs...)
			factory := informers.NewSharedInformerFactory(client, 0)
			rec := record.NewFakeRecorder(10)
			c, err := New(client, factory, rec, Options{ClusterCIDR: tt.cluster})
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			for _, n := range tt.nodes {
				_ = factory.Core().V1().Nodes().Informer().GetIndexer().Add(n)
			}
			c.rebuild(context.Background(), tt.nodes)
			client.ClearActions()

			err = c.sync(context.Background(), tt.key)
			if (err != nil) != tt.wantErr {
				t.Fatalf("sync error = %v, wantErr %v", err, tt.wantErr)
			}
			var patches []string
			for _, a := range client.Actions() {
				if p, ok := a.(clienttesting.PatchAction); ok {
					patches = append(patches, string(p.GetPatch()))
				} else if a.GetVerb() != "get" && a.GetVerb() != "list" && a.GetVerb() != "watch" {
					t.Errorf("unexpected write %s %s", a.GetVerb(), a.GetResource().Resource)
				}
			}
			if diff := cmp.Diff(tt.wantPatch, patches); diff != "" {
				t.Errorf("patches (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantEvents, controllertest.Events(rec)); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
		})
	}
}

// TestReleaseOnDelete checks that a deleted node's CIDR is handed out again.
func TestReleaseOnDelete(t *testing.T) {
	client := fake.NewClientset(node("n1", ""))
	factory := informers.NewSharedInformerFactory(client, 0)
	c, err := New(client, factory, record.NewFakeRecorder(10), Options{ClusterCIDR: "10.0.0.0/24"})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	idx := factory.Core().V1().Nodes().Informer().GetIndexer()
	ctx := context.Background()
	old := node("old", "10.0.0.0/24")
	_ = idx.Add(old)
	c.rebuild(ctx, []*corev1.Node{old})
	_ = idx.Delete(old)
	if err := c.sync(ctx, "old"); err != nil {
		t.Fatalf("sync deleted node: %v", err)
	}
	_ = idx.Add(node("n1", ""))
	if err := c.sync(ctx, "n1"); err != nil {
		t.Fatalf("sync n1: %v", err)
	}
	got, err := client.CoreV1().Nodes().Get(ctx, "n1", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get n1: %v", err)
	}
	if diff := cmp.Diff([]string{"10.0.0.0/24"}, got.Spec.PodCIDRs); diff != "" {
		t.Errorf("podCIDRs (-want +got):\n%s", diff)
	}
}
