package validation

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Messages upstream uses in several places.
const (
	selectorMismatchMsg = "`selector` does not match template `labels`"
	immutableMsg        = apivalidation.FieldImmutableErrorMsg
	immutableSetMsg     = "field is immutable when `immutable` is set"
	// maxClientIPServiceAffinitySeconds is one day, upstream's cap on ClientIP affinity.
	maxClientIPServiceAffinitySeconds = 86400
)

// --- ReplicationController ---

func validateReplicationController(rc *corev1.ReplicationController) field.ErrorList {
	errs := objectMeta(&rc.ObjectMeta, true, apivalidation.NameIsDNSSubdomain)
	return append(errs, replicationControllerSpec(&rc.Spec, field.NewPath("spec"))...)
}

func replicationControllerSpec(s *corev1.ReplicationControllerSpec, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	errs = append(errs, apivalidation.ValidateNonnegativeField(int64(s.MinReadySeconds), fldPath.Child("minReadySeconds"))...)
	if s.Replicas != nil {
		errs = append(errs, apivalidation.ValidateNonnegativeField(int64(*s.Replicas), fldPath.Child("replicas"))...)
	}
	if len(s.Selector) == 0 {
		errs = append(errs, field.Required(fldPath.Child("selector"), ""))
	} else {
		errs = append(errs, metav1validation.ValidateLabels(s.Selector, fldPath.Child("selector"))...)
	}
	if s.Template == nil {
		return append(errs, field.Required(fldPath.Child("template"), ""))
	}
	if len(s.Selector) > 0 && !labels.SelectorFromSet(s.Selector).Matches(labels.Set(s.Template.Labels)) {
		errs = append(errs, field.Invalid(fldPath.Child("template", "metadata", "labels"), s.Template.Labels, selectorMismatchMsg))
	}
	return append(errs, replicatedPodTemplate(s.Template, "ReplicationController", fldPath.Child("template"))...)
}

// replicatedPodTemplate validates the template of a controller whose pods
// run forever: restartPolicy must be Always and no deadline may be set.
func replicatedPodTemplate(t *corev1.PodTemplateSpec, kind string, fldPath *field.Path) field.ErrorList {
	errs := podTemplateSpec(t, fldPath)
	if t.Spec.RestartPolicy != corev1.RestartPolicyAlways {
		errs = append(errs, field.NotSupported(fldPath.Child("spec", "restartPolicy"), t.Spec.RestartPolicy,
			[]corev1.RestartPolicy{corev1.RestartPolicyAlways}))
	}
	if t.Spec.ActiveDeadlineSeconds != nil {
		errs = append(errs, field.Forbidden(fldPath.Child("spec", "activeDeadlineSeconds"),
			fmt.Sprintf("activeDeadlineSeconds in %s is not Supported", kind)))
	}
	return errs
}

// --- Service ---

var serviceTypes = []corev1.ServiceType{corev1.ServiceTypeClusterIP, corev1.ServiceTypeNodePort,
	corev1.ServiceTypeLoadBalancer, corev1.ServiceTypeExternalName}

func validateService(svc *corev1.Service) field.ErrorList {
	errs := objectMeta(&svc.ObjectMeta, true, apivalidation.NameIsDNS1035Label)
	return append(errs, serviceSpec(svc)...)
}

