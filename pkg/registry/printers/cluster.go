package printers

import (
	"fmt"
	"strconv"
	"strings"
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
	"k8s.io/apimachinery/pkg/util/duration"
)

const (
	// maxListed is how many hosts, ports or addresses a list cell shows
	// before summarizing the rest as " + N more...".
	maxListed = 3

	// Annotations marking the default StorageClass (GA and beta).
	isDefaultStorageClassAnnotation     = "storageclass.kubernetes.io/is-default-class"
	betaIsDefaultStorageClassAnnotation = "storageclass.beta.kubernetes.io/is-default-class"
)

func endpointSlicePrinter() *Printer {
	doc := discoveryv1.EndpointSlice{}.SwaggerDoc()
	return &Printer{
		Columns: cols(
			nameColumn(),
			column("AddressType", "string", doc["addressType"]),
			column("Ports", "string", doc["ports"]),
			column("Endpoints", "string", doc["endpoints"]),
			ageColumn(),
		),
		Row: typed(func(s *discoveryv1.EndpointSlice, now time.Time) []interface{} {
			ports := make([]string, 0, len(s.Ports))
			for _, p := range s.Ports {
				switch {
				case p.Port != nil:
					ports = append(ports, strconv.Itoa(int(*p.Port)))
				case p.Name != nil:
					ports = append(ports, *p.Name)
				default:
					ports = append(ports, "*")
				}
			}
			var addresses []string
			for _, e := range s.Endpoints {
				addresses = append(addresses, e.Addresses...)
			}
			return []interface{}{
				s.Name, string(s.AddressType), listWithMore(ports, maxListed), listWithMore(addresses, maxListed),
				age(s.CreationTimestamp, now),
			}
		}),
	}
}

func leasePrinter() *Printer {
	return &Printer{
		Columns: cols(nameColumn(), column("Holder", "string", coordinationv1.LeaseSpec{}.SwaggerDoc()["holderIdentity"]), ageColumn()),
		Row: typed(func(l *coordinationv1.Lease, now time.Time) []interface{} {
			holder := ""
			if l.Spec.HolderIdentity != nil {
				holder = *l.Spec.HolderIdentity
			}
			return []interface{}{l.Name, holder, age(l.CreationTimestamp, now)}
		}),
	}
}

func ingressPrinter() *Printer {
	return &Printer{
		Columns: cols(
			nameColumn(),
			column("Class", "string", "The name of the IngressClass resource that should be used for additional configuration"),
			column("Hosts", "string", "Hosts that incoming requests are matched against before the ingress rule"),
			column("Address", "string", "Address is a list containing ingress points for the load-balancer"),
			column("Ports", "string", "Ports of TLS configurations that open"),
			ageColumn(),
		),
		Row: typed(func(ing *networkingv1.Ingress, now time.Time) []interface{} {
			class := "<none>"
			if ing.Spec.IngressClassName != nil {
				class = *ing.Spec.IngressClassName
			}
			ingress := make([]corev1.LoadBalancerIngress, len(ing.Status.LoadBalancer.Ingress))
			for i, in := range ing.Status.LoadBalancer.Ingress {
				ingress[i] = corev1.LoadBalancerIngress{IP: in.IP, Hostname: in.Hostname}
			}
			ports := "80"
			if len(ing.Spec.TLS) > 0 {
				ports = "80, 443"
			}
			return []interface{}{
				ing.Name, class, ingressHosts(ing.Spec.Rules), strings.Join(loadBalancerAddresses(ingress), ","),
				ports, age(ing.CreationTimestamp, now),
			}
		}),
	}
}

// ingressHosts lists the hosts of the first rules, "*" when none names one.
// As upstream, the " + N more..." count is over rules, not hosts.
func ingressHosts(rules []networkingv1.IngressRule) string {
	var list []string
	more := false
	for _, r := range rules {
		if len(list) == maxListed {
			more = true
			break
		}
		if r.Host != "" {
			list = append(list, r.Host)
		}
	}
	if len(list) == 0 {
		return "*"
	}
	if more {
		return fmt.Sprintf("%s + %d more...", strings.Join(list, ","), len(rules)-maxListed)
	}
	return strings.Join(list, ",")
}

func ingressClassPrinter() *Printer {
	return &Printer{
		Columns: cols(
			nameColumn(),
			column("Controller", "string", "Controller that is responsible for handling this class"),
			column("Parameters", "string", "A reference to a resource with additional parameters"),
			ageColumn(),
		),
		Row: typed(func(ic *networkingv1.IngressClass, now time.Time) []interface{} {
			params := "<none>"
			if p := ic.Spec.Parameters; p != nil {
				params = p.Kind
				if p.APIGroup != nil {
					params += "." + *p.APIGroup
				}
				params += "/" + p.Name
			}
			return []interface{}{ic.Name, ic.Spec.Controller, params, age(ic.CreationTimestamp, now)}
		}),
	}
}

