package printers

import (
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	certificatesv1 "k8s.io/api/certificates/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func TestEndpointSliceRow(t *testing.T) {
	port := func(p int32) discoveryv1.EndpointPort { return discoveryv1.EndpointPort{Port: ptr(p)} }
	runRows(t, schema.GroupResource{Group: "discovery.k8s.io", Resource: "endpointslices"}, []rowCase{
		{
			name: "ports and endpoints",
			obj: &discoveryv1.EndpointSlice{
				ObjectMeta:  objMeta("web-x7k2p", time.Hour),
				AddressType: discoveryv1.AddressTypeIPv4,
				Ports:       []discoveryv1.EndpointPort{port(80), {Name: ptr("metrics")}, {}},
				Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"10.42.0.5"}}, {Addresses: []string{"10.42.0.6"}}},
			},
			want: []interface{}{"web-x7k2p", "IPv4", "80,metrics,*", "10.42.0.5,10.42.0.6", "60m"},
		},
		{
			name: "truncated",
			obj: &discoveryv1.EndpointSlice{
				ObjectMeta:  objMeta("big", time.Hour),
				AddressType: discoveryv1.AddressTypeIPv6,
				Ports:       []discoveryv1.EndpointPort{port(1), port(2), port(3), port(4)},
				Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"a", "b"}}, {Addresses: []string{"c", "d", "e"}}},
			},
			want: []interface{}{"big", "IPv6", "1,2,3 + 1 more...", "a,b,c + 2 more...", "60m"},
		},
		{
			name: "empty",
			obj:  &discoveryv1.EndpointSlice{ObjectMeta: objMeta("e", time.Hour), AddressType: discoveryv1.AddressTypeFQDN},
			want: []interface{}{"e", "FQDN", "<unset>", "<unset>", "60m"},
		},
	})
}

func TestLeaseRow(t *testing.T) {
	runRows(t, schema.GroupResource{Group: "coordination.k8s.io", Resource: "leases"}, []rowCase{
		{name: "held", obj: &coordinationv1.Lease{ObjectMeta: objMeta("node-1", time.Hour),
			Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr("node-1")}},
			want: []interface{}{"node-1", "node-1", "60m"}},
		{name: "free", obj: &coordinationv1.Lease{ObjectMeta: objMeta("free", time.Hour)},
			want: []interface{}{"free", "", "60m"}},
	})
}

func TestIngressRows(t *testing.T) {
	rule := func(host string) networkingv1.IngressRule { return networkingv1.IngressRule{Host: host} }
	runRows(t, schema.GroupResource{Group: "networking.k8s.io", Resource: "ingresses"}, []rowCase{
		{
			name: "tls with address",
			obj: &networkingv1.Ingress{
				ObjectMeta: objMeta("web", time.Hour),
				Spec: networkingv1.IngressSpec{IngressClassName: ptr("traefik"),
					Rules: []networkingv1.IngressRule{rule("a.example.com"), rule("b.example.com")},
					TLS:   []networkingv1.IngressTLS{{Hosts: []string{"a.example.com"}}}},
				Status: networkingv1.IngressStatus{LoadBalancer: networkingv1.IngressLoadBalancerStatus{
					Ingress: []networkingv1.IngressLoadBalancerIngress{{IP: "192.168.1.20"}, {IP: "192.168.1.10"}}}},
			},
			want: []interface{}{"web", "traefik", "a.example.com,b.example.com", "192.168.1.10,192.168.1.20", "80, 443", "60m"},
		},
		{
			name: "no class, no hosts",
			obj: &networkingv1.Ingress{ObjectMeta: objMeta("catchall", time.Hour),
				Spec: networkingv1.IngressSpec{Rules: []networkingv1.IngressRule{rule("")}}},
			want: []interface{}{"catchall", "<none>", "*", "", "80", "60m"},
		},
		{
			name: "many hosts",
			obj: &networkingv1.Ingress{ObjectMeta: objMeta("many", time.Hour),
				Spec: networkingv1.IngressSpec{Rules: []networkingv1.IngressRule{rule("a"), rule("b"), rule("c"), rule("d"), rule("e")}}},
			want: []interface{}{"many", "<none>", "a,b,c + 2 more...", "", "80", "60m"},
		},
	})
	runRows(t, schema.GroupResource{Group: "networking.k8s.io", Resource: "ingressclasses"}, []rowCase{
		{
			name: "with parameters",
			obj: &networkingv1.IngressClass{ObjectMeta: objMeta("traefik", time.Hour), Spec: networkingv1.IngressClassSpec{
				Controller: "traefik.io/ingress-controller",
				Parameters: &networkingv1.IngressClassParametersReference{APIGroup: ptr("k8s.example.com"), Kind: "IngressParameters", Name: "p"}}},
			want: []interface{}{"traefik", "traefik.io/ingress-controller", "IngressParameters.k8s.example.com/p", "60m"},
		},
		{
			name: "without parameters",
			obj: &networkingv1.IngressClass{ObjectMeta: objMeta("nginx", time.Hour),
				Spec: networkingv1.IngressClassSpec{Controller: "k8s.io/ingress-nginx"}},
			want: []interface{}{"nginx", "k8s.io/ingress-nginx", "<none>", "60m"},
		},
	})
	runRows(t, schema.GroupResource{Group: "networking.k8s.io", Resource: "networkpolicies"}, []rowCase{
		{name: "selects app", obj: &networkingv1.NetworkPolicy{ObjectMeta: objMeta("deny", time.Hour),
			Spec: networkingv1.NetworkPolicySpec{PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}}},
			want: []interface{}{"deny", "app=web", "60m"}},
		{name: "selects all", obj: &networkingv1.NetworkPolicy{ObjectMeta: objMeta("all", time.Hour)},
			want: []interface{}{"all", "<none>", "60m"}},
	})
}