func serviceSpec(svc *corev1.Service) field.ErrorList {
	var errs field.ErrorList
	s := &svc.Spec
	specPath := field.NewPath("spec")
	switch s.Type {
	case corev1.ServiceTypeClusterIP, corev1.ServiceTypeNodePort, corev1.ServiceTypeLoadBalancer, corev1.ServiceTypeExternalName:
	case "":
		errs = append(errs, field.Required(specPath.Child("type"), ""))
	default:
		errs = append(errs, field.NotSupported(specPath.Child("type"), s.Type, serviceTypes))
	}
	headless := s.ClusterIP == corev1.ClusterIPNone
	if s.Type == corev1.ServiceTypeExternalName {
		if len(s.ClusterIPs) > 0 || (s.ClusterIP != "" && !headless) {
			errs = append(errs, field.Forbidden(specPath.Child("clusterIPs"), "may not be set for ExternalName services"))
		}
		if s.ExternalName == "" {
			errs = append(errs, field.Required(specPath.Child("externalName"), ""))
		} else {
			name := strings.TrimSuffix(s.ExternalName, ".")
			for _, msg := range validation.IsDNS1123Subdomain(name) {
				errs = append(errs, field.Invalid(specPath.Child("externalName"), s.ExternalName, msg))
			}
		}
	} else if len(s.Ports) == 0 && !headless {
		errs = append(errs, field.Required(specPath.Child("ports"), ""))
	}
	errs = append(errs, clusterIPs(s, specPath)...)
	errs = append(errs, servicePorts(s, specPath.Child("ports"))...)
	errs = append(errs, metav1validation.ValidateLabels(s.Selector, specPath.Child("selector"))...)

	switch s.SessionAffinity {
	case corev1.ServiceAffinityNone:
	case corev1.ServiceAffinityClientIP:
		if c := s.SessionAffinityConfig; c != nil && c.ClientIP != nil && c.ClientIP.TimeoutSeconds != nil {
			if t := *c.ClientIP.TimeoutSeconds; t <= 0 || t > maxClientIPServiceAffinitySeconds {
				errs = append(errs, field.Invalid(specPath.Child("sessionAffinityConfig", "clientIP", "timeoutSeconds"), t,
					fmt.Sprintf("must be greater than 0 and less than %d", maxClientIPServiceAffinitySeconds)))
			}
		}
	case "":
		errs = append(errs, field.Required(specPath.Child("sessionAffinity"), ""))
	default:
		errs = append(errs, field.NotSupported(specPath.Child("sessionAffinity"), s.SessionAffinity,
			[]corev1.ServiceAffinity{corev1.ServiceAffinityClientIP, corev1.ServiceAffinityNone}))
	}
	if s.SessionAffinity != corev1.ServiceAffinityClientIP && s.SessionAffinityConfig != nil {
		errs = append(errs, field.Invalid(specPath.Child("sessionAffinityConfig"), s.SessionAffinityConfig,
			fmt.Sprintf("must not be set when session affinity is %s", s.SessionAffinity)))
	}

	externallyAccessible := s.Type == corev1.ServiceTypeLoadBalancer || s.Type == corev1.ServiceTypeNodePort ||
		(s.Type == corev1.ServiceTypeClusterIP && len(s.ExternalIPs) > 0)
	etp := specPath.Child("externalTrafficPolicy")
	switch {
	case !externallyAccessible && s.ExternalTrafficPolicy != "":
		errs = append(errs, field.Invalid(etp, s.ExternalTrafficPolicy, "may only be set for externally-accessible services"))
	case externallyAccessible && s.ExternalTrafficPolicy == "":
		errs = append(errs, field.Required(etp, ""))
	case s.ExternalTrafficPolicy != "" && s.ExternalTrafficPolicy != corev1.ServiceExternalTrafficPolicyCluster &&
		s.ExternalTrafficPolicy != corev1.ServiceExternalTrafficPolicyLocal:
		errs = append(errs, field.NotSupported(etp, s.ExternalTrafficPolicy, []corev1.ServiceExternalTrafficPolicy{
			corev1.ServiceExternalTrafficPolicyCluster, corev1.ServiceExternalTrafficPolicyLocal}))
	}
	if s.HealthCheckNodePort != 0 && !(s.Type == corev1.ServiceTypeLoadBalancer && s.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal) {
		errs = append(errs, field.Invalid(specPath.Child("healthCheckNodePort"), s.HealthCheckNodePort,
			"may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'"))
	}
	itp := specPath.Child("internalTrafficPolicy")
	if s.Type != corev1.ServiceTypeExternalName {
		switch {
		case s.InternalTrafficPolicy == nil:
			errs = append(errs, field.Required(itp, ""))
		case *s.InternalTrafficPolicy != corev1.ServiceInternalTrafficPolicyCluster && *s.InternalTrafficPolicy != corev1.ServiceInternalTrafficPolicyLocal:
			errs = append(errs, field.NotSupported(itp, *s.InternalTrafficPolicy, []corev1.ServiceInternalTrafficPolicy{
				corev1.ServiceInternalTrafficPolicyCluster, corev1.ServiceInternalTrafficPolicyLocal}))
		}
	}
	if p := s.IPFamilyPolicy; p != nil {
		switch *p {
		case corev1.IPFamilyPolicySingleStack, corev1.IPFamilyPolicyPreferDualStack, corev1.IPFamilyPolicyRequireDualStack:
		default:
			errs = append(errs, field.NotSupported(specPath.Child("ipFamilyPolicy"), *p, []corev1.IPFamilyPolicy{
				corev1.IPFamilyPolicySingleStack, corev1.IPFamilyPolicyPreferDualStack, corev1.IPFamilyPolicyRequireDualStack}))
		}
	}
	seenFamilies := sets.New[corev1.IPFamily]()
	for i, f := range s.IPFamilies {
		fp := specPath.Child("ipFamilies").Index(i)
		switch {
		case f != corev1.IPv4Protocol && f != corev1.IPv6Protocol:
			errs = append(errs, field.NotSupported(fp, f, []corev1.IPFamily{corev1.IPv4Protocol, corev1.IPv6Protocol}))
		case seenFamilies.Has(f):
			errs = append(errs, field.Duplicate(fp, f))
		}
		seenFamilies.Insert(f)
	}
	if len(s.IPFamilies) > 2 {
		errs = append(errs, field.Invalid(specPath.Child("ipFamilies"), s.IPFamilies, "may specify no more than one IP for each IP family"))
	}
	for i, ip := range s.ExternalIPs {
		errs = append(errs, validation.IsValidIP(specPath.Child("externalIPs").Index(i), ip)...)
	}
	for i, cidr := range s.LoadBalancerSourceRanges {
		errs = append(errs, validation.IsValidCIDR(specPath.Child("loadBalancerSourceRanges").Index(i), strings.TrimSpace(cidr))...)
	}
	albnp := specPath.Child("allocateLoadBalancerNodePorts")
	if s.Type == corev1.ServiceTypeLoadBalancer {
		if s.AllocateLoadBalancerNodePorts == nil {
			errs = append(errs, field.Required(albnp, ""))
		}
	} else if s.AllocateLoadBalancerNodePorts != nil {
		errs = append(errs, field.Forbidden(albnp, "may only be used when `type` is 'LoadBalancer'"))
	}
	if s.LoadBalancerClass != nil {
		if s.Type != corev1.ServiceTypeLoadBalancer {
			errs = append(errs, field.Forbidden(specPath.Child("loadBalancerClass"), "may only be used when `type` is 'LoadBalancer'"))
		} else {
			errs = append(errs, qualifiedName(*s.LoadBalancerClass, specPath.Child("loadBalancerClass"))...)
		}
	}
	return errs
}

// clusterIPs validates spec.clusterIP and spec.clusterIPs, which the IP
// allocator may leave empty on create and fills before storing.
func clusterIPs(s *corev1.ServiceSpec, specPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	ipsPath := specPath.Child("clusterIPs")
	if s.ClusterIP != "" && len(s.ClusterIPs) > 0 && s.ClusterIP != s.ClusterIPs[0] {
		errs = append(errs, field.Invalid(ipsPath, s.ClusterIPs, "first value must match `clusterIP`"))
	}
	ips := s.ClusterIPs
	if len(ips) == 0 && s.ClusterIP != "" {
		ips = []string{s.ClusterIP}
	}
	if s.Type == corev1.ServiceTypeExternalName {
		return errs
	}
	if len(ips) > 2 {
		errs = append(errs, field.Invalid(ipsPath, s.ClusterIPs, "may only hold up to 2 values"))
	}
	for i, ip := range ips {
		p := ipsPath.Index(i)
		if ip == corev1.ClusterIPNone {
			if i > 0 || len(ips) > 1 {
				errs = append(errs, field.Invalid(p, ip, "'None' must be the first and only value"))
			} else if s.Type != corev1.ServiceTypeClusterIP {
				errs = append(errs, field.Invalid(p, ip, fmt.Sprintf("may not be set to 'None' for %s services", s.Type)))
			}
			continue
		}
		errs = append(errs, validation.IsValidIP(p, ip)...)
	}
	return errs
}

