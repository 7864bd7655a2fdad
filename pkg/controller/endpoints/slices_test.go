package endpoints

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
)

// pods returns n ready pods named prefix0..prefix<n-1>.
func pods(prefix string, n int, opts ...podOpt) []*corev1.Pod {
	out := make([]*corev1.Pod, n)
	for i := range n {
		out[i] = newPod("web", fmt.Sprintf("%s%03d", prefix, i), fmt.Sprintf("10.1.%d.%d", i/200, i%200+1), opts...)
	}
	return out
}

// slice builds the slice the controller would have written for pods.
func slice(svc *corev1.Service, name string, ps []*corev1.Pod) *discoveryv1.EndpointSlice {
	var ports []discoveryv1.EndpointPort
	var eps []discoveryv1.Endpoint
	for _, p := range ps {
		ports = slicePorts(svc, p)
		eps = append(eps, sliceEndpoint(svc, p))
	}
	s := newSlice(svc, sliceLabels(svc), ports, eps)
	s.GenerateName, s.Name, s.UID = "", name, types.UID(name+"-uid")
	return s
}

// render summarises a plan as "verb name [endpoint pods]".
func render(p SlicePlan) []string {
	names := func(s *discoveryv1.EndpointSlice) string {
		var n []string
		for _, ep := range s.Endpoints {
			n = append(n, ep.TargetRef.Name)
		}
		if len(n) > 3 {
			return fmt.Sprintf("%d endpoints", len(n))
		}
		return strings.Join(n, " ")
	}
	var out []string
	for _, s := range p.Create {
		out = append(out, fmt.Sprintf("create %s [%s]", s.GenerateName, names(s)))
	}
	for _, s := range p.Update {
		out = append(out, fmt.Sprintf("update %s [%s]", s.Name, names(s)))
	}
	for _, s := range p.Delete {
		out = append(out, "delete "+s.Name)
	}
	return out
}