func networkPolicyPrinter() *Printer {
	return &Printer{
		Columns: cols(
			nameColumn(),
			column("Pod-Selector", "string", networkingv1.NetworkPolicySpec{}.SwaggerDoc()["podSelector"]),
			ageColumn(),
		),
		Row: typed(func(np *networkingv1.NetworkPolicy, now time.Time) []interface{} {
			return []interface{}{np.Name, metav1.FormatLabelSelector(&np.Spec.PodSelector), age(np.CreationTimestamp, now)}
		}),
	}
}

func pdbPrinter() *Printer {
	return &Printer{
		Columns: cols(
			nameColumn(),
			column("Min Available", "string", "The minimum number of pods that must be available."),
			column("Max Unavailable", "string", "The maximum number of pods that may be unavailable."),
			column("Allowed Disruptions", "integer", "Calculated number of pods that may be disrupted at this time."),
			ageColumn(),
		),
		Row: typed(func(pdb *policyv1.PodDisruptionBudget, now time.Time) []interface{} {
			minAvailable, maxUnavailable := "N/A", "N/A"
			if pdb.Spec.MinAvailable != nil {
				minAvailable = pdb.Spec.MinAvailable.String()
			}
			if pdb.Spec.MaxUnavailable != nil {
				maxUnavailable = pdb.Spec.MaxUnavailable.String()
			}
			return []interface{}{pdb.Name, minAvailable, maxUnavailable, int64(pdb.Status.DisruptionsAllowed), age(pdb.CreationTimestamp, now)}
		}),
	}
}

func priorityClassPrinter() *Printer {
	doc := schedulingv1.PriorityClass{}.SwaggerDoc()
	return &Printer{
		Columns: cols(
			nameColumn(),
			column("Value", "integer", doc["value"]),
			column("Global-Default", "boolean", doc["globalDefault"]),
			ageColumn(),
			column("PreemptionPolicy", "string", doc["preemptionPolicy"]),
		),
		Row: typed(func(pc *schedulingv1.PriorityClass, now time.Time) []interface{} {
			policy := ""
			if pc.PreemptionPolicy != nil {
				policy = string(*pc.PreemptionPolicy)
			}
			return []interface{}{pc.Name, int64(pc.Value), pc.GlobalDefault, age(pc.CreationTimestamp, now), policy}
		}),
	}
}

// bindingColumns are the columns of role bindings and cluster role bindings;
// kind is "roleBinding" or "clusterRoleBinding" as in upstream's text.
func bindingColumns(kind, roleRefDoc string) []metav1.TableColumnDefinition {
	return cols(
		nameColumn(),
		column("Role", "string", roleRefDoc),
		ageColumn(),
		wide(column("Users", "string", "Users in the "+kind)),
		wide(column("Groups", "string", "Groups in the "+kind)),
		wide(column("ServiceAccounts", "string", "ServiceAccounts in the "+kind)),
	)
}

func roleBindingPrinter() *Printer {
	return &Printer{
		Columns: bindingColumns("roleBinding", rbacv1.RoleBinding{}.SwaggerDoc()["roleRef"]),
		Row: typed(func(rb *rbacv1.RoleBinding, now time.Time) []interface{} {
			return bindingCells(rb.Name, rb.RoleRef, rb.Subjects, age(rb.CreationTimestamp, now))
		}),
	}
}

func clusterRoleBindingPrinter() *Printer {
	return &Printer{
		Columns: bindingColumns("clusterRoleBinding", rbacv1.ClusterRoleBinding{}.SwaggerDoc()["roleRef"]),
		Row: typed(func(crb *rbacv1.ClusterRoleBinding, now time.Time) []interface{} {
			return bindingCells(crb.Name, crb.RoleRef, crb.Subjects, age(crb.CreationTimestamp, now))
		}),
	}
}

// bindingCells renders "Kind/name" for the role and the subjects split by
// kind, service accounts as "namespace/name".
func bindingCells(name string, ref rbacv1.RoleRef, subjects []rbacv1.Subject, age string) []interface{} {
	var users, groups, sas []string
	for _, s := range subjects {
		switch s.Kind {
		case rbacv1.ServiceAccountKind:
			sas = append(sas, s.Namespace+"/"+s.Name)
		case rbacv1.UserKind:
			users = append(users, s.Name)
		case rbacv1.GroupKind:
			groups = append(groups, s.Name)
		}
	}
	return []interface{}{
		name, ref.Kind + "/" + ref.Name, age,
		strings.Join(users, ", "), strings.Join(groups, ", "), strings.Join(sas, ", "),
	}
}

