package validation

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	certificatesv1 "k8s.io/api/certificates/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	eventsv1 "k8s.io/api/events/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	storagev1 "k8s.io/api/storage/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/api/validation/path"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// --- HorizontalPodAutoscaler ---

func validateHPAV2(h *autoscalingv2.HorizontalPodAutoscaler) field.ErrorList {
	errs := objectMeta(&h.ObjectMeta, true, apivalidation.NameIsDNSSubdomain)
	return append(errs, hpaV2Spec(&h.Spec, field.NewPath("spec"))...)
}

func validateHPAV1(h *autoscalingv1.HorizontalPodAutoscaler) field.ErrorList {
	errs := objectMeta(&h.ObjectMeta, true, apivalidation.NameIsDNSSubdomain)
	return append(errs, hpaV1Spec(&h.Spec, field.NewPath("spec"))...)
}

func scaleTargetRef(kind, name, apiVersion string, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	if kind == "" {
		errs = append(errs, field.Required(fldPath.Child("kind"), ""))
	} else {
		for _, msg := range path.IsValidPathSegmentName(kind) {
			errs = append(errs, field.Invalid(fldPath.Child("kind"), kind, msg))
		}
	}
	if name == "" {
		errs = append(errs, field.Required(fldPath.Child("name"), ""))
	} else {
		for _, msg := range path.IsValidPathSegmentName(name) {
			errs = append(errs, field.Invalid(fldPath.Child("name"), name, msg))
		}
	}
	if _, err := schema.ParseGroupVersion(apiVersion); err != nil {
		errs = append(errs, field.Invalid(fldPath.Child("apiVersion"), apiVersion, err.Error()))
	}
	return errs
}

func replicaRange(minReplicas *int32, maxReplicas int32, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	if minReplicas != nil && *minReplicas < 1 {
		errs = append(errs, field.Invalid(fldPath.Child("minReplicas"), *minReplicas, "must be greater than or equal to 1"))
	}
	if maxReplicas < 1 {
		errs = append(errs, field.Invalid(fldPath.Child("maxReplicas"), maxReplicas, "must be greater than 0"))
	}
	if minReplicas != nil && maxReplicas < *minReplicas {
		errs = append(errs, field.Invalid(fldPath.Child("maxReplicas"), maxReplicas, "must be greater than or equal to `minReplicas`"))
	}
	return errs
}

func hpaV1Spec(s *autoscalingv1.HorizontalPodAutoscalerSpec, fldPath *field.Path) field.ErrorList {
	errs := scaleTargetRef(s.ScaleTargetRef.Kind, s.ScaleTargetRef.Name, s.ScaleTargetRef.APIVersion, fldPath.Child("scaleTargetRef"))
	errs = append(errs, replicaRange(s.MinReplicas, s.MaxReplicas, fldPath)...)
	if t := s.TargetCPUUtilizationPercentage; t != nil && *t < 1 {
		errs = append(errs, field.Invalid(fldPath.Child("targetCPUUtilizationPercentage"), *t, "must be greater than 0"))
	}
	return errs
}

var metricSourceTypes = []autoscalingv2.MetricSourceType{autoscalingv2.ContainerResourceMetricSourceType,
	autoscalingv2.ExternalMetricSourceType, autoscalingv2.ObjectMetricSourceType, autoscalingv2.PodsMetricSourceType,
	autoscalingv2.ResourceMetricSourceType}

func hpaV2Spec(s *autoscalingv2.HorizontalPodAutoscalerSpec, fldPath *field.Path) field.ErrorList {
	errs := scaleTargetRef(s.ScaleTargetRef.Kind, s.ScaleTargetRef.Name, s.ScaleTargetRef.APIVersion, fldPath.Child("scaleTargetRef"))
	errs = append(errs, replicaRange(s.MinReplicas, s.MaxReplicas, fldPath)...)
	for i, m := range s.Metrics {
		idx := fldPath.Child("metrics").Index(i)
		var set bool
		var target *autoscalingv2.MetricTarget
		var src string
		switch m.Type {
		case autoscalingv2.ResourceMetricSourceType:
			src, set = "resource", m.Resource != nil
			if set {
				target = &m.Resource.Target
				if m.Resource.Name == "" {
					errs = append(errs, field.Required(idx.Child("resource", "name"), "must specify a resource name"))
				}
			}
		case autoscalingv2.ContainerResourceMetricSourceType:
			src, set = "containerResource", m.ContainerResource != nil
			if set {
				target = &m.ContainerResource.Target
				if m.ContainerResource.Container == "" {
					errs = append(errs, field.Required(idx.Child("containerResource", "container"), "must specify a container"))
				}
			}
		case autoscalingv2.PodsMetricSourceType:
			src, set = "pods", m.Pods != nil
			if set {
				target = &m.Pods.Target
			}
		case autoscalingv2.ObjectMetricSourceType:
			src, set = "object", m.Object != nil
			if set {
				target = &m.Object.Target
			}
		case autoscalingv2.ExternalMetricSourceType:
			src, set = "external", m.External != nil
			if set {
				target = &m.External.Target
			}
		case "":
			errs = append(errs, field.Required(idx.Child("type"), "must specify a metric source type"))
			continue
		default:
			errs = append(errs, field.NotSupported(idx.Child("type"), m.Type, metricSourceTypes))
			continue
		}
		if !set {
			errs = append(errs, field.Required(idx.Child(src), "must populate information for the given metric source"))
			continue
		}
		errs = append(errs, metricTarget(target, idx.Child(src, "target"))...)
	}
	if b := s.Behavior; b != nil {
		errs = append(errs, scalingRules(b.ScaleUp, fldPath.Child("behavior", "scaleUp"))...)
		errs = append(errs, scalingRules(b.ScaleDown, fldPath.Child("behavior", "scaleDown"))...)
	}
	return errs
}

func metricTarget(t *autoscalingv2.MetricTarget, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	switch t.Type {
	case autoscalingv2.UtilizationMetricType, autoscalingv2.ValueMetricType, autoscalingv2.AverageValueMetricType:
	case "":
		errs = append(errs, field.Required(fldPath.Child("type"), "must specify a metric target type"))
	default:
		errs = append(errs, field.NotSupported(fldPath.Child("type"), t.Type, []autoscalingv2.MetricTargetType{
			autoscalingv2.UtilizationMetricType, autoscalingv2.ValueMetricType, autoscalingv2.AverageValueMetricType}))
	}
	if t.Value == nil && t.AverageValue == nil && t.AverageUtilization == nil {
		errs = append(errs, field.Required(fldPath, "must set either a target value, average value, or average utilization"))
	}
	if t.AverageUtilization != nil && *t.AverageUtilization < 1 {
		errs = append(errs, field.Invalid(fldPath.Child("averageUtilization"), *t.AverageUtilization, "must be greater than 0"))
	}
	if t.Value != nil && t.Value.Sign() <= 0 {
		errs = append(errs, field.Invalid(fldPath.Child("value"), t.Value.String(), "must be positive"))
	}
	if t.AverageValue != nil && t.AverageValue.Sign() <= 0 {
		errs = append(errs, field.Invalid(fldPath.Child("averageValue"), t.AverageValue.String(), "must be positive"))
	}
	return errs
}

