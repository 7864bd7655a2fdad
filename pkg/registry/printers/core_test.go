package printers

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

func TestServiceRow(t *testing.T) {
	svc := func(typ corev1.ServiceType, mut func(*corev1.Service)) *corev1.Service {
		s := &corev1.Service{
			ObjectMeta: objMeta("web", 5*time.Minute),
			Spec: corev1.ServiceSpec{
				Type: typ, ClusterIP: "10.43.0.10", ClusterIPs: []string{"10.43.0.10"},
				Ports:    []corev1.ServicePort{{Port: 80, Protocol: corev1.ProtocolTCP}},
				Selector: map[string]string{"app": "web"},
			},
		}
		mut(s)
		return s
	}
	none := func(*corev1.Service) {}
	runRows(t, schema.GroupResource{Resource: "services"}, []rowCase{
		{
			name: "cluster IP",
			obj:  svc(corev1.ServiceTypeClusterIP, none),
			want: []interface{}{"web", "ClusterIP", "10.43.0.10", "<none>", "80/TCP", "5m", "app=web"},
		},
		{
			name: "cluster IP with external IPs",
			obj:  svc(corev1.ServiceTypeClusterIP, func(s *corev1.Service) { s.Spec.ExternalIPs = []string{"1.2.3.4", "5.6.7.8"} }),
			want: []interface{}{"web", "ClusterIP", "10.43.0.10", "1.2.3.4,5.6.7.8", "80/TCP", "5m", "app=web"},
		},
		{
			name: "node port and several ports",
			obj: svc(corev1.ServiceTypeNodePort, func(s *corev1.Service) {
				s.Spec.Ports = []corev1.ServicePort{
					{Port: 80, NodePort: 30080, Protocol: corev1.ProtocolTCP},
					{Port: 53, NodePort: 30053, Protocol: corev1.ProtocolUDP},
				}
			}),
			want: []interface{}{"web", "NodePort", "10.43.0.10", "<none>", "80:30080/TCP,53:30053/UDP", "5m", "app=web"},
		},
		{
			name: "load balancer pending",
			obj:  svc(corev1.ServiceTypeLoadBalancer, func(s *corev1.Service) { s.Spec.Ports[0].NodePort = 31000 }),
			want: []interface{}{"web", "LoadBalancer", "10.43.0.10", "<pending>", "80:31000/TCP", "5m", "app=web"},
		},
		{
			name: "load balancer with sorted, de-duplicated ingress",
			obj: svc(corev1.ServiceTypeLoadBalancer, func(s *corev1.Service) {
				s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "192.168.1.20"}, {Hostname: "lb.example.com"}, {IP: "192.168.1.10"}, {IP: "192.168.1.20"}}
			}),
			want: []interface{}{"web", "LoadBalancer", "10.43.0.10", "192.168.1.10,192.168.1.20,lb.example.com", "80/TCP", "5m", "app=web"},
		},
		{
			name: "load balancer ingress then external IPs",
			obj: svc(corev1.ServiceTypeLoadBalancer, func(s *corev1.Service) {
				s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "192.168.1.10"}}
				s.Spec.ExternalIPs = []string{"1.2.3.4"}
			}),
			want: []interface{}{"web", "LoadBalancer", "10.43.0.10", "192.168.1.10,1.2.3.4", "80/TCP", "5m", "app=web"},
		},
		{
			name: "headless without ports or selector",
			obj: svc(corev1.ServiceTypeClusterIP, func(s *corev1.Service) {
				s.Spec.ClusterIP, s.Spec.ClusterIPs = "None", []string{"None"}
				s.Spec.Ports, s.Spec.Selector = nil, nil
			}),
			want: []interface{}{"web", "ClusterIP", "None", "<none>", "<none>", "5m", "<none>"},
		},
		{
			name: "external name",
			obj: svc(corev1.ServiceTypeExternalName, func(s *corev1.Service) {
				s.Spec.ClusterIPs, s.Spec.ExternalName = nil, "db.example.com"
			}),
			want: []interface{}{"web", "ExternalName", "<none>", "db.example.com", "80/TCP", "5m", "app=web"},
		},
	})
}