func servicePorts(s *corev1.ServiceSpec, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	names := sets.New[string]()
	type portKey struct {
		Port     int32
		Protocol corev1.Protocol
	}
	seen := sets.New[portKey]()
	seenNodePorts := sets.New[portKey]()
	for i, p := range s.Ports {
		idx := fldPath.Index(i)
		// Several ports must be told apart by name, e.g. in Endpoints.
		if len(s.Ports) > 1 && p.Name == "" {
			errs = append(errs, field.Required(idx.Child("name"), ""))
		} else if p.Name != "" {
			for _, msg := range validation.IsDNS1123Label(p.Name) {
				errs = append(errs, field.Invalid(idx.Child("name"), p.Name, msg))
			}
			if names.Has(p.Name) {
				errs = append(errs, field.Duplicate(idx.Child("name"), p.Name))
			}
			names.Insert(p.Name)
		}
		errs = append(errs, portNum(p.Port, idx.Child("port"))...)
		errs = append(errs, protocol(p.Protocol, idx.Child("protocol"))...)
		errs = append(errs, portNumOrName(p.TargetPort, idx.Child("targetPort"))...)
		if p.AppProtocol != nil {
			errs = append(errs, qualifiedName(*p.AppProtocol, idx.Child("appProtocol"))...)
		}
		if p.NodePort != 0 {
			if s.Type == corev1.ServiceTypeClusterIP || s.Type == corev1.ServiceTypeExternalName {
				errs = append(errs, field.Forbidden(idx.Child("nodePort"), fmt.Sprintf("may not be used when `type` is '%s'", s.Type)))
			} else {
				errs = append(errs, portNum(p.NodePort, idx.Child("nodePort"))...)
				k := portKey{p.NodePort, p.Protocol}
				if seenNodePorts.Has(k) {
					errs = append(errs, field.Duplicate(idx.Child("nodePort"), p.NodePort))
				}
				seenNodePorts.Insert(k)
			}
		}
		k := portKey{p.Port, p.Protocol}
		if seen.Has(k) {
			errs = append(errs, field.Duplicate(idx, k))
		}
		seen.Insert(k)
	}
	return errs
}

func validateServiceUpdate(svc, old *corev1.Service) field.ErrorList {
	errs := metaUpdate(&svc.ObjectMeta, &old.ObjectMeta)
	// A service keeps its cluster IPs for life, unless it moves to or from
	// ExternalName (which has none): endpoints and DNS depend on them.
	if old.Spec.Type != corev1.ServiceTypeExternalName && svc.Spec.Type != corev1.ServiceTypeExternalName && len(old.Spec.ClusterIPs) > 0 {
		for i, ip := range old.Spec.ClusterIPs {
			if i >= len(svc.Spec.ClusterIPs) {
				// Dropping a secondary IP is allowed when downgrading from
				// dual-stack; dropping the primary one never is.
				if i == 0 {
					errs = append(errs, field.Invalid(field.NewPath("spec", "clusterIPs").Index(0), svc.Spec.ClusterIPs, "may not change once set"))
				}
				break
			}
			if svc.Spec.ClusterIPs[i] != ip {
				errs = append(errs, field.Invalid(field.NewPath("spec", "clusterIPs").Index(i), svc.Spec.ClusterIPs, "may not change once set"))
			}
		}
	}
	if len(old.Spec.IPFamilies) > 0 && len(svc.Spec.IPFamilies) > 0 && old.Spec.IPFamilies[0] != svc.Spec.IPFamilies[0] &&
		old.Spec.Type != corev1.ServiceTypeExternalName && svc.Spec.Type != corev1.ServiceTypeExternalName {
		errs = append(errs, field.Invalid(field.NewPath("spec", "ipFamilies").Index(0), svc.Spec.IPFamilies[0], "may not change once set"))
	}
	return append(errs, serviceSpec(svc)...)
}

// --- ConfigMap and Secret ---

func validateConfigMap(cm *corev1.ConfigMap) field.ErrorList {
	errs := objectMeta(&cm.ObjectMeta, true, apivalidation.NameIsDNSSubdomain)
	return append(errs, configMapData(cm)...)
}

func configMapData(cm *corev1.ConfigMap) field.ErrorList {
	var errs field.ErrorList
	total := 0
	for _, key := range sets.List(sets.KeySet(cm.Data)) {
		total += len(cm.Data[key])
		for _, msg := range validation.IsConfigMapKey(key) {
			errs = append(errs, field.Invalid(field.NewPath("data").Key(key), key, msg))
		}
	}
	for _, key := range sets.List(sets.KeySet(cm.BinaryData)) {
		total += len(cm.BinaryData[key])
		for _, msg := range validation.IsConfigMapKey(key) {
			errs = append(errs, field.Invalid(field.NewPath("binaryData").Key(key), key, msg))
		}
		if _, dup := cm.Data[key]; dup {
			errs = append(errs, field.Invalid(field.NewPath("binaryData").Key(key), key, "duplicate of key present in data"))
		}
	}
	if total > corev1.MaxSecretSize {
		// The empty path means "the whole object", as upstream reports it.
		errs = append(errs, field.TooLong(field.NewPath(""), "", corev1.MaxSecretSize))
	}
	return errs
}

func validateConfigMapUpdate(cm, old *corev1.ConfigMap) field.ErrorList {
	errs := metaUpdate(&cm.ObjectMeta, &old.ObjectMeta)
	if old.Immutable != nil && *old.Immutable {
		if cm.Immutable == nil || !*cm.Immutable {
			errs = append(errs, field.Forbidden(field.NewPath("immutable"), immutableSetMsg))
		}
		if !apiequality.Semantic.DeepEqual(cm.Data, old.Data) {
			errs = append(errs, field.Forbidden(field.NewPath("data"), immutableSetMsg))
		}
		if !apiequality.Semantic.DeepEqual(cm.BinaryData, old.BinaryData) {
			errs = append(errs, field.Forbidden(field.NewPath("binaryData"), immutableSetMsg))
		}
	}
	return append(errs, configMapData(cm)...)
}