func scalingRules(r *autoscalingv2.HPAScalingRules, fldPath *field.Path) field.ErrorList {
	if r == nil {
		return nil
	}
	var errs field.ErrorList
	if w := r.StabilizationWindowSeconds; w != nil && (*w < 0 || *w > 3600) {
		errs = append(errs, field.Invalid(fldPath.Child("stabilizationWindowSeconds"), *w, "must be less than or equal to 3600"))
	}
	if p := r.SelectPolicy; p != nil {
		switch *p {
		case autoscalingv2.MaxChangePolicySelect, autoscalingv2.MinChangePolicySelect, autoscalingv2.DisabledPolicySelect:
		default:
			errs = append(errs, field.NotSupported(fldPath.Child("selectPolicy"), *p, []autoscalingv2.ScalingPolicySelect{
				autoscalingv2.MaxChangePolicySelect, autoscalingv2.MinChangePolicySelect, autoscalingv2.DisabledPolicySelect}))
		}
	}
	for i, p := range r.Policies {
		idx := fldPath.Child("policies").Index(i)
		if p.Type != autoscalingv2.PodsScalingPolicy && p.Type != autoscalingv2.PercentScalingPolicy {
			errs = append(errs, field.NotSupported(idx.Child("type"), p.Type, []autoscalingv2.HPAScalingPolicyType{
				autoscalingv2.PodsScalingPolicy, autoscalingv2.PercentScalingPolicy}))
		}
		if p.Value <= 0 {
			errs = append(errs, field.Invalid(idx.Child("value"), p.Value, "must be greater than zero"))
		}
		if p.PeriodSeconds <= 0 || p.PeriodSeconds > 1800 {
			errs = append(errs, field.Invalid(idx.Child("periodSeconds"), p.PeriodSeconds, "must be greater than zero and less than or equal to 1800"))
		}
	}
	return errs
}

// --- PodDisruptionBudget ---

func validatePDB(p *policyv1.PodDisruptionBudget) field.ErrorList {
	errs := objectMeta(&p.ObjectMeta, true, apivalidation.NameIsDNSSubdomain)
	return append(errs, pdbSpec(&p.Spec, field.NewPath("spec"))...)
}

func pdbSpec(s *policyv1.PodDisruptionBudgetSpec, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	if s.MinAvailable != nil && s.MaxUnavailable != nil {
		errs = append(errs, field.Invalid(fldPath.Child("minAvailable"), s.MinAvailable, "minAvailable and maxUnavailable cannot be both set"))
	}
	errs = append(errs, intOrPercent(s.MinAvailable, fldPath.Child("minAvailable"))...)
	errs = append(errs, intOrPercent(s.MaxUnavailable, fldPath.Child("maxUnavailable"))...)
	errs = append(errs, metav1validation.ValidateLabelSelector(s.Selector, metav1validation.LabelSelectorValidationOptions{}, fldPath.Child("selector"))...)
	if p := s.UnhealthyPodEvictionPolicy; p != nil && *p != policyv1.IfHealthyBudget && *p != policyv1.AlwaysAllow {
		errs = append(errs, field.NotSupported(fldPath.Child("unhealthyPodEvictionPolicy"), *p,
			[]policyv1.UnhealthyPodEvictionPolicyType{policyv1.IfHealthyBudget, policyv1.AlwaysAllow}))
	}
	return errs
}

// --- Networking ---

func validateIngress(ing *networkingv1.Ingress) field.ErrorList {
	errs := objectMeta(&ing.ObjectMeta, true, apivalidation.NameIsDNSSubdomain)
	return append(errs, ingressSpec(&ing.Spec, field.NewPath("spec"))...)
}

var pathTypes = []networkingv1.PathType{networkingv1.PathTypeExact, networkingv1.PathTypePrefix, networkingv1.PathTypeImplementationSpecific}

func ingressSpec(s *networkingv1.IngressSpec, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	if len(s.Rules) == 0 && s.DefaultBackend == nil {
		errs = append(errs, field.Invalid(fldPath, s.Rules, "either `defaultBackend` or `rules` must be specified"))
	}
	if s.DefaultBackend != nil {
		errs = append(errs, ingressBackend(s.DefaultBackend, fldPath.Child("defaultBackend"))...)
	}
	if s.IngressClassName != nil {
		for _, msg := range validation.IsDNS1123Subdomain(*s.IngressClassName) {
			errs = append(errs, field.Invalid(fldPath.Child("ingressClassName"), *s.IngressClassName, msg))
		}
	}
	for i, r := range s.Rules {
		idx := fldPath.Child("rules").Index(i)
		if r.Host != "" {
			errs = append(errs, ingressHost(r.Host, idx.Child("host"))...)
		}
		if r.HTTP == nil {
			continue
		}
		hp := idx.Child("http", "paths")
		if len(r.HTTP.Paths) == 0 {
			errs = append(errs, field.Required(hp, ""))
		}
		for j, p := range r.HTTP.Paths {
			pp := hp.Index(j)
			switch {
			case p.PathType == nil:
				errs = append(errs, field.Required(pp.Child("pathType"), "pathType must be specified"))
			case *p.PathType == networkingv1.PathTypeExact || *p.PathType == networkingv1.PathTypePrefix:
				if !strings.HasPrefix(p.Path, "/") {
					errs = append(errs, field.Invalid(pp.Child("path"), p.Path, "must be an absolute path"))
				}
			case *p.PathType == networkingv1.PathTypeImplementationSpecific:
				if p.Path != "" && !strings.HasPrefix(p.Path, "/") {
					errs = append(errs, field.Invalid(pp.Child("path"), p.Path, "must be an absolute path"))
				}
			default:
				errs = append(errs, field.NotSupported(pp.Child("pathType"), *p.PathType, pathTypes))
			}
			errs = append(errs, ingressBackend(&p.Backend, pp.Child("backend"))...)
		}
	}
	for i, t := range s.TLS {
		for j, h := range t.Hosts {
			errs = append(errs, ingressHost(h, fldPath.Child("tls").Index(i).Child("hosts").Index(j))...)
		}
	}
	return errs
}

