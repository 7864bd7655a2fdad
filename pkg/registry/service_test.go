package registry

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
)

func nodePortService() *corev1.Service {
	return &corev1.Service{Spec: corev1.ServiceSpec{
		Type:                  corev1.ServiceTypeNodePort,
		ClusterIP:             "10.96.5.5",
		ClusterIPs:            []string{"10.96.5.5"},
		IPFamilies:            []corev1.IPFamily{corev1.IPv4Protocol},
		IPFamilyPolicy:        svcPtr(corev1.IPFamilyPolicySingleStack),
		ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyCluster,
		Ports: []corev1.ServicePort{
			{Name: "http", Port: 80, Protocol: corev1.ProtocolTCP, NodePort: 30080},
			{Name: "https", Port: 443, Protocol: corev1.ProtocolTCP, NodePort: 30443},
		},
	}}
}

func localLoadBalancer() *corev1.Service {
	s := nodePortService()
	s.Spec.Type = corev1.ServiceTypeLoadBalancer
	s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	s.Spec.HealthCheckNodePort = 31000
	s.Spec.AllocateLoadBalancerNodePorts = svcPtr(true)
	s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "1.2.3.4"}}
	return s
}

func svcPtr[T any](v T) *T { return &v }

func TestPrepareServiceUpdate(t *testing.T) {
	tests := []struct {
		name   string
		old    *corev1.Service
		update func(*corev1.Service)
		want   func(*corev1.Service)
	}{
		{
			name:   "NodePort to ClusterIP drops the unchanged node ports and traffic policy",
			old:    nodePortService(),
			update: func(s *corev1.Service) { s.Spec.Type = corev1.ServiceTypeClusterIP },
			want: func(s *corev1.Service) {
				s.Spec.Type = corev1.ServiceTypeClusterIP
				s.Spec.Ports[0].NodePort, s.Spec.Ports[1].NodePort = 0, 0
				s.Spec.ExternalTrafficPolicy = ""
			},
		},
		{
			name: "a node port the client added is its request and stays",
			old:  nodePortService(),
			update: func(s *corev1.Service) {
				s.Spec.Type = corev1.ServiceTypeClusterIP
				s.Spec.Ports[0].NodePort = 30999
			},
			want: func(s *corev1.Service) {
				s.Spec.Type = corev1.ServiceTypeClusterIP
				s.Spec.Ports[0].NodePort = 30999
				s.Spec.ExternalTrafficPolicy = ""
			},
		},
		{
			name: "to ExternalName drops the IPs and families",
			old:  nodePortService(),
			update: func(s *corev1.Service) {
				s.Spec.Type = corev1.ServiceTypeExternalName
				s.Spec.ExternalName = "example.com"
			},
			want: func(s *corev1.Service) {
				s.Spec.Type = corev1.ServiceTypeExternalName
				s.Spec.ExternalName = "example.com"
				s.Spec.ClusterIP, s.Spec.ClusterIPs, s.Spec.IPFamilies, s.Spec.IPFamilyPolicy = "", nil, nil, nil
				s.Spec.Ports[0].NodePort, s.Spec.Ports[1].NodePort = 0, 0
				s.Spec.ExternalTrafficPolicy = ""
			},
		},
		{
			name: "an update without allocated values keeps them (node ports by name)",
			old:  localLoadBalancer(),
			update: func(s *corev1.Service) {
				s.Spec.ClusterIP, s.Spec.ClusterIPs, s.Spec.IPFamilies, s.Spec.IPFamilyPolicy = "", nil, nil, nil
				s.Spec.Ports = []corev1.ServicePort{{Name: "https", Port: 8443, Protocol: corev1.ProtocolTCP}, {Name: "http", Port: 80, Protocol: corev1.ProtocolTCP}}
				s.Spec.HealthCheckNodePort = 0
			},
			want: func(s *corev1.Service) {
				s.Spec.Ports = []corev1.ServicePort{{Name: "https", Port: 8443, Protocol: corev1.ProtocolTCP, NodePort: 30443}, {Name: "http", Port: 80, Protocol: corev1.ProtocolTCP, NodePort: 30080}}
			},
		},
		{
			name: "ClusterIP to NodePort keeps the clusterIP a manifest left out",
			old: func() *corev1.Service {
				s := nodePortService()
				s.Spec.Type = corev1.ServiceTypeClusterIP
				s.Spec.ExternalTrafficPolicy = ""
				s.Spec.Ports[0].NodePort, s.Spec.Ports[1].NodePort = 0, 0
				return s
			}(),
			update: func(s *corev1.Service) {
				s.Spec.Type = corev1.ServiceTypeNodePort
				s.Spec.ClusterIP, s.Spec.ClusterIPs = "", nil
			},
			want: func(s *corev1.Service) {
				s.Spec.Type = corev1.ServiceTypeNodePort
				s.Spec.Ports[0].NodePort, s.Spec.Ports[1].NodePort = 0, 0
				s.Spec.ExternalTrafficPolicy = ""
			},
		},
		{
			name: "LoadBalancer to NodePort drops what only load balancers use",
			old:  localLoadBalancer(),
			update: func(s *corev1.Service) {
				s.Spec.Type = corev1.ServiceTypeNodePort
			},
			want: func(s *corev1.Service) {
				s.Spec.Type = corev1.ServiceTypeNodePort
				s.Spec.HealthCheckNodePort = 0
				s.Spec.AllocateLoadBalancerNodePorts = nil
				s.Status.LoadBalancer = corev1.LoadBalancerStatus{}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.old.DeepCopy()
			tc.update(got)
			prepareServiceUpdate(got, tc.old)
			want := tc.old.DeepCopy()
			tc.want(want)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Fatalf("(-want +got)\n%s", diff)
			}
		})
	}
}