func validateSecret(s *corev1.Secret) field.ErrorList {
	errs := objectMeta(&s.ObjectMeta, true, apivalidation.NameIsDNSSubdomain)
	return append(errs, secretData(s)...)
}

func secretData(s *corev1.Secret) field.ErrorList {
	var errs field.ErrorList
	dataPath := field.NewPath("data")
	total := 0
	for _, key := range sets.List(sets.KeySet(s.Data)) {
		total += len(s.Data[key])
		for _, msg := range validation.IsConfigMapKey(key) {
			errs = append(errs, field.Invalid(dataPath.Key(key), key, msg))
		}
	}
	// stringData is write-only sugar for data; it is normally merged into
	// data before validation, but count it in case it was not.
	for _, key := range sets.List(sets.KeySet(s.StringData)) {
		total += len(s.StringData[key])
		for _, msg := range validation.IsConfigMapKey(key) {
			errs = append(errs, field.Invalid(field.NewPath("stringData").Key(key), key, msg))
		}
	}
	if total > corev1.MaxSecretSize {
		errs = append(errs, field.TooLong(dataPath, "", corev1.MaxSecretSize))
	}
	has := func(k string) bool {
		_, ok := s.Data[k]
		if !ok {
			_, ok = s.StringData[k]
		}
		return ok
	}
	switch s.Type {
	case corev1.SecretTypeServiceAccountToken:
		if s.Annotations[corev1.ServiceAccountNameKey] == "" {
			errs = append(errs, field.Required(metaPath.Child("annotations").Key(corev1.ServiceAccountNameKey), ""))
		}
	case corev1.SecretTypeDockercfg:
		if !has(corev1.DockerConfigKey) {
			errs = append(errs, field.Required(dataPath.Key(corev1.DockerConfigKey), ""))
		} else if err := jsonValid(s.Data[corev1.DockerConfigKey]); err != nil {
			errs = append(errs, field.Invalid(dataPath.Key(corev1.DockerConfigKey), "<secret contents redacted>", err.Error()))
		}
	case corev1.SecretTypeDockerConfigJson:
		if !has(corev1.DockerConfigJsonKey) {
			errs = append(errs, field.Required(dataPath.Key(corev1.DockerConfigJsonKey), ""))
		} else if err := jsonValid(s.Data[corev1.DockerConfigJsonKey]); err != nil {
			errs = append(errs, field.Invalid(dataPath.Key(corev1.DockerConfigJsonKey), "<secret contents redacted>", err.Error()))
		}
	case corev1.SecretTypeBasicAuth:
		if !has(corev1.BasicAuthUsernameKey) && !has(corev1.BasicAuthPasswordKey) {
			errs = append(errs, field.Required(dataPath.Key(corev1.BasicAuthUsernameKey), ""),
				field.Required(dataPath.Key(corev1.BasicAuthPasswordKey), ""))
		}
	case corev1.SecretTypeSSHAuth:
		if !has(corev1.SSHAuthPrivateKey) {
			errs = append(errs, field.Required(dataPath.Key(corev1.SSHAuthPrivateKey), ""))
		}
	case corev1.SecretTypeTLS:
		if !has(corev1.TLSCertKey) {
			errs = append(errs, field.Required(dataPath.Key(corev1.TLSCertKey), ""))
		}
		if !has(corev1.TLSPrivateKeyKey) {
			errs = append(errs, field.Required(dataPath.Key(corev1.TLSPrivateKeyKey), ""))
		}
	case "":
		errs = append(errs, field.Required(field.NewPath("type"), ""))
	default:
		errs = append(errs, qualifiedName(string(s.Type), field.NewPath("type"))...)
	}
	return errs
}

// jsonValid reports a JSON syntax error; only the stringData path can hold
// a value that is not in Data, and that one is not checked.
func jsonValid(b []byte) error {
	if b == nil {
		return nil
	}
	var v interface{}
	return json.Unmarshal(b, &v)
}

func validateSecretUpdate(s, old *corev1.Secret) field.ErrorList {
	errs := metaUpdate(&s.ObjectMeta, &old.ObjectMeta)
	if s.Type != old.Type {
		errs = append(errs, field.Invalid(field.NewPath("type"), s.Type, immutableMsg))
	}
	if old.Immutable != nil && *old.Immutable {
		if s.Immutable == nil || !*s.Immutable {
			errs = append(errs, field.Forbidden(field.NewPath("immutable"), immutableSetMsg))
		}
		if !apiequality.Semantic.DeepEqual(s.Data, old.Data) {
			errs = append(errs, field.Forbidden(field.NewPath("data"), immutableSetMsg))
		}
	}
	return append(errs, secretData(s)...)
}

// --- Namespace and Node ---

func validateNamespace(ns *corev1.Namespace) field.ErrorList {
	errs := objectMeta(&ns.ObjectMeta, false, apivalidation.ValidateNamespaceName)
	return append(errs, namespaceSpec(&ns.Spec)...)
}

func namespaceSpec(s *corev1.NamespaceSpec) field.ErrorList {
	var errs field.ErrorList
	for i, f := range s.Finalizers {
		errs = append(errs, finalizerName(string(f), field.NewPath("spec", "finalizers").Index(i))...)
	}
	return errs
}

// finalizerName validates a namespace spec finalizer: a qualified name,
// and one of the standard ones when it has no domain.
func finalizerName(f string, fldPath *field.Path) field.ErrorList {
	errs := qualifiedName(f, fldPath)
	if len(errs) == 0 && !strings.Contains(f, "/") && f != string(corev1.FinalizerKubernetes) {
		errs = append(errs, field.Invalid(fldPath, f, "name is neither a standard finalizer name nor is it fully qualified"))
	}
	return errs
}