func ingressHost(h string, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	if net.ParseIP(h) != nil {
		return append(errs, field.Invalid(fldPath, h, "must be a DNS name, not an IP address"))
	}
	msgs := validation.IsDNS1123Subdomain(h)
	if strings.Contains(h, "*") {
		msgs = validation.IsWildcardDNS1123Subdomain(h)
	}
	for _, msg := range msgs {
		errs = append(errs, field.Invalid(fldPath, h, msg))
	}
	return errs
}

func ingressBackend(b *networkingv1.IngressBackend, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	switch {
	case b.Service != nil && b.Resource != nil:
		errs = append(errs, field.Invalid(fldPath, "", "cannot set both resource and service backends"))
	case b.Service != nil:
		sp := fldPath.Child("service")
		if b.Service.Name == "" {
			errs = append(errs, field.Required(sp.Child("name"), ""))
		} else {
			for _, msg := range validation.IsDNS1035Label(b.Service.Name) {
				errs = append(errs, field.Invalid(sp.Child("name"), b.Service.Name, msg))
			}
		}
		port := b.Service.Port
		switch {
		case port.Name != "" && port.Number != 0:
			errs = append(errs, field.Invalid(sp.Child("port"), port, "cannot set both port name & port number"))
		case port.Name != "":
			for _, msg := range validation.IsValidPortName(port.Name) {
				errs = append(errs, field.Invalid(sp.Child("port", "name"), port.Name, msg))
			}
		case port.Number != 0:
			errs = append(errs, portNum(port.Number, sp.Child("port", "number"))...)
		default:
			errs = append(errs, field.Required(sp.Child("port"), "port name or number is required"))
		}
	case b.Resource != nil:
		if b.Resource.Kind == "" {
			errs = append(errs, field.Required(fldPath.Child("resource", "kind"), ""))
		}
		if b.Resource.Name == "" {
			errs = append(errs, field.Required(fldPath.Child("resource", "name"), ""))
		}
	default:
		errs = append(errs, field.Invalid(fldPath, "", "resource or service backend is required"))
	}
	return errs
}

func validateIngressClass(c *networkingv1.IngressClass) field.ErrorList {
	errs := objectMeta(&c.ObjectMeta, false, apivalidation.NameIsDNSSubdomain)
	return append(errs, ingressClassSpec(&c.Spec, field.NewPath("spec"))...)
}

// maxIngressClassControllerLen is upstream's limit on spec.controller.
const maxIngressClassControllerLen = 250

func ingressClassSpec(s *networkingv1.IngressClassSpec, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	cp := fldPath.Child("controller")
	switch {
	case s.Controller == "":
		errs = append(errs, field.Required(cp, ""))
	case len(s.Controller) > maxIngressClassControllerLen:
		errs = append(errs, field.TooLong(cp, "", maxIngressClassControllerLen))
	default:
		errs = append(errs, validation.IsDomainPrefixedPath(cp, s.Controller)...)
	}
	if p := s.Parameters; p != nil {
		pp := fldPath.Child("parameters")
		if p.Kind == "" {
			errs = append(errs, field.Required(pp.Child("kind"), "kind is required"))
		}
		if p.Name == "" {
			errs = append(errs, field.Required(pp.Child("name"), "name is required"))
		}
	}
	return errs
}

func validateIngressClassUpdate(c, old *networkingv1.IngressClass) field.ErrorList {
	errs := metaUpdate(&c.ObjectMeta, &old.ObjectMeta)
	errs = append(errs, ingressClassSpec(&c.Spec, field.NewPath("spec"))...)
	return append(errs, apivalidation.ValidateImmutableField(c.Spec.Controller, old.Spec.Controller, field.NewPath("spec", "controller"))...)
}

func validateNetworkPolicy(np *networkingv1.NetworkPolicy) field.ErrorList {
	errs := objectMeta(&np.ObjectMeta, true, apivalidation.NameIsDNSSubdomain)
	return append(errs, networkPolicySpec(&np.Spec, field.NewPath("spec"))...)
}

func networkPolicySpec(s *networkingv1.NetworkPolicySpec, fldPath *field.Path) field.ErrorList {
	opts := metav1validation.LabelSelectorValidationOptions{}
	errs := metav1validation.ValidateLabelSelector(&s.PodSelector, opts, fldPath.Child("podSelector"))
	for i, r := range s.Ingress {
		idx := fldPath.Child("ingress").Index(i)
		errs = append(errs, networkPolicyPorts(r.Ports, idx.Child("ports"))...)
		for j, p := range r.From {
			errs = append(errs, networkPolicyPeer(&p, idx.Child("from").Index(j))...)
		}
	}
	for i, r := range s.Egress {
		idx := fldPath.Child("egress").Index(i)
		errs = append(errs, networkPolicyPorts(r.Ports, idx.Child("ports"))...)
		for j, p := range r.To {
			errs = append(errs, networkPolicyPeer(&p, idx.Child("to").Index(j))...)
		}
	}
	allowed := []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress}
	for i, t := range s.PolicyTypes {
		if t != networkingv1.PolicyTypeIngress && t != networkingv1.PolicyTypeEgress {
			errs = append(errs, field.NotSupported(fldPath.Child("policyTypes").Index(i), t, allowed))
		}
	}
	if len(s.PolicyTypes) > len(allowed) {
		errs = append(errs, field.Invalid(fldPath.Child("policyTypes"), s.PolicyTypes, "may not specify more than two policyTypes"))
	}
	return errs
}

func networkPolicyPorts(ps []networkingv1.NetworkPolicyPort, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i, p := range ps {
		idx := fldPath.Index(i)
		if p.Protocol != nil {
			errs = append(errs, protocol(*p.Protocol, idx.Child("protocol"))...)
		}
		if p.Port != nil {
			errs = append(errs, portNumOrName(*p.Port, idx.Child("port"))...)
		}
		if p.EndPort != nil {
			switch {
			case p.Port == nil:
				errs = append(errs, field.Required(idx.Child("port"), "must be specified when endPort is specified"))
			case p.Port.Type == intstr.String:
				errs = append(errs, field.Forbidden(idx.Child("endPort"), "may not be specified when `port` is non-numeric"))
			case *p.EndPort < p.Port.IntVal:
				errs = append(errs, field.Invalid(idx.Child("endPort"), *p.EndPort, "must be greater than or equal to `port`"))
			default:
				errs = append(errs, portNum(*p.EndPort, idx.Child("endPort"))...)
			}
		}
	}
	return errs
}