func TestPolicyAndSchedulingRows(t *testing.T) {
	minOne, maxPct := intstr.FromInt32(1), intstr.FromString("25%")
	runRows(t, schema.GroupResource{Group: "policy", Resource: "poddisruptionbudgets"}, []rowCase{
		{name: "min available", obj: &policyv1.PodDisruptionBudget{ObjectMeta: objMeta("web", time.Hour),
			Spec: policyv1.PodDisruptionBudgetSpec{MinAvailable: &minOne}, Status: policyv1.PodDisruptionBudgetStatus{DisruptionsAllowed: 2}},
			want: []interface{}{"web", "1", "N/A", int64(2), "60m"}},
		{name: "max unavailable", obj: &policyv1.PodDisruptionBudget{ObjectMeta: objMeta("db", time.Hour),
			Spec: policyv1.PodDisruptionBudgetSpec{MaxUnavailable: &maxPct}},
			want: []interface{}{"db", "N/A", "25%", int64(0), "60m"}},
	})
	never := corev1.PreemptNever
	runRows(t, schema.GroupResource{Group: "scheduling.k8s.io", Resource: "priorityclasses"}, []rowCase{
		{name: "system", obj: &schedulingv1.PriorityClass{ObjectMeta: objMeta("system-node-critical", time.Hour), Value: 2000001000},
			want: []interface{}{"system-node-critical", int64(2000001000), false, "60m", ""}},
		{name: "default non-preempting", obj: &schedulingv1.PriorityClass{ObjectMeta: objMeta("low", time.Hour),
			Value: -5, GlobalDefault: true, PreemptionPolicy: &never},
			want: []interface{}{"low", int64(-5), true, "60m", "Never"}},
	})
}

func TestRBACRows(t *testing.T) {
	subjects := []rbacv1.Subject{
		{Kind: rbacv1.UserKind, Name: "alice"}, {Kind: rbacv1.UserKind, Name: "bob"},
		{Kind: rbacv1.GroupKind, Name: "system:masters"},
		{Kind: rbacv1.ServiceAccountKind, Namespace: "kube-system", Name: "coredns"},
	}
	runRows(t, schema.GroupResource{Group: "rbac.authorization.k8s.io", Resource: "rolebindings"}, []rowCase{
		{name: "all subject kinds", obj: &rbacv1.RoleBinding{ObjectMeta: objMeta("rb", time.Hour), Subjects: subjects,
			RoleRef: rbacv1.RoleRef{Kind: "Role", Name: "reader"}},
			want: []interface{}{"rb", "Role/reader", "60m", "alice, bob", "system:masters", "kube-system/coredns"}},
	})
	runRows(t, schema.GroupResource{Group: "rbac.authorization.k8s.io", Resource: "clusterrolebindings"}, []rowCase{
		{name: "no subjects", obj: &rbacv1.ClusterRoleBinding{ObjectMeta: objMeta("crb", time.Hour),
			RoleRef: rbacv1.RoleRef{Kind: "ClusterRole", Name: "cluster-admin"}},
			want: []interface{}{"crb", "ClusterRole/cluster-admin", "60m", "", "", ""}},
	})
	for _, res := range []string{"roles", "clusterroles"} {
		p, ok := For(schema.GroupResource{Group: "rbac.authorization.k8s.io", Resource: res})
		if !ok || len(p.Columns) != 2 || p.Columns[1].Name != "Created At" {
			t.Errorf("%s: want the default NAME, CREATED AT table", res)
		}
	}
}

