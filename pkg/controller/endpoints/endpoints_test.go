package endpoints

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/record"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/skiff-project/skiff/pkg/controller/controllertest"
)

var now = time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)

func newSvc(name string, opts ...func(*corev1.Service)) *corev1.Service {
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, UID: types.UID(name + "-uid"), Labels: map[string]string{"team": "a"},
			CreationTimestamp: metav1.NewTime(now.Add(-time.Hour))},
		Spec: corev1.ServiceSpec{
			Selector:  map[string]string{"app": name},
			ClusterIP: "10.0.0.10",
			Ports:     []corev1.ServicePort{{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromString("web")}},
		},
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

func headless(s *corev1.Service)        { s.Spec.ClusterIP = corev1.ClusterIPNone }
func publishNotReady(s *corev1.Service) { s.Spec.PublishNotReadyAddresses = true }
func noSelector(s *corev1.Service)      { s.Spec.Selector = nil }

type podOpt func(*corev1.Pod)

func notReady(p *corev1.Pod) { p.Status.Conditions[0].Status = corev1.ConditionFalse }
func noIP(p *corev1.Pod)     { p.Status.PodIP = "" }
func terminating(p *corev1.Pod) {
	p.DeletionTimestamp = &metav1.Time{Time: now.Add(-time.Minute)}
}
func succeeded(p *corev1.Pod) { p.Status.Phase = corev1.PodSucceeded }
func containerPort(n int32) podOpt {
	return func(p *corev1.Pod) { p.Spec.Containers[0].Ports[0].ContainerPort = n }
}
func hostname(h, sub string) podOpt {
	return func(p *corev1.Pod) { p.Spec.Hostname, p.Spec.Subdomain = h, sub }
}

// newPod is a Running, Ready pod of service app with IP ip on node n1,
// serving its "web" port on 8080.
func newPod(app, name, ip string, opts ...podOpt) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name, UID: types.UID(name + "-uid"), Labels: map[string]string{"app": app},
			CreationTimestamp: metav1.NewTime(now.Add(-30 * time.Minute))},
		Spec: corev1.PodSpec{NodeName: "n1", Containers: []corev1.Container{{Name: "c", Ports: []corev1.ContainerPort{{Name: "web", ContainerPort: 8080, Protocol: corev1.ProtocolTCP}}}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip,
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(now.Add(-20 * time.Minute))}}},
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

func addr(pod *corev1.Pod, host string) corev1.EndpointAddress {
	a := corev1.EndpointAddress{IP: pod.Status.PodIP, NodeName: ptrTo("n1"), Hostname: host,
		TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: "default", Name: pod.Name, UID: pod.UID}}
	return a
}

func httpPort(n int32) corev1.EndpointPort {
	return corev1.EndpointPort{Name: "http", Port: n, Protocol: corev1.ProtocolTCP}
}