func networkPolicyPeer(p *networkingv1.NetworkPolicyPeer, fldPath *field.Path) field.ErrorList {
	opts := metav1validation.LabelSelectorValidationOptions{}
	var errs field.ErrorList
	n := 0
	if p.PodSelector != nil {
		n++
		errs = append(errs, metav1validation.ValidateLabelSelector(p.PodSelector, opts, fldPath.Child("podSelector"))...)
	}
	if p.NamespaceSelector != nil {
		n++
		errs = append(errs, metav1validation.ValidateLabelSelector(p.NamespaceSelector, opts, fldPath.Child("namespaceSelector"))...)
	}
	if p.IPBlock != nil {
		if n > 0 {
			return append(errs, field.Forbidden(fldPath, "may not specify both ipBlock and another peer"))
		}
		n++
		bp := fldPath.Child("ipBlock")
		if p.IPBlock.CIDR == "" {
			errs = append(errs, field.Required(bp.Child("cidr"), ""))
		} else {
			cidrErrs := validation.IsValidCIDR(bp.Child("cidr"), p.IPBlock.CIDR)
			errs = append(errs, cidrErrs...)
			_, outer, err := net.ParseCIDR(p.IPBlock.CIDR)
			for i, e := range p.IPBlock.Except {
				ep := bp.Child("except").Index(i)
				exErrs := validation.IsValidCIDR(ep, e)
				errs = append(errs, exErrs...)
				if len(cidrErrs) > 0 || len(exErrs) > 0 || err != nil {
					continue
				}
				_, inner, _ := net.ParseCIDR(e)
				oOnes, _ := outer.Mask.Size()
				iOnes, _ := inner.Mask.Size()
				if inner == nil || !outer.Contains(inner.IP) || iOnes <= oOnes {
					errs = append(errs, field.Invalid(ep, e, "must be a strict subset of `cidr`"))
				}
			}
		}
	}
	if n == 0 {
		errs = append(errs, field.Required(fldPath, "must specify a peer"))
	}
	return errs
}

// --- RBAC ---

// rbacName is upstream's ValidateRBACName: roles and bindings are named
// like path segments, so "system:controller:foo" is a valid name.
func rbacName(name string, prefix bool) []string { return path.IsValidPathSegmentName(name) }

func validateRole(r *rbacv1.Role) field.ErrorList {
	errs := objectMeta(&r.ObjectMeta, true, rbacName)
	return append(errs, policyRules(r.Rules, true, field.NewPath("rules"))...)
}

func validateClusterRole(r *rbacv1.ClusterRole) field.ErrorList {
	errs := objectMeta(&r.ObjectMeta, false, rbacName)
	return append(errs, clusterRoleBody(r)...)
}

func clusterRoleBody(r *rbacv1.ClusterRole) field.ErrorList {
	errs := policyRules(r.Rules, false, field.NewPath("rules"))
	if a := r.AggregationRule; a != nil {
		ap := field.NewPath("aggregationRule", "clusterRoleSelectors")
		if len(a.ClusterRoleSelectors) == 0 {
			errs = append(errs, field.Required(ap, "at least one clusterRoleSelector required if aggregationRule is non-nil"))
		}
		for i := range a.ClusterRoleSelectors {
			errs = append(errs, metav1validation.ValidateLabelSelector(&a.ClusterRoleSelectors[i], metav1validation.LabelSelectorValidationOptions{}, ap.Index(i))...)
		}
	}
	return errs
}

func policyRules(rules []rbacv1.PolicyRule, namespaced bool, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i, r := range rules {
		idx := fldPath.Index(i)
		if len(r.Verbs) == 0 {
			errs = append(errs, field.Required(idx.Child("verbs"), "verbs must contain at least one value"))
		}
		if len(r.NonResourceURLs) > 0 {
			if namespaced {
				errs = append(errs, field.Invalid(idx.Child("nonResourceURLs"), r.NonResourceURLs, "namespaced rules cannot apply to non-resource URLs"))
			}
			if len(r.APIGroups) > 0 || len(r.Resources) > 0 || len(r.ResourceNames) > 0 {
				errs = append(errs, field.Invalid(idx.Child("nonResourceURLs"), r.NonResourceURLs, "rules cannot apply to both regular resources and non-resource URLs"))
			}
			continue
		}
		if len(r.APIGroups) == 0 {
			errs = append(errs, field.Required(idx.Child("apiGroups"), "resource rules must supply at least one api group"))
		}
		if len(r.Resources) == 0 {
			errs = append(errs, field.Required(idx.Child("resources"), "resource rules must supply at least one resource"))
		}
	}
	return errs
}

func validateRoleBinding(b *rbacv1.RoleBinding) field.ErrorList {
	errs := objectMeta(&b.ObjectMeta, true, rbacName)
	return append(errs, bindingBody(&b.RoleRef, b.Subjects, true)...)
}

func validateClusterRoleBinding(b *rbacv1.ClusterRoleBinding) field.ErrorList {
	errs := objectMeta(&b.ObjectMeta, false, rbacName)
	return append(errs, bindingBody(&b.RoleRef, b.Subjects, false)...)
}

func bindingBody(ref *rbacv1.RoleRef, subjects []rbacv1.Subject, namespaced bool) field.ErrorList {
	var errs field.ErrorList
	rp := field.NewPath("roleRef")
	if ref.APIGroup != rbacv1.GroupName {
		errs = append(errs, field.NotSupported(rp.Child("apiGroup"), ref.APIGroup, []string{rbacv1.GroupName}))
	}
	kinds := []string{"ClusterRole"}
	if namespaced {
		kinds = []string{"Role", "ClusterRole"}
	}
	if ref.Kind != "ClusterRole" && !(namespaced && ref.Kind == "Role") {
		errs = append(errs, field.NotSupported(rp.Child("kind"), ref.Kind, kinds))
	}
	if ref.Name == "" {
		errs = append(errs, field.Required(rp.Child("name"), ""))
	} else {
		for _, msg := range rbacName(ref.Name, false) {
			errs = append(errs, field.Invalid(rp.Child("name"), ref.Name, msg))
		}
	}
	for i, s := range subjects {
		errs = append(errs, subject(s, namespaced, field.NewPath("subjects").Index(i))...)
	}
	return errs
}