func namespaceStatus(ns, old *corev1.Namespace) field.ErrorList {
	var errs field.ErrorList
	p := field.NewPath("status", "phase")
	switch ns.Status.Phase {
	case corev1.NamespaceActive, corev1.NamespaceTerminating:
	default:
		errs = append(errs, field.NotSupported(p, ns.Status.Phase, []corev1.NamespacePhase{corev1.NamespaceActive, corev1.NamespaceTerminating}))
	}
	// A namespace being deleted stays Terminating until it is gone.
	if old.DeletionTimestamp != nil && ns.Status.Phase != corev1.NamespaceTerminating {
		errs = append(errs, field.Invalid(p, ns.Status.Phase, fmt.Sprintf("may only be '%s' if `deletionTimestamp` is not empty", corev1.NamespaceTerminating)))
	}
	return errs
}

func validateNode(n *corev1.Node) field.ErrorList {
	errs := objectMeta(&n.ObjectMeta, false, apivalidation.NameIsDNSSubdomain)
	return append(errs, nodeSpec(n)...)
}

func nodeSpec(n *corev1.Node) field.ErrorList {
	var errs field.ErrorList
	specPath := field.NewPath("spec")
	if n.Spec.PodCIDR != "" {
		errs = append(errs, validation.IsValidCIDR(specPath.Child("podCIDR"), n.Spec.PodCIDR)...)
	}
	for i, c := range n.Spec.PodCIDRs {
		errs = append(errs, validation.IsValidCIDR(specPath.Child("podCIDRs").Index(i), c)...)
	}
	if len(n.Spec.PodCIDRs) > 2 {
		errs = append(errs, field.Invalid(specPath.Child("podCIDRs"), n.Spec.PodCIDRs, "may specify no more than one CIDR for each IP family"))
	}
	if len(n.Spec.PodCIDRs) > 0 && n.Spec.PodCIDR != n.Spec.PodCIDRs[0] {
		errs = append(errs, field.Invalid(specPath.Child("podCIDR"), n.Spec.PodCIDR, "must match the first element of podCIDRs"))
	}
	type taintKey struct {
		Key    string
		Effect corev1.TaintEffect
	}
	seen := sets.New[taintKey]()
	for i, t := range n.Spec.Taints {
		idx := specPath.Child("taints").Index(i)
		errs = append(errs, metav1validation.ValidateLabelName(t.Key, idx.Child("key"))...)
		if t.Value != "" {
			for _, msg := range validation.IsValidLabelValue(t.Value) {
				errs = append(errs, field.Invalid(idx.Child("value"), t.Value, msg))
			}
		}
		if t.Effect == "" {
			errs = append(errs, field.Required(idx.Child("effect"), ""))
		} else {
			errs = append(errs, taintEffect(t.Effect, idx.Child("effect"))...)
		}
		k := taintKey{t.Key, t.Effect}
		if seen.Has(k) {
			errs = append(errs, field.Duplicate(idx, k))
		}
		seen.Insert(k)
	}
	for name, q := range n.Status.Capacity {
		if q.Sign() < 0 {
			errs = append(errs, field.Invalid(field.NewPath("status", "capacity").Key(string(name)), q.String(), apivalidation.IsNegativeErrorMsg))
		}
	}
	for name, q := range n.Status.Allocatable {
		if q.Sign() < 0 {
			errs = append(errs, field.Invalid(field.NewPath("status", "allocatable").Key(string(name)), q.String(), apivalidation.IsNegativeErrorMsg))
		}
	}
	return errs
}

func validateNodeUpdate(n, old *corev1.Node) field.ErrorList {
	errs := metaUpdate(&n.ObjectMeta, &old.ObjectMeta)
	errs = append(errs, nodeSpec(n)...)
	specPath := field.NewPath("spec")
	// The pod CIDR and provider ID are assigned once: routes and the cloud
	// provider key off them.
	if len(old.Spec.PodCIDRs) > 0 && !apiequality.Semantic.DeepEqual(old.Spec.PodCIDRs, n.Spec.PodCIDRs) {
		errs = append(errs, field.Forbidden(specPath.Child("podCIDRs"), "node updates may not change podCIDR except from \"\" to valid"))
	}
	if old.Spec.ProviderID != "" && old.Spec.ProviderID != n.Spec.ProviderID {
		errs = append(errs, field.Forbidden(specPath.Child("providerID"), "node updates may not change providerID except from \"\" to valid"))
	}
	return errs
}

// --- PersistentVolume and PersistentVolumeClaim ---

var accessModes = []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce, corev1.ReadOnlyMany, corev1.ReadWriteMany, corev1.ReadWriteOncePod}

func pvAccessModes(modes []corev1.PersistentVolumeAccessMode, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	for _, m := range modes {
		switch m {
		case corev1.ReadWriteOnce, corev1.ReadOnlyMany, corev1.ReadWriteMany:
		case corev1.ReadWriteOncePod:
			if len(modes) > 1 {
				errs = append(errs, field.Forbidden(fldPath, "may not use ReadWriteOncePod with other access modes"))
			}
		default:
			errs = append(errs, field.NotSupported(fldPath, m, accessModes))
		}
	}
	return errs
}

func volumeMode(m *corev1.PersistentVolumeMode, fldPath *field.Path) field.ErrorList {
	if m == nil || *m == corev1.PersistentVolumeBlock || *m == corev1.PersistentVolumeFilesystem {
		return nil
	}
	return field.ErrorList{field.NotSupported(fldPath, *m, []corev1.PersistentVolumeMode{corev1.PersistentVolumeBlock, corev1.PersistentVolumeFilesystem})}
}

func validatePersistentVolume(pv *corev1.PersistentVolume) field.ErrorList {
	errs := objectMeta(&pv.ObjectMeta, false, apivalidation.NameIsDNSSubdomain)
	return append(errs, persistentVolumeSpec(&pv.Spec, field.NewPath("spec"))...)
}