func TestCSRRow(t *testing.T) {
	csr := func(status certificatesv1.CertificateSigningRequestStatus) *certificatesv1.CertificateSigningRequest {
		return &certificatesv1.CertificateSigningRequest{
			ObjectMeta: objMeta("node-csr-1", time.Minute),
			Spec: certificatesv1.CertificateSigningRequestSpec{SignerName: certificatesv1.KubeAPIServerClientKubeletSignerName,
				Username: "system:bootstrap:abcdef", ExpirationSeconds: ptr(int32(24 * 3600))},
			Status: status,
		}
	}
	condition := func(t certificatesv1.RequestConditionType) certificatesv1.CertificateSigningRequestCondition {
		return certificatesv1.CertificateSigningRequestCondition{Type: t, Status: corev1.ConditionTrue}
	}
	row := func(cond string) []interface{} {
		return []interface{}{"node-csr-1", "60s", "kubernetes.io/kube-apiserver-client-kubelet", "system:bootstrap:abcdef", "24h", cond}
	}
	runRows(t, schema.GroupResource{Group: "certificates.k8s.io", Resource: "certificatesigningrequests"}, []rowCase{
		{name: "pending", obj: csr(certificatesv1.CertificateSigningRequestStatus{}), want: row("Pending")},
		{name: "approved and issued", obj: csr(certificatesv1.CertificateSigningRequestStatus{
			Conditions: []certificatesv1.CertificateSigningRequestCondition{condition(certificatesv1.CertificateApproved)}, Certificate: []byte("x")}),
			want: row("Approved,Issued")},
		{name: "denied wins", obj: csr(certificatesv1.CertificateSigningRequestStatus{
			Conditions: []certificatesv1.CertificateSigningRequestCondition{condition(certificatesv1.CertificateApproved), condition(certificatesv1.CertificateDenied)}}),
			want: row("Denied")},
		{name: "approved but failed", obj: csr(certificatesv1.CertificateSigningRequestStatus{
			Conditions: []certificatesv1.CertificateSigningRequestCondition{condition(certificatesv1.CertificateApproved), condition(certificatesv1.CertificateFailed)}}),
			want: row("Approved,Failed")},
		{name: "no signer, no duration", obj: &certificatesv1.CertificateSigningRequest{ObjectMeta: objMeta("x", time.Minute)},
			want: []interface{}{"x", "60s", "<none>", "", "<none>", "Pending"}},
	})
}

func TestStorageClassRow(t *testing.T) {
	retain, wait := corev1.PersistentVolumeReclaimRetain, storagev1.VolumeBindingWaitForFirstConsumer
	def := &storagev1.StorageClass{ObjectMeta: objMeta("local-path", time.Hour), Provisioner: "rancher.io/local-path",
		ReclaimPolicy: &retain, VolumeBindingMode: &wait, AllowVolumeExpansion: ptr(true)}
	def.Annotations = map[string]string{"storageclass.kubernetes.io/is-default-class": "true"}
	beta := &storagev1.StorageClass{ObjectMeta: objMeta("beta", time.Hour), Provisioner: "x"}
	beta.Annotations = map[string]string{"storageclass.beta.kubernetes.io/is-default-class": "true"}
	runRows(t, schema.GroupResource{Group: "storage.k8s.io", Resource: "storageclasses"}, []rowCase{
		{name: "default", obj: def,
			want: []interface{}{"local-path (default)", "rancher.io/local-path", "Retain", "WaitForFirstConsumer", "true", "60m"}},
		{name: "beta default with defaults", obj: beta,
			want: []interface{}{"beta (default)", "x", "Delete", "Immediate", "false", "60m"}},
	})
}

func TestWebhookRows(t *testing.T) {
	runRows(t, schema.GroupResource{Group: "admissionregistration.k8s.io", Resource: "mutatingwebhookconfigurations"}, []rowCase{
		{name: "two webhooks", obj: &admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: objMeta("m", time.Hour),
			Webhooks: []admissionregistrationv1.MutatingWebhook{{Name: "a"}, {Name: "b"}}},
			want: []interface{}{"m", int64(2), "60m"}},
	})
	runRows(t, schema.GroupResource{Group: "admissionregistration.k8s.io", Resource: "validatingwebhookconfigurations"}, []rowCase{
		{name: "none", obj: &admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: objMeta("v", time.Hour)},
			want: []interface{}{"v", int64(0), "60m"}},
	})
}