func subject(s rbacv1.Subject, namespaced bool, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	if s.Name == "" {
		errs = append(errs, field.Required(fldPath.Child("name"), ""))
	}
	switch s.Kind {
	case rbacv1.ServiceAccountKind:
		if s.Name != "" {
			for _, msg := range apivalidation.ValidateServiceAccountName(s.Name, false) {
				errs = append(errs, field.Invalid(fldPath.Child("name"), s.Name, msg))
			}
		}
		if s.APIGroup != "" {
			errs = append(errs, field.NotSupported(fldPath.Child("apiGroup"), s.APIGroup, []string{""}))
		}
		if !namespaced && s.Namespace == "" {
			errs = append(errs, field.Required(fldPath.Child("namespace"), ""))
		}
	case rbacv1.UserKind, rbacv1.GroupKind:
		if s.APIGroup != rbacv1.GroupName {
			errs = append(errs, field.NotSupported(fldPath.Child("apiGroup"), s.APIGroup, []string{rbacv1.GroupName}))
		}
	default:
		errs = append(errs, field.NotSupported(fldPath.Child("kind"), s.Kind,
			[]string{rbacv1.ServiceAccountKind, rbacv1.UserKind, rbacv1.GroupKind}))
	}
	return errs
}

func validateRoleBindingUpdate(b, old *rbacv1.RoleBinding) field.ErrorList {
	errs := metaUpdate(&b.ObjectMeta, &old.ObjectMeta)
	errs = append(errs, bindingBody(&b.RoleRef, b.Subjects, true)...)
	return append(errs, roleRefUpdate(b.RoleRef, old.RoleRef)...)
}

func validateClusterRoleBindingUpdate(b, old *rbacv1.ClusterRoleBinding) field.ErrorList {
	errs := metaUpdate(&b.ObjectMeta, &old.ObjectMeta)
	errs = append(errs, bindingBody(&b.RoleRef, b.Subjects, false)...)
	return append(errs, roleRefUpdate(b.RoleRef, old.RoleRef)...)
}

// roleRefUpdate forbids re-pointing a binding: a binding's meaning is its
// role, so granting another role requires a new binding (and the escalation
// check that comes with creating it).
func roleRefUpdate(ref, old rbacv1.RoleRef) field.ErrorList {
	if ref != old {
		return field.ErrorList{field.Invalid(field.NewPath("roleRef"), ref, "cannot change roleRef")}
	}
	return nil
}

// --- StorageClass, PriorityClass, Lease ---

// maxProvisionerLength is upstream's limit on a StorageClass provisioner.
const maxProvisionerLength = 63

func validateStorageClass(sc *storagev1.StorageClass) field.ErrorList {
	errs := objectMeta(&sc.ObjectMeta, false, apivalidation.NameIsDNSSubdomain)
	return append(errs, storageClassBody(sc)...)
}

func storageClassBody(sc *storagev1.StorageClass) field.ErrorList {
	var errs field.ErrorList
	pp := field.NewPath("provisioner")
	if sc.Provisioner == "" {
		errs = append(errs, field.Required(pp, ""))
	} else {
		if len(sc.Provisioner) > maxProvisionerLength {
			errs = append(errs, field.TooLong(pp, "", maxProvisionerLength))
		}
		errs = append(errs, qualifiedName(strings.ToLower(sc.Provisioner), pp)...)
	}
	if p := sc.ReclaimPolicy; p != nil && *p != corev1.PersistentVolumeReclaimDelete && *p != corev1.PersistentVolumeReclaimRetain {
		errs = append(errs, field.NotSupported(field.NewPath("reclaimPolicy"), *p,
			[]corev1.PersistentVolumeReclaimPolicy{corev1.PersistentVolumeReclaimDelete, corev1.PersistentVolumeReclaimRetain}))
	}
	if m := sc.VolumeBindingMode; m == nil {
		errs = append(errs, field.Required(field.NewPath("volumeBindingMode"), ""))
	} else if *m != storagev1.VolumeBindingImmediate && *m != storagev1.VolumeBindingWaitForFirstConsumer {
		errs = append(errs, field.NotSupported(field.NewPath("volumeBindingMode"), *m,
			[]storagev1.VolumeBindingMode{storagev1.VolumeBindingImmediate, storagev1.VolumeBindingWaitForFirstConsumer}))
	}
	return errs
}

func validateStorageClassUpdate(sc, old *storagev1.StorageClass) field.ErrorList {
	errs := metaUpdate(&sc.ObjectMeta, &old.ObjectMeta)
	errs = append(errs, storageClassBody(sc)...)
	if !apiequality.Semantic.DeepEqual(sc.Parameters, old.Parameters) {
		errs = append(errs, field.Forbidden(field.NewPath("parameters"), "updates to parameters are forbidden."))
	}
	if sc.Provisioner != old.Provisioner {
		errs = append(errs, field.Forbidden(field.NewPath("provisioner"), "updates to provisioner are forbidden."))
	}
	if !apiequality.Semantic.DeepEqual(sc.ReclaimPolicy, old.ReclaimPolicy) {
		errs = append(errs, field.Forbidden(field.NewPath("reclaimPolicy"), "updates to reclaimPolicy are forbidden."))
	}
	return append(errs, apivalidation.ValidateImmutableField(sc.VolumeBindingMode, old.VolumeBindingMode, field.NewPath("volumeBindingMode"))...)
}

// Priority bounds, from upstream's scheduling API.
const (
	highestUserDefinablePriority = int32(1000000000)
	systemPriorityClassPrefix    = "system-"
)

// systemPriorityClasses are the reserved classes and their fixed values.
var systemPriorityClasses = map[string]int32{
	"system-cluster-critical": 2 * highestUserDefinablePriority,
	"system-node-critical":    2*highestUserDefinablePriority + 1000,
}

func validatePriorityClass(pc *schedulingv1.PriorityClass) field.ErrorList {
	errs := objectMeta(&pc.ObjectMeta, false, apivalidation.NameIsDNSSubdomain)
	if v, ok := systemPriorityClasses[pc.Name]; ok {
		if pc.Value != v {
			errs = append(errs, field.Forbidden(field.NewPath("value"),
				fmt.Sprintf("value of %v PriorityClass must be %v", pc.Name, v)))
		}
	} else if strings.HasPrefix(pc.Name, systemPriorityClassPrefix) {
		errs = append(errs, field.Forbidden(metaPath.Child("name"),
			"priority class names with '"+systemPriorityClassPrefix+"' prefix are reserved for system use only"))
	} else if pc.Value > highestUserDefinablePriority {
		errs = append(errs, field.Forbidden(field.NewPath("value"),
			fmt.Sprintf("maximum allowed value of a user defined priority is %v", highestUserDefinablePriority)))
	}
	return append(errs, preemptionPolicy(pc.PreemptionPolicy)...)
}