func persistentVolumeSpec(s *corev1.PersistentVolumeSpec, specPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	if len(s.AccessModes) == 0 {
		errs = append(errs, field.Required(specPath.Child("accessModes"), ""))
	}
	errs = append(errs, pvAccessModes(s.AccessModes, specPath.Child("accessModes"))...)
	if len(s.Capacity) == 0 {
		errs = append(errs, field.Required(specPath.Child("capacity"), ""))
	} else if _, ok := s.Capacity[corev1.ResourceStorage]; !ok || len(s.Capacity) > 1 {
		errs = append(errs, field.NotSupported(specPath.Child("capacity"), sets.List(sets.KeySet(s.Capacity)),
			[]corev1.ResourceName{corev1.ResourceStorage}))
	}
	for name, q := range s.Capacity {
		if q.Sign() < 0 {
			errs = append(errs, field.Invalid(specPath.Child("capacity").Key(string(name)), q.String(), apivalidation.IsNegativeErrorMsg))
		}
	}
	switch s.PersistentVolumeReclaimPolicy {
	case corev1.PersistentVolumeReclaimDelete, corev1.PersistentVolumeReclaimRecycle, corev1.PersistentVolumeReclaimRetain, "":
	default:
		errs = append(errs, field.NotSupported(specPath.Child("persistentVolumeReclaimPolicy"), s.PersistentVolumeReclaimPolicy,
			[]corev1.PersistentVolumeReclaimPolicy{corev1.PersistentVolumeReclaimDelete, corev1.PersistentVolumeReclaimRecycle, corev1.PersistentVolumeReclaimRetain}))
	}
	if s.StorageClassName != "" {
		for _, msg := range validation.IsDNS1123Subdomain(s.StorageClassName) {
			errs = append(errs, field.Invalid(specPath.Child("storageClassName"), s.StorageClassName, msg))
		}
	}
	errs = append(errs, volumeMode(s.VolumeMode, specPath.Child("volumeMode"))...)
	// Exactly one source, as for pod volumes.
	n := 0
	src := s.PersistentVolumeSource
	for _, set := range []bool{src.HostPath != nil, src.NFS != nil, src.CSI != nil, src.Local != nil, src.ISCSI != nil,
		src.FC != nil, src.RBD != nil, src.CephFS != nil, src.Glusterfs != nil, src.GCEPersistentDisk != nil,
		src.AWSElasticBlockStore != nil, src.AzureDisk != nil, src.AzureFile != nil, src.Cinder != nil, src.FlexVolume != nil,
		src.Flocker != nil, src.VsphereVolume != nil, src.Quobyte != nil, src.PhotonPersistentDisk != nil,
		src.PortworxVolume != nil, src.ScaleIO != nil, src.StorageOS != nil} {
		if set {
			n++
		}
	}
	switch {
	case n == 0:
		errs = append(errs, field.Required(specPath, "must specify a volume type"))
	case n > 1:
		errs = append(errs, field.Forbidden(specPath, "may not specify more than 1 volume type"))
	}
	if src.HostPath != nil && src.HostPath.Path == "" {
		errs = append(errs, field.Required(specPath.Child("hostPath", "path"), ""))
	}
	if src.Local != nil {
		if src.Local.Path == "" {
			errs = append(errs, field.Required(specPath.Child("local", "path"), ""))
		}
		if s.NodeAffinity == nil {
			errs = append(errs, field.Required(specPath.Child("nodeAffinity"), "Local volume requires node affinity"))
		}
	}
	if src.CSI != nil {
		if src.CSI.Driver == "" {
			errs = append(errs, field.Required(specPath.Child("csi", "driver"), ""))
		}
		if src.CSI.VolumeHandle == "" {
			errs = append(errs, field.Required(specPath.Child("csi", "volumeHandle"), ""))
		}
	}
	if src.NFS != nil {
		if src.NFS.Server == "" {
			errs = append(errs, field.Required(specPath.Child("nfs", "server"), ""))
		}
		if src.NFS.Path == "" {
			errs = append(errs, field.Required(specPath.Child("nfs", "path"), ""))
		}
	}
	return errs
}

func validatePersistentVolumeUpdate(pv, old *corev1.PersistentVolume) field.ErrorList {
	errs := metaUpdate(&pv.ObjectMeta, &old.ObjectMeta)
	errs = append(errs, persistentVolumeSpec(&pv.Spec, field.NewPath("spec"))...)
	if !apiequality.Semantic.DeepEqual(pv.Spec.PersistentVolumeSource, old.Spec.PersistentVolumeSource) {
		errs = append(errs, field.Forbidden(field.NewPath("spec", "persistentvolumesource"),
			fmt.Sprintf("spec.persistentvolumesource is forbidden.\n%v", cmp.Diff(old.Spec.PersistentVolumeSource, pv.Spec.PersistentVolumeSource))))
	}
	errs = append(errs, apivalidation.ValidateImmutableField(pv.Spec.VolumeMode, old.Spec.VolumeMode, field.NewPath("volumeMode"))...)
	if old.Spec.NodeAffinity != nil {
		errs = append(errs, apivalidation.ValidateImmutableField(pv.Spec.NodeAffinity, old.Spec.NodeAffinity, field.NewPath("nodeAffinity"))...)
	}
	return errs
}

func validatePersistentVolumeClaim(c *corev1.PersistentVolumeClaim) field.ErrorList {
	errs := objectMeta(&c.ObjectMeta, true, apivalidation.NameIsDNSSubdomain)
	return append(errs, persistentVolumeClaimSpec(&c.Spec, field.NewPath("spec"))...)
}

func persistentVolumeClaimSpec(s *corev1.PersistentVolumeClaimSpec, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	if len(s.AccessModes) == 0 {
		errs = append(errs, field.Required(fldPath.Child("accessModes"), "at least 1 access mode is required"))
	}
	errs = append(errs, pvAccessModes(s.AccessModes, fldPath.Child("accessModes"))...)
	errs = append(errs, metav1validation.ValidateLabelSelector(s.Selector, metav1validation.LabelSelectorValidationOptions{}, fldPath.Child("selector"))...)
	storage, ok := s.Resources.Requests[corev1.ResourceStorage]
	reqPath := fldPath.Child("resources", "requests")
	if !ok {
		errs = append(errs, field.Required(reqPath.Key(string(corev1.ResourceStorage)), ""))
	} else if storage.Sign() <= 0 {
		errs = append(errs, field.Invalid(reqPath.Key(string(corev1.ResourceStorage)), storage.String(), "must be greater than zero"))
	}
	if s.StorageClassName != nil && *s.StorageClassName != "" {
		for _, msg := range validation.IsDNS1123Subdomain(*s.StorageClassName) {
			errs = append(errs, field.Invalid(fldPath.Child("storageClassName"), *s.StorageClassName, msg))
		}
	}
	return append(errs, volumeMode(s.VolumeMode, fldPath.Child("volumeMode"))...)
}

