package defaults

import (
	"reflect"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Values upstream uses for pod defaults.
const (
	defaultTerminationGracePeriodSeconds = int64(30)
	defaultSchedulerName                 = "default-scheduler"
	defaultTerminationMessagePath        = "/dev/termination-log"
	// defaultVolumeMode is 0644, the mode of files projected from secrets,
	// configmaps, the downward API and projected volumes.
	defaultVolumeMode = int32(0644)
	// defaultTokenExpirationSeconds is a projected service account token's
	// lifetime when the pod does not ask for one.
	defaultTokenExpirationSeconds = int64(3600)
)

// Pod applies upstream's defaults to a Pod: the pod-spec defaults shared
// with templates, plus the pod-only ones (enableServiceLinks, requests copied
// from limits, hostPort = containerPort on the host network).
func Pod(p *corev1.Pod) {
	podSpec(&p.Spec)
	// Only real pods get requests from limits: templates keep what the user
	// wrote so that a later change of the limit also changes the request.
	for i := range p.Spec.Containers {
		requestsFromLimits(&p.Spec.Containers[i].Resources)
	}
	for i := range p.Spec.InitContainers {
		requestsFromLimits(&p.Spec.InitContainers[i].Resources)
	}
	if p.Spec.Resources != nil {
		requestsFromLimits(p.Spec.Resources)
	}
	if p.Spec.EnableServiceLinks == nil {
		p.Spec.EnableServiceLinks = ptrTo(corev1.DefaultEnableServiceLinks)
	}
	if p.Spec.HostNetwork {
		// On the host network the container port is the host port; upstream
		// makes that explicit so the scheduler sees the port conflict.
		hostNetworkPorts(p.Spec.Containers)
		hostNetworkPorts(p.Spec.InitContainers)
	}
}

func hostNetworkPorts(cs []corev1.Container) {
	for i := range cs {
		for j := range cs[i].Ports {
			if cs[i].Ports[j].HostPort == 0 {
				cs[i].Ports[j].HostPort = cs[i].Ports[j].ContainerPort
			}
		}
	}
}

func requestsFromLimits(r *corev1.ResourceRequirements) {
	if len(r.Limits) == 0 {
		return
	}
	if r.Requests == nil {
		r.Requests = corev1.ResourceList{}
	}
	for name, q := range r.Limits {
		if _, ok := r.Requests[name]; !ok {
			r.Requests[name] = q.DeepCopy()
		}
	}
}

// podTemplateSpec applies the pod-spec defaults to a template; it is what
// every workload resource uses for its pod template.
func podTemplateSpec(t *corev1.PodTemplateSpec) {
	if t == nil {
		return
	}
	podSpec(&t.Spec)
}

func podSpec(s *corev1.PodSpec) {
	if s.DNSPolicy == "" {
		s.DNSPolicy = corev1.DNSClusterFirst
	}
	if s.RestartPolicy == "" {
		s.RestartPolicy = corev1.RestartPolicyAlways
	}
	if s.SecurityContext == nil {
		s.SecurityContext = &corev1.PodSecurityContext{}
	}
	if s.TerminationGracePeriodSeconds == nil {
		s.TerminationGracePeriodSeconds = ptrTo(defaultTerminationGracePeriodSeconds)
	}
	if s.SchedulerName == "" {
		s.SchedulerName = defaultSchedulerName
	}
	for i := range s.Volumes {
		volumeSource(&s.Volumes[i].VolumeSource, true)
	}
	for i := range s.InitContainers {
		container(&s.InitContainers[i])
	}
	for i := range s.Containers {
		container(&s.Containers[i])
	}
	for i := range s.EphemeralContainers {
		ephemeralContainer(&s.EphemeralContainers[i].EphemeralContainerCommon)
	}
}

func container(c *corev1.Container) {
	if c.ImagePullPolicy == "" {
		c.ImagePullPolicy = pullPolicy(c.Image)
	}
	if c.TerminationMessagePath == "" {
		c.TerminationMessagePath = defaultTerminationMessagePath
	}
	if c.TerminationMessagePolicy == "" {
		c.TerminationMessagePolicy = corev1.TerminationMessageReadFile
	}
	ports(c.Ports)
	env(c.Env)
	probe(c.LivenessProbe)
	probe(c.ReadinessProbe)
	probe(c.StartupProbe)
	lifecycle(c.Lifecycle)
}

// ephemeralContainer mirrors container for the ephemeral container type,
// which has the same fields under another name.
func ephemeralContainer(c *corev1.EphemeralContainerCommon) {
	if c.ImagePullPolicy == "" {
		c.ImagePullPolicy = pullPolicy(c.Image)
	}
	if c.TerminationMessagePath == "" {
		c.TerminationMessagePath = defaultTerminationMessagePath
	}
	if c.TerminationMessagePolicy == "" {
		c.TerminationMessagePolicy = corev1.TerminationMessageReadFile
	}
	ports(c.Ports)
	env(c.Env)
	probe(c.LivenessProbe)
	probe(c.ReadinessProbe)
	probe(c.StartupProbe)
	lifecycle(c.Lifecycle)
}

// pullPolicy is Always for an image without a tag or tagged ":latest" (the
// tag may move, so the node must re-check), IfNotPresent otherwise (a fixed
// tag or a digest).
func pullPolicy(image string) corev1.PullPolicy {
	if image == "" || strings.Contains(image, "@") {
		return corev1.PullIfNotPresent
	}
	last := image
	if i := strings.LastIndex(image, "/"); i >= 0 {
		last = image[i+1:]
	}
	// A ":" before the last "/" is a registry port, not a tag.
	tag := ""
	if i := strings.LastIndex(last, ":"); i >= 0 {
		tag = last[i+1:]
	}
	if tag == "" || tag == "latest" {
		return corev1.PullAlways
	}
	return corev1.PullIfNotPresent
}

func ports(ps []corev1.ContainerPort) {
	for i := range ps {
		if ps[i].Protocol == "" {
			ps[i].Protocol = corev1.ProtocolTCP
		}
	}
}

func env(es []corev1.EnvVar) {
	for i := range es {
		if es[i].ValueFrom != nil {
			fieldSelector(es[i].ValueFrom.FieldRef)
		}
	}
}

func fieldSelector(f *corev1.ObjectFieldSelector) {
	if f != nil && f.APIVersion == "" {
		f.APIVersion = "v1"
	}
}

func probe(p *corev1.Probe) {
	if p == nil {
		return
	}
	if p.TimeoutSeconds == 0 {
		p.TimeoutSeconds = 1
	}
	if p.PeriodSeconds == 0 {
		p.PeriodSeconds = 10
	}
	if p.SuccessThreshold == 0 {
		p.SuccessThreshold = 1
	}
	if p.FailureThreshold == 0 {
		p.FailureThreshold = 3
	}
	httpGet(p.HTTPGet)
	if p.GRPC != nil && p.GRPC.Service == nil {
		p.GRPC.Service = ptrTo("")
	}
}

func httpGet(h *corev1.HTTPGetAction) {
	if h == nil {
		return
	}
	if h.Path == "" {
		h.Path = "/"
	}
	if h.Scheme == "" {
		h.Scheme = corev1.URISchemeHTTP
	}
}

func lifecycle(l *corev1.Lifecycle) {
	if l == nil {
		return
	}
	for _, h := range []*corev1.LifecycleHandler{l.PostStart, l.PreStop} {
		if h != nil {
			httpGet(h.HTTPGet)
		}
	}
}

// volumeSource defaults one volume source. inPod is true for pod volumes,
// where a volume naming no source at all is an emptyDir (upstream's oldest
// default); persistent volumes have no such fallback.
func volumeSource(v *corev1.VolumeSource, inPod bool) {
	switch {
	case v.Secret != nil:
		if v.Secret.DefaultMode == nil {
			v.Secret.DefaultMode = ptrTo(defaultVolumeMode)
		}
	case v.ConfigMap != nil:
		if v.ConfigMap.DefaultMode == nil {
			v.ConfigMap.DefaultMode = ptrTo(defaultVolumeMode)
		}
	case v.DownwardAPI != nil:
		if v.DownwardAPI.DefaultMode == nil {
			v.DownwardAPI.DefaultMode = ptrTo(defaultVolumeMode)
		}
		for i := range v.DownwardAPI.Items {
			fieldSelector(v.DownwardAPI.Items[i].FieldRef)
		}
	case v.Projected != nil:
		if v.Projected.DefaultMode == nil {
			v.Projected.DefaultMode = ptrTo(defaultVolumeMode)
		}
		for i := range v.Projected.Sources {
			src := &v.Projected.Sources[i]
			if src.DownwardAPI != nil {
				for j := range src.DownwardAPI.Items {
					fieldSelector(src.DownwardAPI.Items[j].FieldRef)
				}
			}
			if src.ServiceAccountToken != nil && src.ServiceAccountToken.ExpirationSeconds == nil {
				src.ServiceAccountToken.ExpirationSeconds = ptrTo(defaultTokenExpirationSeconds)
			}
		}
	case v.HostPath != nil:
		if v.HostPath.Type == nil {
			v.HostPath.Type = ptrTo(corev1.HostPathUnset)
		}
	case v.ISCSI != nil:
		if v.ISCSI.ISCSIInterface == "" {
			v.ISCSI.ISCSIInterface = "default"
		}
	case v.Ephemeral != nil:
		if t := v.Ephemeral.VolumeClaimTemplate; t != nil {
			persistentVolumeClaimSpec(&t.Spec)
		}
	case inPod && isEmptyVolumeSource(v):
		v.EmptyDir = &corev1.EmptyDirVolumeSource{}
	}
}

// isEmptyVolumeSource reports whether no source is set. It compares with the
// zero value so that sources added to k8s.io/api later count as set.
func isEmptyVolumeSource(v *corev1.VolumeSource) bool {
	return reflect.DeepEqual(*v, corev1.VolumeSource{})
}

func persistentVolumeClaimSpec(s *corev1.PersistentVolumeClaimSpec) {
	if s.VolumeMode == nil {
		s.VolumeMode = ptrTo(corev1.PersistentVolumeFilesystem)
	}
}

func persistentVolumeClaim(c *corev1.PersistentVolumeClaim) {
	persistentVolumeClaimSpec(&c.Spec)
	if c.Status.Phase == "" {
		c.Status.Phase = corev1.ClaimPending
	}
}

func persistentVolume(pv *corev1.PersistentVolume) {
	if pv.Status.Phase == "" {
		pv.Status.Phase = corev1.VolumePending
	}
	if pv.Spec.PersistentVolumeReclaimPolicy == "" {
		pv.Spec.PersistentVolumeReclaimPolicy = corev1.PersistentVolumeReclaimRetain
	}
	if pv.Spec.VolumeMode == nil {
		pv.Spec.VolumeMode = ptrTo(corev1.PersistentVolumeFilesystem)
	}
	if hp := pv.Spec.HostPath; hp != nil && hp.Type == nil {
		hp.Type = ptrTo(corev1.HostPathUnset)
	}
}

func replicationController(rc *corev1.ReplicationController) {
	// The selector and the object's labels default to the template's
	// labels: an RC written as just a template selects its own pods.
	if rc.Spec.Template != nil && rc.Spec.Template.Labels != nil {
		labels := rc.Spec.Template.Labels
		if len(rc.Spec.Selector) == 0 {
			rc.Spec.Selector = copyMap(labels)
		}
		if len(rc.Labels) == 0 {
			rc.Labels = copyMap(labels)
		}
	}
	if rc.Spec.Replicas == nil {
		rc.Spec.Replicas = ptrTo(int32(1))
	}
	podTemplateSpec(rc.Spec.Template)
}

func copyMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func service(svc *corev1.Service) {
	spec := &svc.Spec
	if spec.SessionAffinity == "" {
		spec.SessionAffinity = corev1.ServiceAffinityNone
	}
	if spec.SessionAffinity == corev1.ServiceAffinityNone {
		spec.SessionAffinityConfig = nil
	}
	if spec.SessionAffinity == corev1.ServiceAffinityClientIP {
		if spec.SessionAffinityConfig == nil || spec.SessionAffinityConfig.ClientIP == nil || spec.SessionAffinityConfig.ClientIP.TimeoutSeconds == nil {
			spec.SessionAffinityConfig = &corev1.SessionAffinityConfig{
				ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: ptrTo(corev1.DefaultClientIPServiceAffinitySeconds)},
			}
		}
	}
	if spec.Type == "" {
		spec.Type = corev1.ServiceTypeClusterIP
	}
	for i := range spec.Ports {
		p := &spec.Ports[i]
		if p.Protocol == "" {
			p.Protocol = corev1.ProtocolTCP
		}
		// An unset targetPort means "the same number as port".
		if p.TargetPort.Type == intstr.Int && p.TargetPort.IntVal == 0 {
			p.TargetPort = intstr.FromInt32(p.Port)
		}
	}
	externallyAccessible := spec.Type == corev1.ServiceTypeLoadBalancer || spec.Type == corev1.ServiceTypeNodePort ||
		(spec.Type == corev1.ServiceTypeClusterIP && len(spec.ExternalIPs) > 0)
	if externallyAccessible && spec.ExternalTrafficPolicy == "" {
		spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyCluster
	}
	if spec.Type != corev1.ServiceTypeExternalName {
		if spec.InternalTrafficPolicy == nil {
			spec.InternalTrafficPolicy = ptrTo(corev1.ServiceInternalTrafficPolicyCluster)
		}
		// The IP allocator fills ipFamilies; the policy is defaulted here as
		// upstream's allocator does before allocating: headless services
		// without a selector take every family the cluster has.
		if spec.IPFamilyPolicy == nil {
			if spec.ClusterIP == corev1.ClusterIPNone && len(spec.Selector) == 0 {
				spec.IPFamilyPolicy = ptrTo(corev1.IPFamilyPolicyRequireDualStack)
			} else {
				spec.IPFamilyPolicy = ptrTo(corev1.IPFamilyPolicySingleStack)
			}
		}
	}
	if spec.Type == corev1.ServiceTypeLoadBalancer && spec.AllocateLoadBalancerNodePorts == nil {
		spec.AllocateLoadBalancerNodePorts = ptrTo(true)
	}
}