func csrPrinter() *Printer {
	spec := certificatesv1.CertificateSigningRequestSpec{}.SwaggerDoc()
	return &Printer{
		Columns: cols(
			nameColumn(),
			ageColumn(),
			column("SignerName", "string", spec["signerName"]),
			column("Requestor", "string", spec["request"]),
			column("RequestedDuration", "string", spec["expirationSeconds"]),
			column("Condition", "string", certificatesv1.CertificateSigningRequestStatus{}.SwaggerDoc()["conditions"]),
		),
		Row: typed(func(csr *certificatesv1.CertificateSigningRequest, now time.Time) []interface{} {
			signer := "<none>"
			if csr.Spec.SignerName != "" {
				signer = csr.Spec.SignerName
			}
			requested := "<none>"
			if csr.Spec.ExpirationSeconds != nil {
				requested = duration.HumanDuration(time.Duration(*csr.Spec.ExpirationSeconds) * time.Second)
			}
			return []interface{}{csr.Name, age(csr.CreationTimestamp, now), signer, csr.Spec.Username, requested, csrCondition(csr)}
		}),
	}
}

// csrCondition is "Denied", "Approved" or "Pending" (in that precedence),
// then ",Failed" and ",Issued" when they apply.
func csrCondition(csr *certificatesv1.CertificateSigningRequest) string {
	var approved, denied, failed bool
	for _, c := range csr.Status.Conditions {
		switch c.Type {
		case certificatesv1.CertificateApproved:
			approved = true
		case certificatesv1.CertificateDenied:
			denied = true
		case certificatesv1.CertificateFailed:
			failed = true
		}
	}
	status := "Pending"
	switch {
	case denied:
		status = "Denied"
	case approved:
		status = "Approved"
	}
	if failed {
		status += ",Failed"
	}
	if len(csr.Status.Certificate) > 0 {
		status += ",Issued"
	}
	return status
}

func storageClassPrinter() *Printer {
	doc := storagev1.StorageClass{}.SwaggerDoc()
	return &Printer{
		Columns: cols(
			nameColumn(),
			column("Provisioner", "string", doc["provisioner"]),
			column("ReclaimPolicy", "string", doc["reclaimPolicy"]),
			column("VolumeBindingMode", "string", doc["volumeBindingMode"]),
			column("AllowVolumeExpansion", "string", doc["allowVolumeExpansion"]),
			ageColumn(),
		),
		Row: typed(func(sc *storagev1.StorageClass, now time.Time) []interface{} {
			name := sc.Name
			if sc.Annotations[isDefaultStorageClassAnnotation] == "true" || sc.Annotations[betaIsDefaultStorageClassAnnotation] == "true" {
				name += " (default)"
			}
			reclaim := string(corev1.PersistentVolumeReclaimDelete)
			if sc.ReclaimPolicy != nil {
				reclaim = string(*sc.ReclaimPolicy)
			}
			binding := string(storagev1.VolumeBindingImmediate)
			if sc.VolumeBindingMode != nil {
				binding = string(*sc.VolumeBindingMode)
			}
			expand := sc.AllowVolumeExpansion != nil && *sc.AllowVolumeExpansion
			// Upstream puts a bool in this "string" column; kubectl prints it
			// as "false"/"true", so the string form reads the same and keeps
			// the cell's type in line with its column.
			return []interface{}{name, sc.Provisioner, reclaim, binding, strconv.FormatBool(expand), age(sc.CreationTimestamp, now)}
		}),
	}
}

// webhookColumns are the columns of both webhook configuration kinds.
func webhookColumns() []metav1.TableColumnDefinition {
	return cols(
		nameColumn(),
		column("Webhooks", "integer", "Webhooks indicates the number of webhooks registered in this configuration"),
		ageColumn(),
	)
}

func mutatingWebhookPrinter() *Printer {
	return &Printer{
		Columns: webhookColumns(),
		Row: typed(func(c *admissionregistrationv1.MutatingWebhookConfiguration, now time.Time) []interface{} {
			return []interface{}{c.Name, int64(len(c.Webhooks)), age(c.CreationTimestamp, now)}
		}),
	}
}

func validatingWebhookPrinter() *Printer {
	return &Printer{
		Columns: webhookColumns(),
		Row: typed(func(c *admissionregistrationv1.ValidatingWebhookConfiguration, now time.Time) []interface{} {
			return []interface{}{c.Name, int64(len(c.Webhooks)), age(c.CreationTimestamp, now)}
		}),
	}
}