func validatePersistentVolumeClaimUpdate(c, old *corev1.PersistentVolumeClaim) field.ErrorList {
	specPath := field.NewPath("spec")
	errs := metaUpdate(&c.ObjectMeta, &old.ObjectMeta)
	errs = append(errs, persistentVolumeClaimSpec(&c.Spec, specPath)...)
	// Copy what may change onto the old spec: binding fills volumeName, and
	// a bound claim may be resized or change its attributes class.
	munged := old.Spec.DeepCopy()
	if old.Spec.VolumeName == "" {
		munged.VolumeName = c.Spec.VolumeName
	}
	if old.Status.Phase == corev1.ClaimBound {
		munged.Resources.Requests = c.Spec.Resources.Requests
		munged.VolumeAttributesClassName = c.Spec.VolumeAttributesClassName
	}
	if !apiequality.Semantic.DeepEqual(*munged, c.Spec) {
		errs = append(errs, field.Forbidden(specPath, fmt.Sprintf(
			"spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims\n%v",
			cmp.Diff(*munged, c.Spec))))
	}
	return errs
}

// --- Endpoints ---

func validateEndpoints(e *corev1.Endpoints) field.ErrorList {
	errs := objectMeta(&e.ObjectMeta, true, apivalidation.NameIsDNSSubdomain)
	return append(errs, endpointSubsets(e.Subsets, field.NewPath("subsets"))...)
}

func endpointSubsets(subsets []corev1.EndpointSubset, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i, ss := range subsets {
		idx := fldPath.Index(i)
		if len(ss.Addresses) == 0 && len(ss.NotReadyAddresses) == 0 {
			errs = append(errs, field.Required(idx, "must specify `addresses` or `notReadyAddresses`"))
		}
		for j, a := range ss.Addresses {
			errs = append(errs, endpointAddress(a, idx.Child("addresses").Index(j))...)
		}
		for j, a := range ss.NotReadyAddresses {
			errs = append(errs, endpointAddress(a, idx.Child("notReadyAddresses").Index(j))...)
		}
		for j, p := range ss.Ports {
			pp := idx.Child("ports").Index(j)
			if len(ss.Ports) > 1 && p.Name == "" {
				errs = append(errs, field.Required(pp.Child("name"), ""))
			} else if p.Name != "" {
				for _, msg := range validation.IsDNS1123Label(p.Name) {
					errs = append(errs, field.Invalid(pp.Child("name"), p.Name, msg))
				}
			}
			errs = append(errs, portNum(p.Port, pp.Child("port"))...)
			errs = append(errs, protocol(p.Protocol, pp.Child("protocol"))...)
		}
	}
	return errs
}

func endpointAddress(a corev1.EndpointAddress, fldPath *field.Path) field.ErrorList {
	errs := validation.IsValidIP(fldPath.Child("ip"), a.IP)
	if a.Hostname != "" {
		for _, msg := range validation.IsDNS1123Label(a.Hostname) {
			errs = append(errs, field.Invalid(fldPath.Child("hostname"), a.Hostname, msg))
		}
	}
	if a.NodeName != nil && *a.NodeName != "" {
		for _, msg := range apivalidation.NameIsDNSSubdomain(*a.NodeName, false) {
			errs = append(errs, field.Invalid(fldPath.Child("nodeName"), *a.NodeName, msg))
		}
	}
	return errs
}

// --- Event (core/v1) ---

func validateCoreEvent(e *corev1.Event) field.ErrorList {
	errs := objectMeta(&e.ObjectMeta, true, apivalidation.NameIsDNSSubdomain)
	return append(errs, coreEventBody(e)...)
}

func coreEventBody(e *corev1.Event) field.ErrorList {
	var errs field.ErrorList
	// An event lives in its object's namespace; events about cluster-scoped
	// objects live in "default" (or nowhere, for old clients).
	nsPath := field.NewPath("involvedObject", "namespace")
	if e.InvolvedObject.Namespace == "" {
		if e.Namespace != "" && e.Namespace != "default" {
			errs = append(errs, field.Invalid(nsPath, e.InvolvedObject.Namespace, "does not match event.namespace"))
		}
	} else if e.Namespace != e.InvolvedObject.Namespace {
		errs = append(errs, field.Invalid(nsPath, e.InvolvedObject.Namespace, "does not match event.namespace"))
	}
	switch e.Type {
	case "", corev1.EventTypeNormal, corev1.EventTypeWarning:
	default:
		errs = append(errs, field.NotSupported(field.NewPath("type"), e.Type, []string{corev1.EventTypeNormal, corev1.EventTypeWarning}))
	}
	errs = append(errs, apivalidation.ValidateNonnegativeField(int64(e.Count), field.NewPath("count"))...)
	return errs
}

// --- LimitRange, ResourceQuota, Binding ---

func validateLimitRange(lr *corev1.LimitRange) field.ErrorList {
	errs := objectMeta(&lr.ObjectMeta, true, apivalidation.NameIsDNSSubdomain)
	return append(errs, limitRangeSpec(&lr.Spec, field.NewPath("spec"))...)
}