func TestEndpointsRow(t *testing.T) {
	addrs := func(ips ...string) []corev1.EndpointAddress {
		out := make([]corev1.EndpointAddress, len(ips))
		for i, ip := range ips {
			out[i].IP = ip
		}
		return out
	}
	ep := func(subsets ...corev1.EndpointSubset) *corev1.Endpoints {
		return &corev1.Endpoints{ObjectMeta: objMeta("web", time.Hour), Subsets: subsets}
	}
	http := []corev1.EndpointPort{{Name: "http", Port: 8080}}
	runRows(t, schema.GroupResource{Resource: "endpoints"}, []rowCase{
		{name: "no subsets", obj: ep(), want: []interface{}{"web", "<none>", "60m"}},
		{
			name: "two addresses",
			obj:  ep(corev1.EndpointSubset{Addresses: addrs("10.42.0.5", "10.42.0.6"), Ports: http}),
			want: []interface{}{"web", "10.42.0.5:8080,10.42.0.6:8080", "60m"},
		},
		{
			name: "ipv6 addresses are bracketed",
			obj:  ep(corev1.EndpointSubset{Addresses: addrs("fd00::5"), Ports: http}),
			want: []interface{}{"web", "[fd00::5]:8080", "60m"},
		},
		{
			name: "truncated after three",
			obj: ep(corev1.EndpointSubset{Addresses: addrs("10.42.0.1", "10.42.0.2", "10.42.0.3", "10.42.0.4", "10.42.0.5"),
				Ports: []corev1.EndpointPort{{Port: 80}, {Port: 443}}}),
			want: []interface{}{"web", "10.42.0.1:80,10.42.0.2:80,10.42.0.3:80 + 7 more...", "60m"},
		},
		{
			name: "headless without ports",
			obj:  ep(corev1.EndpointSubset{Addresses: addrs("10.42.0.1")}, corev1.EndpointSubset{Addresses: addrs("10.42.0.2")}),
			want: []interface{}{"web", "10.42.0.1,10.42.0.2", "60m"},
		},
		{
			name: "only not-ready addresses",
			obj:  ep(corev1.EndpointSubset{NotReadyAddresses: addrs("10.42.0.1"), Ports: http}),
			want: []interface{}{"web", "", "60m"},
		},
	})
}

func TestNodeRow(t *testing.T) {
	ready := func(s corev1.ConditionStatus) []corev1.NodeCondition {
		return []corev1.NodeCondition{{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse}, {Type: corev1.NodeReady, Status: s}}
	}
	node := &corev1.Node{
		ObjectMeta: objMeta("node-1", 50*24*time.Hour),
		Status: corev1.NodeStatus{
			Conditions: ready(corev1.ConditionTrue),
			Addresses: []corev1.NodeAddress{
				{Type: corev1.NodeHostName, Address: "node-1"},
				{Type: corev1.NodeInternalIP, Address: "192.168.1.11"},
				{Type: corev1.NodeInternalIP, Address: "192.168.1.12"},
				{Type: corev1.NodeExternalIP, Address: "203.0.113.1"},
			},
			NodeInfo: corev1.NodeSystemInfo{KubeletVersion: "v1.33.2", OSImage: "Debian GNU/Linux 13 (trixie)",
				KernelVersion: "6.12.0-1-amd64", ContainerRuntimeVersion: "containerd://2.1.3"},
		},
	}
	node.Labels = map[string]string{
		"node-role.kubernetes.io/control-plane": "", "node-role.kubernetes.io/etcd": "true",
		"node-role.kubernetes.io/": "", "kubernetes.io/role": "master", "kubernetes.io/hostname": "node-1",
	}
	cordoned := node.DeepCopy()
	cordoned.Spec.Unschedulable = true
	cordoned.Status.Conditions = ready(corev1.ConditionFalse)

	runRows(t, schema.GroupResource{Resource: "nodes"}, []rowCase{
		{
			name: "ready control plane",
			obj:  node,
			want: []interface{}{"node-1", "Ready", "control-plane,etcd,master", "50d", "v1.33.2",
				"192.168.1.11", "203.0.113.1", "Debian GNU/Linux 13 (trixie)", "6.12.0-1-amd64", "containerd://2.1.3"},
		},
		{
			name: "not ready and cordoned",
			obj:  cordoned,
			want: []interface{}{"node-1", "NotReady,SchedulingDisabled", "control-plane,etcd,master", "50d", "v1.33.2",
				"192.168.1.11", "203.0.113.1", "Debian GNU/Linux 13 (trixie)", "6.12.0-1-amd64", "containerd://2.1.3"},
		},
		{
			name: "unknown readiness is NotReady",
			obj: &corev1.Node{ObjectMeta: objMeta("n", time.Minute),
				Status: corev1.NodeStatus{Conditions: ready(corev1.ConditionUnknown)}},
			want: []interface{}{"n", "NotReady", "<none>", "60s", "", "<none>", "<none>", "<unknown>", "<unknown>", "<unknown>"},
		},
		{
			name: "no conditions yet",
			obj:  &corev1.Node{ObjectMeta: objMeta("n", time.Minute), Spec: corev1.NodeSpec{Unschedulable: true}},
			want: []interface{}{"n", "Unknown,SchedulingDisabled", "<none>", "60s", "", "<none>", "<none>", "<unknown>", "<unknown>", "<unknown>"},
		},
	})
}