func TestPlanSlices(t *testing.T) {
	svc := newSvc("web")
	three := pods("p", 3)
	many := pods("m", 250)
	relabeled := newSvc("web")
	relabeled.Labels = map[string]string{"team": "b"}
	tests := []struct {
		name     string
		svc      *corev1.Service
		pods     []*corev1.Pod
		existing []*discoveryv1.EndpointSlice
		want     []string
	}{
		{
			name: "new service: one slice",
			svc:  svc, pods: three,
			want: []string{"create web- [p000 p001 p002]"},
		},
		{
			name: "converged: no writes",
			svc:  svc, pods: three,
			existing: []*discoveryv1.EndpointSlice{slice(svc, "web-a", three)},
		},
		{
			name: "250 endpoints: slices of 100",
			svc:  svc, pods: many,
			want: []string{"create web- [100 endpoints]", "create web- [100 endpoints]", "create web- [50 endpoints]"},
		},
		{
			name: "a removed pod rewrites only its slice",
			svc:  svc, pods: many[1:],
			existing: []*discoveryv1.EndpointSlice{slice(svc, "web-a", many[:100]), slice(svc, "web-b", many[100:200]), slice(svc, "web-c", many[200:])},
			want:     []string{"update web-a [99 endpoints]"},
		},
		{
			name: "a new pod joins the slice rewritten anyway",
			svc:  svc, pods: append(append([]*corev1.Pod{}, many[1:]...), pods("z", 1)...),
			existing: []*discoveryv1.EndpointSlice{slice(svc, "web-a", many[:100]), slice(svc, "web-b", many[100:200]), slice(svc, "web-c", many[200:])},
			want:     []string{"update web-a [100 endpoints]"},
		},
		{
			name: "new pods go to the fullest slice that takes them all",
			svc:  svc, pods: append(append([]*corev1.Pod{}, many[:180]...), pods("z", 5)...),
			existing: []*discoveryv1.EndpointSlice{slice(svc, "web-a", many[:100]), slice(svc, "web-b", many[100:150]), slice(svc, "web-c", many[150:180])},
			want:     []string{"update web-b [55 endpoints]"},
		},
		{
			name: "a pod turning unready updates its endpoint in place",
			svc:  svc, pods: []*corev1.Pod{three[0], three[1], newPod("web", "p002", three[2].Status.PodIP, notReady)},
			existing: []*discoveryv1.EndpointSlice{slice(svc, "web-a", three)},
			want:     []string{"update web-a [p000 p001 p002]"},
		},
		{
			name: "terminating pods stay, with their conditions",
			svc:  svc, pods: []*corev1.Pod{three[0], newPod("web", "p001", three[1].Status.PodIP, terminating)},
			existing: []*discoveryv1.EndpointSlice{slice(svc, "web-a", three[:2])},
			want:     []string{"update web-a [p000 p001]"},
		},
		{
			name: "changed service labels rewrite every slice",
			svc:  relabeled, pods: three,
			existing: []*discoveryv1.EndpointSlice{slice(svc, "web-a", three)},
			want:     []string{"update web-a [p000 p001 p002]"},
		},
		{
			name: "pods resolving a named port differently get their own slice",
			svc:  svc, pods: []*corev1.Pod{three[0], newPod("web", "odd", "10.9.0.1", containerPort(9090))},
			existing: []*discoveryv1.EndpointSlice{slice(svc, "web-a", three[:1])},
			want:     []string{"create web- [odd]"},
		},
		{
			name: "no endpoints: one placeholder slice",
			svc:  svc,
			want: []string{"create web- []"},
		},
		{
			name:     "no endpoints left: slices replaced by a placeholder",
			svc:      svc,
			existing: []*discoveryv1.EndpointSlice{slice(svc, "web-a", three)},
			want:     []string{"create web- []", "delete web-a"},
		},
		{
			name:     "existing placeholder is kept",
			svc:      svc,
			existing: []*discoveryv1.EndpointSlice{slice(svc, "web-a", nil)},
		},
		{
			name: "first endpoint replaces the placeholder",
			svc:  svc, pods: three[:1],
			existing: []*discoveryv1.EndpointSlice{slice(svc, "web-a", nil)},
			want:     []string{"create web- [p000]", "delete web-a"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := render(PlanSlices(tt.svc, tt.pods, tt.existing, MaxEndpointsPerSlice))
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("plan (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSliceEndpointConditions(t *testing.T) {
	tests := []struct {
		name                            string
		svc                             *corev1.Service
		pod                             *corev1.Pod
		ready, serving, terminatingCond bool
	}{
		{"ready pod", newSvc("web"), newPod("web", "a", "10.0.0.1"), true, true, false},
		{"unready pod", newSvc("web"), newPod("web", "a", "10.0.0.1", notReady), false, false, false},
		{"terminating ready pod serves but is not ready", newSvc("web"), newPod("web", "a", "10.0.0.1", terminating), false, true, true},
		{"publishNotReadyAddresses forces ready", newSvc("web", publishNotReady), newPod("web", "a", "10.0.0.1", notReady, terminating), true, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := sliceEndpoint(tt.svc, tt.pod).Conditions
			want := discoveryv1.EndpointConditions{Ready: &tt.ready, Serving: &tt.serving, Terminating: &tt.terminatingCond}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("conditions (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSyncSlices(t *testing.T) {
	svc := newSvc("web")
	three := pods("p", 3)
	tests := []struct {
		name       string
		objs       []runtime.Object
		wantWrites []string
	}{
		{
			name:       "new service gets a slice",
			objs:       []runtime.Object{svc, three[0], three[1], three[2]},
			wantWrites: []string{"create endpointslices web-"},
		},
		{
			name: "converged service writes nothing",
			objs: []runtime.Object{svc, three[0], three[1], three[2], slice(svc, "web-a", three)},
		},
		{
			name:       "removed pod updates the slice",
			objs:       []runtime.Object{svc, three[0], three[1], slice(svc, "web-a", three)},
			wantWrites: []string{"update endpointslices web-a"},
		},
		{
			name: "service without selector: slices left alone",
			objs: []runtime.Object{newSvc("web", noSelector), three[0]},
		},
		{
			name: "slices of other managers are ignored",
			objs: []runtime.Object{svc, three[0], three[1], three[2], slice(svc, "web-a", three), func() runtime.Object {
				s := slice(svc, "web-mirror", nil)
				s.Labels[discoveryv1.LabelManagedBy] = "someone-else"
				return s
			}()},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, tt.objs...)
			if err := f.slices.sync(t.Context(), "default/web"); err != nil {
				t.Fatalf("sync: %v", err)
			}
			if diff := cmp.Diff(tt.wantWrites, f.writes()); diff != "" {
				t.Errorf("writes (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSyncSlicesWaitsForOwnWrites(t *testing.T) {
	svc := newSvc("web")
	f := newFixture(t, svc, newPod("web", "a", "10.1.0.1"))
	if err := f.slices.sync(t.Context(), "default/web"); err != nil {
		t.Fatalf("first sync: %v", err)
	}
	f.client.ClearActions()
	// The informer has not delivered the created slice: a second sync must
	// not create another one.
	if err := f.slices.sync(t.Context(), "default/web"); err == nil {
		t.Fatal("second sync on a stale cache: got nil error, want errStaleCache")
	}
	if got := f.writes(); len(got) != 0 {
		t.Errorf("writes on stale cache = %v, want none", got)
	}
}