func TestSubsets(t *testing.T) {
	a := newPod("web", "a", "10.1.0.1")
	b := newPod("web", "b", "10.1.0.2")
	slow := newPod("web", "slow", "10.1.0.3", notReady)
	dying := newPod("web", "dying", "10.1.0.4", terminating)
	other := newPod("web", "other", "10.1.0.5", containerPort(9090))
	named := newPod("web", "named", "10.1.0.6", hostname("named", "web"))
	tests := []struct {
		name          string
		svc           *corev1.Service
		pods          []*corev1.Pod
		want          []corev1.EndpointSubset
		wantTruncated bool
	}{
		{
			name: "ready pods share one subset sorted by IP",
			svc:  newSvc("web"),
			pods: []*corev1.Pod{b, a},
			want: []corev1.EndpointSubset{{Addresses: []corev1.EndpointAddress{addr(a, ""), addr(b, "")}, Ports: []corev1.EndpointPort{httpPort(8080)}}},
		},
		{
			name: "not ready pod is a notReadyAddress; terminating, IP-less and terminal pods are left out",
			svc:  newSvc("web"),
			pods: []*corev1.Pod{a, slow, dying, newPod("web", "noip", "", noIP), newPod("web", "done", "10.1.0.9", succeeded)},
			want: []corev1.EndpointSubset{{
				Addresses:         []corev1.EndpointAddress{addr(a, "")},
				NotReadyAddresses: []corev1.EndpointAddress{addr(slow, "")},
				Ports:             []corev1.EndpointPort{httpPort(8080)},
			}},
		},
		{
			name: "publishNotReadyAddresses publishes not ready and terminating pods as ready",
			svc:  newSvc("web", publishNotReady),
			pods: []*corev1.Pod{slow, dying},
			want: []corev1.EndpointSubset{{Addresses: []corev1.EndpointAddress{addr(slow, ""), addr(dying, "")}, Ports: []corev1.EndpointPort{httpPort(8080)}}},
		},
		{
			name: "a named target port resolving to different numbers splits subsets",
			svc:  newSvc("web"),
			pods: []*corev1.Pod{a, other},
			want: []corev1.EndpointSubset{
				{Addresses: []corev1.EndpointAddress{addr(a, "")}, Ports: []corev1.EndpointPort{httpPort(8080)}},
				{Addresses: []corev1.EndpointAddress{addr(other, "")}, Ports: []corev1.EndpointPort{httpPort(9090)}},
			},
		},
		{
			name: "numeric target port needs no container port; hostname set for pods in the service's subdomain",
			svc: newSvc("web", headless, func(s *corev1.Service) {
				s.Spec.Ports[0].TargetPort = intstr.FromInt32(7000)
			}),
			pods: []*corev1.Pod{named, a},
			want: []corev1.EndpointSubset{{Addresses: []corev1.EndpointAddress{addr(a, ""), addr(named, "named")}, Ports: []corev1.EndpointPort{httpPort(7000)}}},
		},
		{
			name: "headless service without ports publishes addresses only",
			svc:  newSvc("web", headless, func(s *corev1.Service) { s.Spec.Ports = nil }),
			pods: []*corev1.Pod{a},
			want: []corev1.EndpointSubset{{Addresses: []corev1.EndpointAddress{addr(a, "")}}},
		},
		{
			name: "pod without the named port is skipped",
			svc:  newSvc("web"),
			pods: []*corev1.Pod{newPod("web", "x", "10.1.0.7", func(p *corev1.Pod) { p.Spec.Containers[0].Ports[0].Name = "other" })},
		},
		{
			name: "no pods, no subsets",
			svc:  newSvc("web"),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, truncated := Subsets(tt.svc, tt.pods)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Subsets (-want +got):\n%s", diff)
			}
			if truncated != tt.wantTruncated {
				t.Errorf("truncated = %v, want %v", truncated, tt.wantTruncated)
			}
		})
	}
}

func TestSubsetsTruncatesOverCapacity(t *testing.T) {
	var pods []*corev1.Pod
	for i := range MaxEndpointsPerEndpoints + 5 {
		var opts []podOpt
		if i < 5 {
			opts = append(opts, notReady)
		}
		pods = append(pods, newPod("web", fmt.Sprintf("p%04d", i), fmt.Sprintf("10.2.%d.%d", i/250, i%250), opts...))
	}
	got, truncated := Subsets(newSvc("web"), pods)
	if !truncated {
		t.Fatal("truncated = false, want true")
	}
	if len(got) != 1 || len(got[0].Addresses) != MaxEndpointsPerEndpoints || len(got[0].NotReadyAddresses) != 0 {
		t.Errorf("got %d subsets; want one with %d ready and no not-ready addresses", len(got), MaxEndpointsPerEndpoints)
	}
}

type fixture struct {
	client   *fake.Clientset
	recorder *record.FakeRecorder
	eps      *Controller
	slices   *SliceController
}

func newFixture(t *testing.T, objs ...runtime.Object) *fixture {
	t.Helper()
	client := fake.NewClientset(objs...)
	controllertest.GenerateNames(client, "endpointslices")
	factory := informers.NewSharedInformerFactory(client, 0)
	recorder := record.NewFakeRecorder(100)
	clk := clocktesting.NewFakePassiveClock(now)
	eps, err := New(client, factory.Core().V1().Services(), factory.Core().V1().Pods(), factory.Core().V1().Endpoints(), recorder, clk)
	if err != nil {
		t.Fatal(err)
	}
	slices, err := NewSliceController(client, factory.Core().V1().Services(), factory.Core().V1().Pods(), factory.Discovery().V1().EndpointSlices(), recorder, clk)
	if err != nil {
		t.Fatal(err)
	}
	controllertest.Seed(t, factory, objs...)
	client.ClearActions()
	return &fixture{client: client, recorder: recorder, eps: eps, slices: slices}
}