func TestSimpleCoreRows(t *testing.T) {
	runRows(t, schema.GroupResource{Resource: "namespaces"}, []rowCase{{
		name: "terminating",
		obj:  &corev1.Namespace{ObjectMeta: objMeta("team-a", 7*24*time.Hour), Status: corev1.NamespaceStatus{Phase: corev1.NamespaceTerminating}},
		want: []interface{}{"team-a", "Terminating", "7d"},
	}})
	runRows(t, schema.GroupResource{Resource: "configmaps"}, []rowCase{{
		name: "data and binary data both count",
		obj: &corev1.ConfigMap{ObjectMeta: objMeta("kube-root-ca.crt", time.Hour),
			Data: map[string]string{"ca.crt": "x", "b": "y"}, BinaryData: map[string][]byte{"bin": nil}},
		want: []interface{}{"kube-root-ca.crt", "3", "60m"},
	}})
	runRows(t, schema.GroupResource{Resource: "secrets"}, []rowCase{{
		name: "tls",
		obj: &corev1.Secret{ObjectMeta: objMeta("tls", time.Hour), Type: corev1.SecretTypeTLS,
			Data: map[string][]byte{"tls.crt": nil, "tls.key": nil}},
		want: []interface{}{"tls", "kubernetes.io/tls", "2", "60m"},
	}})
	runRows(t, schema.GroupResource{Resource: "serviceaccounts"}, []rowCase{{
		name: "default",
		obj:  &corev1.ServiceAccount{ObjectMeta: objMeta("default", time.Hour)},
		want: []interface{}{"default", "0", "60m"},
	}})
	runRows(t, schema.GroupResource{Resource: "componentstatuses"}, []rowCase{
		{
			name: "healthy",
			obj: &corev1.ComponentStatus{ObjectMeta: metav1.ObjectMeta{Name: "etcd-0"},
				Conditions: []corev1.ComponentCondition{{Type: corev1.ComponentHealthy, Status: corev1.ConditionTrue, Message: "ok"}}},
			want: []interface{}{"etcd-0", "Healthy", "ok", ""},
		},
		{
			name: "unhealthy",
			obj: &corev1.ComponentStatus{ObjectMeta: metav1.ObjectMeta{Name: "scheduler"},
				Conditions: []corev1.ComponentCondition{{Type: corev1.ComponentHealthy, Status: corev1.ConditionFalse, Error: "connection refused"}}},
			want: []interface{}{"scheduler", "Unhealthy", "", "connection refused"},
		},
		{
			name: "no condition",
			obj:  &corev1.ComponentStatus{ObjectMeta: metav1.ObjectMeta{Name: "x"}},
			want: []interface{}{"x", "Unknown", "", ""},
		},
	})
}

