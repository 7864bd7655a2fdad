package resourcequota

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
)

func quota(hard corev1.ResourceList, opts ...func(*corev1.ResourceQuota)) *corev1.ResourceQuota {
	q := &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "q"}, Spec: corev1.ResourceQuotaSpec{Hard: hard}}
	for _, o := range opts {
		o(q)
	}
	return q
}

func rl(kv ...string) corev1.ResourceList {
	out := corev1.ResourceList{}
	for i := 0; i+1 < len(kv); i += 2 {
		out[corev1.ResourceName(kv[i])] = resource.MustParse(kv[i+1])
	}
	return out
}

func pod(name string, phase corev1.PodPhase, requests, limits corev1.ResourceList, opts ...func(*corev1.Pod)) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Resources: corev1.ResourceRequirements{Requests: requests, Limits: limits}}}},
		Status:     corev1.PodStatus{Phase: phase},
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

func svc(name string, t corev1.ServiceType, ports int) *corev1.Service {
	s := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name}, Spec: corev1.ServiceSpec{Type: t}}
	for range ports {
		s.Spec.Ports = append(s.Spec.Ports, corev1.ServicePort{})
	}
	return s
}

// cmpQuantities compares resource lists by value, not by representation.
var cmpQuantities = cmp.Comparer(func(a, b resource.Quantity) bool { return a.Cmp(b) == 0 })

func TestUsage(t *testing.T) {
	objs := Objects{
		Pods: []*corev1.Pod{
			pod("a", corev1.PodRunning, rl("cpu", "500m", "memory", "1Gi"), rl("cpu", "1", "memory", "2Gi")),
			pod("b", corev1.PodPending, rl("cpu", "250m"), nil, func(p *corev1.Pod) { p.Spec.ActiveDeadlineSeconds = ptrTo(int64(60)) }),
			pod("done", corev1.PodSucceeded, rl("cpu", "8"), nil),
			pod("besteffort", corev1.PodRunning, nil, nil, func(p *corev1.Pod) { p.Spec.PriorityClassName = "low" }),
		},
		Services: []*corev1.Service{svc("c", corev1.ServiceTypeClusterIP, 1), svc("np", corev1.ServiceTypeNodePort, 2), svc("lb", corev1.ServiceTypeLoadBalancer, 1)},
		PVCs: []*corev1.PersistentVolumeClaim{{Spec: corev1.PersistentVolumeClaimSpec{Resources: corev1.VolumeResourceRequirements{Requests: rl("storage", "5Gi")}}},
			{Spec: corev1.PersistentVolumeClaimSpec{Resources: corev1.VolumeResourceRequirements{Requests: rl("storage", "1Gi")}}}},
		Counts: map[string]int64{"configmaps": 3, "services": 3, "deployments.apps": 2, "persistentvolumeclaims": 2},
	}
	tests := []struct {
		name  string
		quota *corev1.ResourceQuota
		want  corev1.ResourceList
	}{
		{
			name:  "compute resources of non-terminal pods",
			quota: quota(rl("pods", "10", "requests.cpu", "4", "cpu", "4", "requests.memory", "8Gi", "limits.cpu", "8", "limits.memory", "8Gi")),
			want:  rl("pods", "3", "requests.cpu", "750m", "cpu", "750m", "requests.memory", "1Gi", "limits.cpu", "1", "limits.memory", "2Gi"),
		},
		{
			name:  "object counts, bare and count/ names",
			quota: quota(rl("configmaps", "10", "count/configmaps", "10", "services", "5", "count/deployments.apps", "5", "persistentvolumeclaims", "5", "secrets", "5", "count/widgets.example.com", "1")),
			want:  rl("configmaps", "3", "count/configmaps", "3", "services", "3", "count/deployments.apps", "2", "persistentvolumeclaims", "2", "secrets", "0", "count/widgets.example.com", "0"),
		},
		{
			name:  "node ports, load balancers, storage",
			quota: quota(rl("services.nodeports", "10", "services.loadbalancers", "2", "requests.storage", "100Gi")),
			want:  rl("services.nodeports", "3", "services.loadbalancers", "1", "requests.storage", "6Gi"),
		},
		{
			name: "Terminating scope counts pods with an active deadline",
			quota: quota(rl("pods", "10"), func(q *corev1.ResourceQuota) {
				q.Spec.Scopes = []corev1.ResourceQuotaScope{corev1.ResourceQuotaScopeTerminating}
			}),
			want: rl("pods", "1"),
		},
		{
			name: "BestEffort scope",
			quota: quota(rl("pods", "10"), func(q *corev1.ResourceQuota) {
				q.Spec.Scopes = []corev1.ResourceQuotaScope{corev1.ResourceQuotaScopeBestEffort}
			}),
			want: rl("pods", "1"),
		},
		{
			name: "PriorityClass scope selector",
			quota: quota(rl("pods", "10"), func(q *corev1.ResourceQuota) {
				q.Spec.ScopeSelector = &corev1.ScopeSelector{MatchExpressions: []corev1.ScopedResourceSelectorRequirement{{
					ScopeName: corev1.ResourceQuotaScopePriorityClass, Operator: corev1.ScopeSelectorOpIn, Values: []string{"low"},
				}}}
			}),
			want: rl("pods", "1"),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Usage(tt.quota, objs)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got, cmpQuantities); diff != "" {
				t.Errorf("used (-want +got):\n%s", diff)
			}
		})
	}
}