func limitRangeSpec(s *corev1.LimitRangeSpec, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	seenTypes := sets.New[corev1.LimitType]()
	for i, item := range s.Limits {
		idx := fldPath.Child("limits").Index(i)
		if seenTypes.Has(item.Type) {
			errs = append(errs, field.Duplicate(idx.Child("type"), item.Type))
		}
		seenTypes.Insert(item.Type)
		if item.Type == "" {
			errs = append(errs, field.Required(idx.Child("type"), ""))
		}
		for _, sect := range []struct {
			name string
			l    corev1.ResourceList
		}{{"max", item.Max}, {"min", item.Min}, {"default", item.Default}, {"defaultRequest", item.DefaultRequest}, {"maxLimitRequestRatio", item.MaxLimitRequestRatio}} {
			errs = append(errs, resourceList(sect.l, idx.Child(sect.name), limitRangeResourceName)...)
		}
		if item.Type == corev1.LimitTypePod {
			if len(item.Default) > 0 {
				errs = append(errs, field.Forbidden(idx.Child("default"), "may not be specified when `type` is 'Pod'"))
			}
			if len(item.DefaultRequest) > 0 {
				errs = append(errs, field.Forbidden(idx.Child("defaultRequest"), "may not be specified when `type` is 'Pod'"))
			}
		}
		// min <= defaultRequest <= default <= max, for every resource named.
		for name, minQ := range item.Min {
			if maxQ, ok := item.Max[name]; ok && minQ.Cmp(maxQ) > 0 {
				errs = append(errs, field.Invalid(idx.Child("min").Key(string(name)), minQ.String(),
					fmt.Sprintf("min value %s is greater than max value %s", minQ.String(), maxQ.String())))
			}
			if dr, ok := item.DefaultRequest[name]; ok && minQ.Cmp(dr) > 0 {
				errs = append(errs, field.Invalid(idx.Child("defaultRequest").Key(string(name)), dr.String(),
					fmt.Sprintf("min value %s is greater than default request value %s", minQ.String(), dr.String())))
			}
			if d, ok := item.Default[name]; ok && minQ.Cmp(d) > 0 {
				errs = append(errs, field.Invalid(idx.Child("default").Key(string(name)), d.String(),
					fmt.Sprintf("min value %s is greater than default value %s", minQ.String(), d.String())))
			}
		}
		for name, maxQ := range item.Max {
			if d, ok := item.Default[name]; ok && d.Cmp(maxQ) > 0 {
				errs = append(errs, field.Invalid(idx.Child("default").Key(string(name)), d.String(),
					fmt.Sprintf("default value %s is greater than max value %s", d.String(), maxQ.String())))
			}
			if dr, ok := item.DefaultRequest[name]; ok && dr.Cmp(maxQ) > 0 {
				errs = append(errs, field.Invalid(idx.Child("defaultRequest").Key(string(name)), dr.String(),
					fmt.Sprintf("default request value %s is greater than max value %s", dr.String(), maxQ.String())))
			}
		}
		for name, dr := range item.DefaultRequest {
			if d, ok := item.Default[name]; ok && dr.Cmp(d) > 0 {
				errs = append(errs, field.Invalid(idx.Child("defaultRequest").Key(string(name)), dr.String(),
					fmt.Sprintf("default request value %s is greater than default limit value %s", dr.String(), d.String())))
			}
		}
	}
	return errs
}

func limitRangeResourceName(n corev1.ResourceName, fldPath *field.Path) field.ErrorList {
	return qualifiedName(string(n), fldPath)
}

func quotaResourceName(n corev1.ResourceName, fldPath *field.Path) field.ErrorList {
	return qualifiedName(string(n), fldPath)
}

func validateResourceQuota(q *corev1.ResourceQuota) field.ErrorList {
	errs := objectMeta(&q.ObjectMeta, true, apivalidation.NameIsDNSSubdomain)
	return append(errs, resourceQuotaSpec(&q.Spec, field.NewPath("spec"))...)
}

var quotaScopes = []corev1.ResourceQuotaScope{corev1.ResourceQuotaScopeTerminating, corev1.ResourceQuotaScopeNotTerminating,
	corev1.ResourceQuotaScopeBestEffort, corev1.ResourceQuotaScopeNotBestEffort, corev1.ResourceQuotaScopePriorityClass,
	corev1.ResourceQuotaScopeCrossNamespacePodAffinity, corev1.ResourceQuotaScopeVolumeAttributesClass}

func resourceQuotaSpec(s *corev1.ResourceQuotaSpec, fldPath *field.Path) field.ErrorList {
	errs := resourceList(s.Hard, fldPath.Child("hard"), quotaResourceName)
	for i, sc := range s.Scopes {
		ok := false
		for _, v := range quotaScopes {
			ok = ok || sc == v
		}
		if !ok {
			errs = append(errs, field.NotSupported(fldPath.Child("scopes").Index(i), sc, quotaScopes))
		}
	}
	return errs
}

func validateResourceQuotaUpdate(q, old *corev1.ResourceQuota) field.ErrorList {
	errs := metaUpdate(&q.ObjectMeta, &old.ObjectMeta)
	errs = append(errs, resourceQuotaSpec(&q.Spec, field.NewPath("spec"))...)
	if !apiequality.Semantic.DeepEqual(q.Spec.Scopes, old.Spec.Scopes) {
		errs = append(errs, field.Invalid(field.NewPath("spec", "scopes"), q.Spec.Scopes, immutableMsg))
	}
	return errs
}

func validateBinding(b *corev1.Binding) field.ErrorList {
	errs := objectMeta(&b.ObjectMeta, true, apivalidation.NameIsDNSSubdomain)
	if b.Target.Kind != "" && b.Target.Kind != "Node" {
		errs = append(errs, field.NotSupported(field.NewPath("target", "kind"), b.Target.Kind, []string{"Node", "<empty>"}))
	}
	if b.Target.Name == "" {
		errs = append(errs, field.Required(field.NewPath("target", "name"), ""))
	}
	return errs
}

// replicaCounts checks that every named status counter is non-negative,
// in name order so errors are deterministic.
func replicaCounts(fldPath *field.Path, counts map[string]int32) field.ErrorList {
	var errs field.ErrorList
	for _, name := range sets.List(sets.KeySet(counts)) {
		errs = append(errs, apivalidation.ValidateNonnegativeField(int64(counts[name]), fldPath.Child(name))...)
	}
	return errs
}