func namespace(ns *corev1.Namespace) {
	// Every namespace carries its own name as a label so that namespace
	// selectors can pick namespaces by name.
	if ns.Name != "" {
		if ns.Labels == nil {
			ns.Labels = map[string]string{}
		}
		ns.Labels[corev1.LabelMetadataName] = ns.Name
	}
	if ns.Status.Phase == "" {
		ns.Status.Phase = corev1.NamespaceActive
	}
}

func secret(s *corev1.Secret) {
	if s.Type == "" {
		s.Type = corev1.SecretTypeOpaque
	}
}

func node(n *corev1.Node) {
	// A node that reports only capacity can allocate all of it.
	if n.Status.Allocatable == nil && len(n.Status.Capacity) > 0 {
		n.Status.Allocatable = make(corev1.ResourceList, len(n.Status.Capacity))
		for k, v := range n.Status.Capacity {
			n.Status.Allocatable[k] = v.DeepCopy()
		}
	}
}

func endpoints(ep *corev1.Endpoints) {
	for i := range ep.Subsets {
		for j := range ep.Subsets[i].Ports {
			if ep.Subsets[i].Ports[j].Protocol == "" {
				ep.Subsets[i].Ports[j].Protocol = corev1.ProtocolTCP
			}
		}
	}
}

func limitRange(lr *corev1.LimitRange) {
	for i := range lr.Spec.Limits {
		item := &lr.Spec.Limits[i]
		if item.Type != corev1.LimitTypeContainer {
			continue
		}
		if item.Default == nil {
			item.Default = corev1.ResourceList{}
		}
		if item.DefaultRequest == nil {
			item.DefaultRequest = corev1.ResourceList{}
		}
		// The order matters and is upstream's: the default limit falls back
		// to max, then the default request to the default limit, then to min.
		for k, v := range item.Max {
			if _, ok := item.Default[k]; !ok {
				item.Default[k] = v.DeepCopy()
			}
		}
		for k, v := range item.Default {
			if _, ok := item.DefaultRequest[k]; !ok {
				item.DefaultRequest[k] = v.DeepCopy()
			}
		}
		for k, v := range item.Min {
			if _, ok := item.DefaultRequest[k]; !ok {
				item.DefaultRequest[k] = v.DeepCopy()
			}
		}
	}
}