func preemptionPolicy(p *corev1.PreemptionPolicy) field.ErrorList {
	if p == nil || *p == corev1.PreemptLowerPriority || *p == corev1.PreemptNever {
		return nil
	}
	return field.ErrorList{field.NotSupported(field.NewPath("preemptionPolicy"), *p,
		[]corev1.PreemptionPolicy{corev1.PreemptLowerPriority, corev1.PreemptNever})}
}

func validatePriorityClassUpdate(pc, old *schedulingv1.PriorityClass) field.ErrorList {
	errs := metaUpdate(&pc.ObjectMeta, &old.ObjectMeta)
	// Pods copy the value at admission, so changing it would make them lie.
	if pc.Value != old.Value {
		errs = append(errs, field.Forbidden(field.NewPath("value"), "may not be changed in an update."))
	}
	errs = append(errs, preemptionPolicy(pc.PreemptionPolicy)...)
	return append(errs, apivalidation.ValidateImmutableField(pc.PreemptionPolicy, old.PreemptionPolicy, field.NewPath("preemptionPolicy"))...)
}

func validateLease(l *coordinationv1.Lease) field.ErrorList {
	errs := objectMeta(&l.ObjectMeta, true, apivalidation.NameIsDNSSubdomain)
	return append(errs, leaseSpec(&l.Spec, field.NewPath("spec"))...)
}

func leaseSpec(s *coordinationv1.LeaseSpec, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	if d := s.LeaseDurationSeconds; d != nil && *d <= 0 {
		errs = append(errs, field.Invalid(fldPath.Child("leaseDurationSeconds"), *d, "must be greater than 0"))
	}
	if t := s.LeaseTransitions; t != nil && *t < 0 {
		errs = append(errs, field.Invalid(fldPath.Child("leaseTransitions"), *t, "must be greater than or equal to 0"))
	}
	if s.Strategy != nil {
		if *s.Strategy != coordinationv1.OldestEmulationVersion {
			errs = append(errs, field.NotSupported(fldPath.Child("strategy"), *s.Strategy,
				[]coordinationv1.CoordinatedLeaseStrategy{coordinationv1.OldestEmulationVersion}))
		}
	}
	return errs
}

// --- EndpointSlice ---

// Upstream's EndpointSlice limits.
const (
	maxEndpointSliceEndpoints = 1000
	maxEndpointSlicePorts     = 100
	maxEndpointAddresses      = 100
)

var addressTypes = []discoveryv1.AddressType{discoveryv1.AddressTypeIPv4, discoveryv1.AddressTypeIPv6, discoveryv1.AddressTypeFQDN}

func validateEndpointSlice(es *discoveryv1.EndpointSlice) field.ErrorList {
	errs := objectMeta(&es.ObjectMeta, true, apivalidation.NameIsDNSSubdomain)
	return append(errs, endpointSliceBody(es)...)
}

func endpointSliceBody(es *discoveryv1.EndpointSlice) field.ErrorList {
	var errs field.ErrorList
	atPath := field.NewPath("addressType")
	switch es.AddressType {
	case discoveryv1.AddressTypeIPv4, discoveryv1.AddressTypeIPv6, discoveryv1.AddressTypeFQDN:
	case "":
		errs = append(errs, field.Required(atPath, ""))
	default:
		errs = append(errs, field.NotSupported(atPath, es.AddressType, addressTypes))
	}
	epPath := field.NewPath("endpoints")
	if len(es.Endpoints) > maxEndpointSliceEndpoints {
		errs = append(errs, field.TooMany(epPath, len(es.Endpoints), maxEndpointSliceEndpoints))
	}
	for i, ep := range es.Endpoints {
		idx := epPath.Index(i)
		ap := idx.Child("addresses")
		switch {
		case len(ep.Addresses) == 0:
			errs = append(errs, field.Required(ap, "must contain at least 1 address"))
		case len(ep.Addresses) > maxEndpointAddresses:
			errs = append(errs, field.TooMany(ap, len(ep.Addresses), maxEndpointAddresses))
		}
		for j, a := range ep.Addresses {
			p := ap.Index(j)
			switch es.AddressType {
			case discoveryv1.AddressTypeIPv4:
				if ip := net.ParseIP(a); ip == nil || ip.To4() == nil {
					errs = append(errs, field.Invalid(p, a, "must be an IPv4 address"))
				}
			case discoveryv1.AddressTypeIPv6:
				if ip := net.ParseIP(a); ip == nil || ip.To4() != nil {
					errs = append(errs, field.Invalid(p, a, "must be an IPv6 address"))
				}
			case discoveryv1.AddressTypeFQDN:
				for _, msg := range validation.IsDNS1123Subdomain(strings.TrimSuffix(a, ".")) {
					errs = append(errs, field.Invalid(p, a, msg))
				}
			}
		}
		if ep.Hostname != nil {
			for _, msg := range validation.IsDNS1123Label(*ep.Hostname) {
				errs = append(errs, field.Invalid(idx.Child("hostname"), *ep.Hostname, msg))
			}
		}
		if ep.NodeName != nil {
			for _, msg := range apivalidation.NameIsDNSSubdomain(*ep.NodeName, false) {
				errs = append(errs, field.Invalid(idx.Child("nodeName"), *ep.NodeName, msg))
			}
		}
	}
	ppath := field.NewPath("ports")
	if len(es.Ports) > maxEndpointSlicePorts {
		errs = append(errs, field.TooMany(ppath, len(es.Ports), maxEndpointSlicePorts))
	}
	names := sets.New[string]()
	for i, p := range es.Ports {
		idx := ppath.Index(i)
		if p.Name != nil && *p.Name != "" {
			for _, msg := range validation.IsDNS1123Label(*p.Name) {
				errs = append(errs, field.Invalid(idx.Child("name"), *p.Name, msg))
			}
		}
		name := ""
		if p.Name != nil {
			name = *p.Name
		}
		if names.Has(name) {
			errs = append(errs, field.Duplicate(idx.Child("name"), name))
		}
		names.Insert(name)
		if p.Protocol == nil {
			errs = append(errs, field.Required(idx.Child("protocol"), ""))
		} else {
			errs = append(errs, protocol(*p.Protocol, idx.Child("protocol"))...)
		}
		if p.Port != nil {
			errs = append(errs, portNum(*p.Port, idx.Child("port"))...)
		}
		if p.AppProtocol != nil {
			errs = append(errs, qualifiedName(*p.AppProtocol, idx.Child("appProtocol"))...)
		}
	}
	return errs
}