func TestPersistentVolumeRows(t *testing.T) {
	fs := corev1.PersistentVolumeFilesystem
	pv := &corev1.PersistentVolume{
		ObjectMeta: objMeta("pv-1", time.Hour),
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("10Gi")},
			AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadWriteMany, corev1.ReadWriteOnce, corev1.ReadWriteOnce},
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
			ClaimRef:                      &corev1.ObjectReference{Namespace: "default", Name: "data"},
			StorageClassName:              "local-path",
			VolumeMode:                    &fs,
		},
		Status: corev1.PersistentVolumeStatus{Phase: corev1.VolumeBound},
	}
	released := pv.DeepCopy()
	released.Annotations = map[string]string{"volume.beta.kubernetes.io/storage-class": "beta"}
	released.DeletionTimestamp = agoPtr(time.Second)
	released.Spec.VolumeAttributesClassName = ptr("gold")
	released.Status.Reason = "Released by user"
	runRows(t, schema.GroupResource{Resource: "persistentvolumes"}, []rowCase{
		{name: "bound", obj: pv,
			want: []interface{}{"pv-1", "10Gi", "RWO,RWX", "Retain", "Bound", "default/data", "local-path", "<unset>", "", "60m", "Filesystem"}},
		{name: "terminating with beta class", obj: released,
			want: []interface{}{"pv-1", "10Gi", "RWO,RWX", "Retain", "Terminating", "default/data", "beta", "gold", "Released by user", "60m", "Filesystem"}},
	})

	pvc := &corev1.PersistentVolumeClaim{
		ObjectMeta: objMeta("data", time.Hour),
		Spec: corev1.PersistentVolumeClaimSpec{
			StorageClassName: ptr("local-path"),
			Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
		},
		Status: corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimPending},
	}
	bound := pvc.DeepCopy()
	bound.Spec.VolumeName = "pv-1"
	bound.Spec.VolumeMode = &fs
	bound.Status = corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimBound,
		AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOncePod, corev1.ReadOnlyMany},
		Capacity:    corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("10Gi")}}
	runRows(t, schema.GroupResource{Resource: "persistentvolumeclaims"}, []rowCase{
		{name: "pending", obj: pvc,
			want: []interface{}{"data", "Pending", "", "", "", "local-path", "<unset>", "60m", "<unset>"}},
		{name: "bound", obj: bound,
			want: []interface{}{"data", "Bound", "pv-1", "10Gi", "ROX,RWOP", "local-path", "<unset>", "60m", "Filesystem"}},
	})
}

func TestResourceQuotaRow(t *testing.T) {
	q := resource.MustParse
	runRows(t, schema.GroupResource{Resource: "resourcequotas"}, []rowCase{{
		name: "requests and limits split and sorted",
		obj: &corev1.ResourceQuota{
			ObjectMeta: objMeta("compute", time.Hour),
			Status: corev1.ResourceQuotaStatus{
				Hard: corev1.ResourceList{"pods": q("10"), "requests.cpu": q("2"), "limits.memory": q("4Gi"), "limits.cpu": q("4")},
				Used: corev1.ResourceList{"pods": q("3"), "requests.cpu": q("500m"), "limits.cpu": q("1")},
			},
		},
		want: []interface{}{"compute", "pods: 3/10, requests.cpu: 500m/2", "limits.cpu: 1/4, limits.memory: 0/4Gi", "60m"},
	}})
}

func TestRowRejectsOtherTypes(t *testing.T) {
	p, _ := For(schema.GroupResource{Resource: "pods"})
	if _, err := p.Row(&corev1.Node{}, now); err == nil {
		t.Error("pod printer accepted a node")
	}
	if _, err := p.Row((*corev1.Pod)(nil), now); err == nil {
		t.Error("pod printer accepted a nil pod")
	}
	if _, err := p.Row(nil, now); err == nil {
		t.Error("pod printer accepted nil")
	}
}

func TestDefaultPrinter(t *testing.T) {
	p := Default()
	want := []metav1.TableColumnDefinition{
		{Name: "Name", Type: "string", Format: "name", Description: objectMetaDoc("name")},
		{Name: "Created At", Type: "date", Description: objectMetaDoc("creationTimestamp")},
	}
	if diff := cmp.Diff(want, p.Columns); diff != "" {
		t.Errorf("columns mismatch (-want +got):\n%s", diff)
	}
	created := metav1.NewTime(time.Date(2025, 5, 1, 8, 30, 0, 0, time.FixedZone("CEST", 2*3600)))
	got, err := p.Row(&corev1.LimitRange{ObjectMeta: metav1.ObjectMeta{Name: "limits", CreationTimestamp: created}}, now)
	if err != nil {
		t.Fatalf("Row: %v", err)
	}
	if diff := cmp.Diff([]interface{}{"limits", "2025-05-01T06:30:00Z"}, got); diff != "" {
		t.Errorf("cells mismatch (-want +got):\n%s", diff)
	}
	if _, err := p.Row(&metav1.Status{}, now); err == nil {
		t.Error("default printer accepted an object without metadata")
	}
}