// writes renders the client's write actions as "verb resource name" (the
// generateName prefix for creates without a name).
func (f *fixture) writes() []string { return controllertest.Writes(f.client.Actions()) }

func TestSyncEndpoints(t *testing.T) {
	svc := newSvc("web")
	a := newPod("web", "a", "10.1.0.1")
	b := newPod("web", "b", "10.1.0.2")
	converged := DesiredEndpoints(svc, []*corev1.Pod{a, b})
	converged.ResourceVersion = "5"
	stale := converged.DeepCopy()
	stale.Subsets[0].Addresses = stale.Subsets[0].Addresses[:1]
	stale.Annotations["other"] = "kept"

	tests := []struct {
		name       string
		objs       []runtime.Object
		key        string
		wantWrites []string
		check      func(t *testing.T, f *fixture)
	}{
		{
			name:       "new service gets endpoints named like it",
			objs:       []runtime.Object{svc, a, b},
			key:        "default/web",
			wantWrites: []string{"create endpoints web"},
			check: func(t *testing.T, f *fixture) {
				got, err := f.client.Tracker().Get(corev1.SchemeGroupVersion.WithResource("endpoints"), "default", "web")
				if err != nil {
					t.Fatal(err)
				}
				ep := got.(*corev1.Endpoints)
				want := map[string]string{LastChangeTriggerTimeAnnotation: "2025-01-01T11:40:00Z"}
				if diff := cmp.Diff(want, ep.Annotations); diff != "" {
					t.Errorf("annotations (-want +got):\n%s", diff)
				}
				if diff := cmp.Diff(map[string]string{"team": "a"}, ep.Labels); diff != "" {
					t.Errorf("labels (-want +got):\n%s", diff)
				}
			},
		},
		{
			name: "converged endpoints write nothing",
			objs: []runtime.Object{svc, a, b, converged},
			key:  "default/web",
		},
		{
			name:       "stale endpoints are updated, foreign annotations kept",
			objs:       []runtime.Object{svc, a, b, stale},
			key:        "default/web",
			wantWrites: []string{"update endpoints web"},
			check: func(t *testing.T, f *fixture) {
				got, err := f.client.Tracker().Get(corev1.SchemeGroupVersion.WithResource("endpoints"), "default", "web")
				if err != nil {
					t.Fatal(err)
				}
				ep := got.(*corev1.Endpoints)
				if diff := cmp.Diff(converged.Subsets, ep.Subsets); diff != "" {
					t.Errorf("subsets (-want +got):\n%s", diff)
				}
				if ep.Annotations["other"] != "kept" {
					t.Errorf("annotation other = %q, want kept", ep.Annotations["other"])
				}
			},
		},
		{
			name: "service without selector: endpoints left alone",
			objs: []runtime.Object{newSvc("web", noSelector), a, stale},
			key:  "default/web",
		},
		{
			name:       "deleted service: its endpoints are deleted",
			objs:       []runtime.Object{converged},
			key:        "default/web",
			wantWrites: []string{"delete endpoints web"},
		},
		{
			name: "deleted service without endpoints: nothing to do",
			key:  "default/web",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, tt.objs...)
			if err := f.eps.sync(t.Context(), tt.key); err != nil {
				t.Fatalf("sync: %v", err)
			}
			if diff := cmp.Diff(tt.wantWrites, f.writes()); diff != "" {
				t.Errorf("writes (-want +got):\n%s", diff)
			}
			if tt.check != nil {
				tt.check(t, f)
			}
		})
	}
}

func TestDesiredEndpointsHeadlessLabel(t *testing.T) {
	got := DesiredEndpoints(newSvc("web", headless), nil)
	want := map[string]string{"team": "a", corev1.IsHeadlessService: ""}
	if diff := cmp.Diff(want, got.Labels); diff != "" {
		t.Errorf("labels (-want +got):\n%s", diff)
	}
}