func validateEndpointSliceUpdate(es, old *discoveryv1.EndpointSlice) field.ErrorList {
	errs := metaUpdate(&es.ObjectMeta, &old.ObjectMeta)
	errs = append(errs, endpointSliceBody(es)...)
	return append(errs, apivalidation.ValidateImmutableField(es.AddressType, old.AddressType, field.NewPath("addressType"))...)
}

// --- events.k8s.io Event ---

// Upstream's events.k8s.io limits.
const (
	maxEventNoteLength    = 1024
	maxEventFieldLength   = 128
	maxEventReportingLen  = 128
	eventNoteLengthDetail = "can have at most 1024 characters"
)

func validateEventsEvent(e *eventsv1.Event) field.ErrorList {
	errs := objectMeta(&e.ObjectMeta, true, apivalidation.NameIsDNSSubdomain)
	return append(errs, eventsEventBody(e)...)
}

func eventsEventBody(e *eventsv1.Event) field.ErrorList {
	var errs field.ErrorList
	if e.EventTime.Time.IsZero() {
		errs = append(errs, field.Required(field.NewPath("eventTime"), ""))
	}
	if e.ReportingController == "" {
		errs = append(errs, field.Required(field.NewPath("reportingController"), ""))
	} else {
		errs = append(errs, qualifiedName(e.ReportingController, field.NewPath("reportingController"))...)
	}
	if e.ReportingInstance == "" {
		errs = append(errs, field.Required(field.NewPath("reportingInstance"), ""))
	} else if len(e.ReportingInstance) > maxEventReportingLen {
		errs = append(errs, field.Invalid(field.NewPath("reportingInstance"), "", fmt.Sprintf("can have at most %v characters", maxEventReportingLen)))
	}
	for name, v := range map[string]string{"action": e.Action, "reason": e.Reason} {
		if v == "" {
			errs = append(errs, field.Required(field.NewPath(name), ""))
		} else if len(v) > maxEventFieldLength {
			errs = append(errs, field.Invalid(field.NewPath(name), "", fmt.Sprintf("can have at most %v characters", maxEventFieldLength)))
		}
	}
	if len(e.Note) > maxEventNoteLength {
		errs = append(errs, field.Invalid(field.NewPath("note"), "", eventNoteLengthDetail))
	}
	if e.Type != corev1.EventTypeNormal && e.Type != corev1.EventTypeWarning {
		errs = append(errs, field.Invalid(field.NewPath("type"), "", fmt.Sprintf("has invalid value: %v", e.Type)))
	}
	return errs
}

// --- CertificateSigningRequest ---

var keyUsages = sets.New(certificatesv1.UsageSigning, certificatesv1.UsageDigitalSignature, certificatesv1.UsageContentCommitment,
	certificatesv1.UsageKeyEncipherment, certificatesv1.UsageKeyAgreement, certificatesv1.UsageDataEncipherment,
	certificatesv1.UsageCertSign, certificatesv1.UsageCRLSign, certificatesv1.UsageEncipherOnly, certificatesv1.UsageDecipherOnly,
	certificatesv1.UsageAny, certificatesv1.UsageServerAuth, certificatesv1.UsageClientAuth, certificatesv1.UsageCodeSigning,
	certificatesv1.UsageEmailProtection, certificatesv1.UsageSMIME, certificatesv1.UsageIPsecEndSystem,
	certificatesv1.UsageIPsecTunnel, certificatesv1.UsageIPsecUser, certificatesv1.UsageTimestamping,
	certificatesv1.UsageOCSPSigning, certificatesv1.UsageMicrosoftSGC, certificatesv1.UsageNetscapeSGC)

// minCSRExpirationSeconds is ten minutes, upstream's shortest certificate.
const minCSRExpirationSeconds = 600

func validateCSR(c *certificatesv1.CertificateSigningRequest) field.ErrorList {
	errs := objectMeta(&c.ObjectMeta, false, apivalidation.NameIsDNSSubdomain)
	return append(errs, csrBody(c)...)
}

func csrBody(c *certificatesv1.CertificateSigningRequest) field.ErrorList {
	var errs field.ErrorList
	sp := field.NewPath("spec")
	if err := parseCSR(c.Spec.Request); err != nil {
		errs = append(errs, field.Invalid(sp.Child("request"), c.Spec.Request, err.Error()))
	}
	if c.Spec.SignerName == "" {
		errs = append(errs, field.Required(sp.Child("signerName"), ""))
	} else {
		errs = append(errs, signerName(c.Spec.SignerName, sp.Child("signerName"))...)
	}
	if len(c.Spec.Usages) == 0 {
		errs = append(errs, field.Required(sp.Child("usages"), ""))
	}
	seen := sets.New[certificatesv1.KeyUsage]()
	for i, u := range c.Spec.Usages {
		if !keyUsages.Has(u) {
			errs = append(errs, field.NotSupported(sp.Child("usages").Index(i), u, sets.List(keyUsages)))
		}
		if seen.Has(u) {
			errs = append(errs, field.Duplicate(sp.Child("usages").Index(i), u))
		}
		seen.Insert(u)
	}
	if e := c.Spec.ExpirationSeconds; e != nil && *e < minCSRExpirationSeconds {
		errs = append(errs, field.Invalid(sp.Child("expirationSeconds"), *e, "may not specify a duration less than 600 seconds (10 minutes)"))
	}
	return append(errs, csrConditions(c.Status.Conditions, field.NewPath("status", "conditions"))...)
}

func parseCSR(b []byte) error {
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "CERTIFICATE REQUEST" {
		return fmt.Errorf("PEM block type must be CERTIFICATE REQUEST")
	}
	_, err := x509.ParseCertificateRequest(block.Bytes)
	return err
}

// signerName validates "<domain>/<path>", e.g. kubernetes.io/kubelet-serving.
func signerName(s string, fldPath *field.Path) field.ErrorList {
	parts := strings.SplitN(s, "/", 2)
	if len(parts) != 2 || parts[1] == "" {
		return field.ErrorList{field.Invalid(fldPath, s, "must be a fully qualified domain and path of the form 'example.com/signer-name'")}
	}
	var errs field.ErrorList
	for _, msg := range validation.IsDNS1123Subdomain(parts[0]) {
		errs = append(errs, field.Invalid(fldPath, s, "validating domain component: "+msg))
	}
	return errs
}