func ptrTo[T any](v T) *T { return &v }

func TestSync(t *testing.T) {
	hard := rl("pods", "10", "configmaps", "5", "count/deployments.apps", "3")
	used := rl("pods", "1", "configmaps", "1", "count/deployments.apps", "1")
	objs := []runtime.Object{
		pod("a", corev1.PodRunning, nil, nil),
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "cm"}},
		&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "d"}},
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "other", Name: "cm"}},
	}
	tests := []struct {
		name       string
		quota      *corev1.ResourceQuota
		wantWrites []string
		wantStatus *corev1.ResourceQuotaStatus
	}{
		{
			name:       "new quota gets hard and used",
			quota:      quota(hard),
			wantWrites: []string{"update resourcequotas/status q"},
			wantStatus: &corev1.ResourceQuotaStatus{Hard: hard, Used: used},
		},
		{
			name:  "converged quota writes nothing",
			quota: quota(hard, func(q *corev1.ResourceQuota) { q.Status = corev1.ResourceQuotaStatus{Hard: hard, Used: used} }),
		},
		{
			name: "stale used is corrected",
			quota: quota(hard, func(q *corev1.ResourceQuota) {
				q.Status = corev1.ResourceQuotaStatus{Hard: hard, Used: rl("pods", "4", "configmaps", "1", "count/deployments.apps", "1")}
			}),
			wantWrites: []string{"update resourcequotas/status q"},
			wantStatus: &corev1.ResourceQuotaStatus{Hard: hard, Used: used},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			all := append([]runtime.Object{tt.quota}, objs...)
			client := fake.NewClientset(all...)
			factory := informers.NewSharedInformerFactory(client, 0)
			c, err := New(client, factory)
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range all {
				var err error
				switch o := o.(type) {
				case *corev1.Pod:
					err = factory.Core().V1().Pods().Informer().GetIndexer().Add(o)
				case *corev1.ConfigMap:
					err = factory.Core().V1().ConfigMaps().Informer().GetIndexer().Add(o)
				case *appsv1.Deployment:
					err = factory.Apps().V1().Deployments().Informer().GetIndexer().Add(o)
				case *corev1.ResourceQuota:
					err = factory.Core().V1().ResourceQuotas().Informer().GetIndexer().Add(o)
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			client.ClearActions()
			if err := c.sync(t.Context(), "ns/q"); err != nil {
				t.Fatalf("sync: %v", err)
			}
			var writes []string
			var status *corev1.ResourceQuotaStatus
			for _, a := range client.Actions() {
				if u, ok := a.(clienttesting.UpdateAction); ok && a.GetVerb() == "update" {
					writes = append(writes, "update "+a.GetResource().Resource+"/"+a.GetSubresource()+" "+u.GetObject().(metav1.Object).GetName())
					status = &u.GetObject().(*corev1.ResourceQuota).Status
				}
			}
			if diff := cmp.Diff(tt.wantWrites, writes); diff != "" {
				t.Errorf("writes (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantStatus, status, cmpQuantities); diff != "" {
				t.Errorf("status (-want +got):\n%s", diff)
			}
		})
	}
}