func csrConditions(cs []certificatesv1.CertificateSigningRequestCondition, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	seen := sets.New[certificatesv1.RequestConditionType]()
	for i, c := range cs {
		idx := fldPath.Index(i)
		if c.Type == "" {
			errs = append(errs, field.Required(idx.Child("type"), ""))
		}
		switch c.Status {
		case corev1.ConditionTrue, corev1.ConditionFalse, corev1.ConditionUnknown:
		case "":
			errs = append(errs, field.Required(idx.Child("status"), ""))
		default:
			errs = append(errs, field.NotSupported(idx.Child("status"), c.Status,
				[]corev1.ConditionStatus{corev1.ConditionTrue, corev1.ConditionFalse, corev1.ConditionUnknown}))
		}
		// Approved, Denied and Failed are each recorded once.
		switch c.Type {
		case certificatesv1.CertificateApproved, certificatesv1.CertificateDenied, certificatesv1.CertificateFailed:
			if seen.Has(c.Type) {
				errs = append(errs, field.Duplicate(idx.Child("type"), c.Type))
			}
			seen.Insert(c.Type)
		}
	}
	if seen.Has(certificatesv1.CertificateApproved) && seen.Has(certificatesv1.CertificateDenied) {
		errs = append(errs, field.Invalid(fldPath, certificatesv1.CertificateDenied, "Approved and Denied conditions are mutually exclusive"))
	}
	return errs
}

// --- Admission webhook configurations ---

func validateValidatingWebhookConfiguration(c *admissionregistrationv1.ValidatingWebhookConfiguration) field.ErrorList {
	errs := objectMeta(&c.ObjectMeta, false, apivalidation.NameIsDNSSubdomain)
	return append(errs, validatingWebhooks(c.Webhooks)...)
}

func validateMutatingWebhookConfiguration(c *admissionregistrationv1.MutatingWebhookConfiguration) field.ErrorList {
	errs := objectMeta(&c.ObjectMeta, false, apivalidation.NameIsDNSSubdomain)
	return append(errs, mutatingWebhooks(c.Webhooks)...)
}

// webhookFields are the fields both webhook types share.
type webhookFields struct {
	name          string
	clientConfig  *admissionregistrationv1.WebhookClientConfig
	rules         []admissionregistrationv1.RuleWithOperations
	failure       *admissionregistrationv1.FailurePolicyType
	sideEffects   *admissionregistrationv1.SideEffectClass
	timeout       *int32
	reviewVersion []string
}

func validatingWebhooks(ws []admissionregistrationv1.ValidatingWebhook) field.ErrorList {
	var errs field.ErrorList
	names := sets.New[string]()
	for i := range ws {
		w := &ws[i]
		errs = append(errs, webhook(webhookFields{w.Name, &w.ClientConfig, w.Rules, w.FailurePolicy, w.SideEffects, w.TimeoutSeconds,
			w.AdmissionReviewVersions}, names, field.NewPath("webhooks").Index(i))...)
	}
	return errs
}

func mutatingWebhooks(ws []admissionregistrationv1.MutatingWebhook) field.ErrorList {
	var errs field.ErrorList
	names := sets.New[string]()
	for i := range ws {
		w := &ws[i]
		p := field.NewPath("webhooks").Index(i)
		errs = append(errs, webhook(webhookFields{w.Name, &w.ClientConfig, w.Rules, w.FailurePolicy, w.SideEffects, w.TimeoutSeconds,
			w.AdmissionReviewVersions}, names, p)...)
		if r := w.ReinvocationPolicy; r != nil && *r != admissionregistrationv1.NeverReinvocationPolicy && *r != admissionregistrationv1.IfNeededReinvocationPolicy {
			errs = append(errs, field.NotSupported(p.Child("reinvocationPolicy"), *r, []admissionregistrationv1.ReinvocationPolicyType{
				admissionregistrationv1.NeverReinvocationPolicy, admissionregistrationv1.IfNeededReinvocationPolicy}))
		}
	}
	return errs
}

func webhook(w webhookFields, names sets.Set[string], fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	np := fldPath.Child("name")
	errs = append(errs, validation.IsFullyQualifiedName(np, w.name)...)
	if names.Has(w.name) {
		errs = append(errs, field.Duplicate(np, w.name))
	}
	names.Insert(w.name)
	cc := fldPath.Child("clientConfig")
	switch {
	case (w.clientConfig.URL == nil) == (w.clientConfig.Service == nil):
		errs = append(errs, field.Required(cc, "exactly one of url or service is required"))
	case w.clientConfig.Service != nil:
		s := w.clientConfig.Service
		if s.Name == "" {
			errs = append(errs, field.Required(cc.Child("service", "name"), "service name is required"))
		}
		if s.Namespace == "" {
			errs = append(errs, field.Required(cc.Child("service", "namespace"), "service namespace is required"))
		}
		if s.Port != nil {
			errs = append(errs, portNum(*s.Port, cc.Child("service", "port"))...)
		}
	}
	for i, r := range w.rules {
		rp := fldPath.Child("rules").Index(i)
		if len(r.Operations) == 0 {
			errs = append(errs, field.Required(rp.Child("operations"), ""))
		}
		if len(r.APIGroups) == 0 {
			errs = append(errs, field.Required(rp.Child("apiGroups"), ""))
		}
		if len(r.APIVersions) == 0 {
			errs = append(errs, field.Required(rp.Child("apiVersions"), ""))
		}
		if len(r.Resources) == 0 {
			errs = append(errs, field.Required(rp.Child("resources"), ""))
		}
	}
	if w.failure != nil && *w.failure != admissionregistrationv1.Ignore && *w.failure != admissionregistrationv1.Fail {
		errs = append(errs, field.NotSupported(fldPath.Child("failurePolicy"), *w.failure,
			[]admissionregistrationv1.FailurePolicyType{admissionregistrationv1.Ignore, admissionregistrationv1.Fail}))
	}
	sep := fldPath.Child("sideEffects")
	switch {
	case w.sideEffects == nil:
		errs = append(errs, field.Required(sep, "must specify one of None, NoneOnDryRun"))
	case *w.sideEffects != admissionregistrationv1.SideEffectClassNone && *w.sideEffects != admissionregistrationv1.SideEffectClassNoneOnDryRun:
		errs = append(errs, field.NotSupported(sep, *w.sideEffects, []admissionregistrationv1.SideEffectClass{
			admissionregistrationv1.SideEffectClassNone, admissionregistrationv1.SideEffectClassNoneOnDryRun}))
	}
	if w.timeout != nil && (*w.timeout < 1 || *w.timeout > 30) {
		errs = append(errs, field.Invalid(fldPath.Child("timeoutSeconds"), *w.timeout, "the timeout value must be between 1 and 30 seconds"))
	}
	if len(w.reviewVersion) == 0 {
		errs = append(errs, field.Required(fldPath.Child("admissionReviewVersions"), "must specify one of v1, v1beta1"))
	}
	return errs
}
