package validation

import (
	"fmt"
	"math"
	"path"
	"strings"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// fileModeErrorMsg is upstream's message for a bad volume file mode.
const fileModeErrorMsg = "must be a number between 0 and 0777 (octal), both inclusive"

// updatablePodSpecFields lists, in upstream's words, what a pod update may
// change; the Forbidden error quotes it verbatim.
var updatablePodSpecFields = []string{
	"`spec.containers[*].image`",
	"`spec.initContainers[*].image`",
	"`spec.activeDeadlineSeconds`",
	"`spec.tolerations` (only additions to existing tolerations)",
	"`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
}

func validatePod(p *corev1.Pod) field.ErrorList {
	errs := objectMeta(&p.ObjectMeta, true, apivalidation.NameIsDNSSubdomain)
	errs = append(errs, podSpec(&p.Spec, field.NewPath("spec"))...)
	return errs
}

func validatePodTemplate(t *corev1.PodTemplate) field.ErrorList {
	errs := objectMeta(&t.ObjectMeta, true, apivalidation.NameIsDNSSubdomain)
	return append(errs, podTemplateSpec(&t.Template, field.NewPath("template"))...)
}

// podTemplateSpec validates a pod template's labels, annotations and spec.
// Upstream reports template labels under "<path>.labels", not
// "<path>.metadata.labels", and so do we.
func podTemplateSpec(t *corev1.PodTemplateSpec, fldPath *field.Path) field.ErrorList {
	errs := metav1validation.ValidateLabels(t.Labels, fldPath.Child("labels"))
	errs = append(errs, apivalidation.ValidateAnnotations(t.Annotations, fldPath.Child("annotations"))...)
	return append(errs, podSpec(&t.Spec, fldPath.Child("spec"))...)
}

func podSpec(s *corev1.PodSpec, fldPath *field.Path) field.ErrorList {
	vols, errs := volumes(s.Volumes, fldPath.Child("volumes"))
	// Container names are unique across init, regular and ephemeral
	// containers because they share one namespace in the kubelet.
	names := sets.New[string]()
	errs = append(errs, containers(s.InitContainers, vols, names, true, fldPath.Child("initContainers"))...)
	if len(s.Containers) == 0 {
		errs = append(errs, field.Required(fldPath.Child("containers"), ""))
	}
	errs = append(errs, containers(s.Containers, vols, names, false, fldPath.Child("containers"))...)
	for i := range s.EphemeralContainers {
		p := fldPath.Child("ephemeralContainers").Index(i)
		c := corev1.Container(s.EphemeralContainers[i].EphemeralContainerCommon)
		errs = append(errs, containerCommon(&c, vols, names, p)...)
	}
	errs = append(errs, restartPolicy(s.RestartPolicy, fldPath.Child("restartPolicy"))...)
	errs = append(errs, dnsPolicy(s.DNSPolicy, fldPath.Child("dnsPolicy"))...)
	errs = append(errs, metav1validation.ValidateLabels(s.NodeSelector, fldPath.Child("nodeSelector"))...)
	if s.ServiceAccountName != "" {
		for _, msg := range apivalidation.ValidateServiceAccountName(s.ServiceAccountName, false) {
			errs = append(errs, field.Invalid(fldPath.Child("serviceAccountName"), s.ServiceAccountName, msg))
		}
	}
	if s.NodeName != "" {
		for _, msg := range apivalidation.NameIsDNSSubdomain(s.NodeName, false) {
			errs = append(errs, field.Invalid(fldPath.Child("nodeName"), s.NodeName, msg))
		}
	}
	if s.ActiveDeadlineSeconds != nil {
		v := *s.ActiveDeadlineSeconds
		if v < 1 || v > math.MaxInt32 {
			errs = append(errs, field.Invalid(fldPath.Child("activeDeadlineSeconds"), v, validation.InclusiveRangeError(1, math.MaxInt32)))
		}
	}
	if s.Hostname != "" {
		for _, msg := range validation.IsDNS1123Label(s.Hostname) {
			errs = append(errs, field.Invalid(fldPath.Child("hostname"), s.Hostname, msg))
		}
	}
	if s.Subdomain != "" {
		for _, msg := range validation.IsDNS1123Label(s.Subdomain) {
			errs = append(errs, field.Invalid(fldPath.Child("subdomain"), s.Subdomain, msg))
		}
	}
	if s.PriorityClassName != "" {
		for _, msg := range validation.IsDNS1123Subdomain(s.PriorityClassName) {
			errs = append(errs, field.Invalid(fldPath.Child("priorityClassName"), s.PriorityClassName, msg))
		}
	}
	errs = append(errs, tolerations(s.Tolerations, fldPath.Child("tolerations"))...)
	errs = append(errs, topologySpread(s.TopologySpreadConstraints, fldPath.Child("topologySpreadConstraints"))...)
	for i, g := range s.ReadinessGates {
		errs = append(errs, qualifiedName(string(g.ConditionType), fldPath.Child("readinessGates").Index(i).Child("conditionType"))...)
	}
	if s.HostNetwork {
		errs = append(errs, hostNetworkPorts(s.Containers, fldPath.Child("containers"))...)
		errs = append(errs, hostNetworkPorts(s.InitContainers, fldPath.Child("initContainers"))...)
	}
	if s.Overhead != nil {
		errs = append(errs, resourceList(s.Overhead, fldPath.Child("overhead"), containerResourceName)...)
	}
	return errs
}

// hostNetworkPorts enforces that on the host network a hostPort, when
// set, equals the containerPort: there is no NAT in between.
func hostNetworkPorts(cs []corev1.Container, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i := range cs {
		for j, p := range cs[i].Ports {
			if p.HostPort != 0 && p.HostPort != p.ContainerPort {
				errs = append(errs, field.Invalid(fldPath.Index(i).Child("ports").Index(j).Child("containerPort"),
					p.ContainerPort, "must match `hostPort` when `hostNetwork` is true"))
			}
		}
	}
	return errs
}

func qualifiedName(v string, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	for _, msg := range validation.IsQualifiedName(v) {
		errs = append(errs, field.Invalid(fldPath, v, msg))
	}
	return errs
}

func restartPolicy(p corev1.RestartPolicy, fldPath *field.Path) field.ErrorList {
	switch p {
	case corev1.RestartPolicyAlways, corev1.RestartPolicyOnFailure, corev1.RestartPolicyNever:
		return nil
	case "":
		return field.ErrorList{field.Required(fldPath, "")}
	}
	return field.ErrorList{field.NotSupported(fldPath, p, []corev1.RestartPolicy{
		corev1.RestartPolicyAlways, corev1.RestartPolicyOnFailure, corev1.RestartPolicyNever})}
}

func dnsPolicy(p corev1.DNSPolicy, fldPath *field.Path) field.ErrorList {
	switch p {
	case corev1.DNSClusterFirstWithHostNet, corev1.DNSClusterFirst, corev1.DNSDefault, corev1.DNSNone:
		return nil
	case "":
		return field.ErrorList{field.Required(fldPath, "")}
	}
	return field.ErrorList{field.NotSupported(fldPath, p, []corev1.DNSPolicy{
		corev1.DNSClusterFirstWithHostNet, corev1.DNSClusterFirst, corev1.DNSDefault, corev1.DNSNone})}
}

// volumes validates pod volumes and returns the set of their names, for
// the volume mounts to be checked against.
func volumes(vs []corev1.Volume, fldPath *field.Path) (sets.Set[string], field.ErrorList) {
	var errs field.ErrorList
	names := sets.New[string]()
	for i := range vs {
		v := &vs[i]
		idx := fldPath.Index(i)
		switch {
		case v.Name == "":
			errs = append(errs, field.Required(idx.Child("name"), ""))
		case names.Has(v.Name):
			errs = append(errs, field.Duplicate(idx.Child("name"), v.Name))
		default:
			for _, msg := range validation.IsDNS1123Label(v.Name) {
				errs = append(errs, field.Invalid(idx.Child("name"), v.Name, msg))
			}
		}
		if v.Name != "" {
			names.Insert(v.Name)
		}
		errs = append(errs, volumeSource(&v.VolumeSource, idx)...)
	}
	return names, errs
}

// volumeSource checks that exactly one source is set and validates the
// common ones.
func volumeSource(v *corev1.VolumeSource, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	n := 0
	// one counts a set source; the first is validated, any further one is
	// reported as upstream does.
	one := func(name string, set bool, check func() field.ErrorList) {
		if !set {
			return
		}
		n++
		if n > 1 {
			errs = append(errs, field.Forbidden(fldPath.Child(name), "may not specify more than 1 volume type"))
			return
		}
		if check != nil {
			errs = append(errs, check()...)
		}
	}
	one("hostPath", v.HostPath != nil, func() field.ErrorList {
		var e field.ErrorList
		if v.HostPath.Path == "" {
			e = append(e, field.Required(fldPath.Child("hostPath", "path"), ""))
		}
		if t := v.HostPath.Type; t != nil && !hostPathTypes.Has(*t) {
			e = append(e, field.NotSupported(fldPath.Child("hostPath", "type"), *t, sets.List(hostPathTypes)))
		}
		return e
	})
	one("emptyDir", v.EmptyDir != nil, func() field.ErrorList {
		if l := v.EmptyDir.SizeLimit; l != nil && l.Sign() < 0 {
			return field.ErrorList{field.Invalid(fldPath.Child("emptyDir", "sizeLimit"), l.String(), apivalidation.IsNegativeErrorMsg)}
		}
		return nil
	})
	one("secret", v.Secret != nil, func() field.ErrorList {
		p := fldPath.Child("secret")
		var e field.ErrorList
		if v.Secret.SecretName == "" {
			e = append(e, field.Required(p.Child("secretName"), ""))
		}
		e = append(e, fileMode(v.Secret.DefaultMode, p.Child("defaultMode"))...)
		return append(e, keyToPaths(v.Secret.Items, p.Child("items"))...)
	})
	one("configMap", v.ConfigMap != nil, func() field.ErrorList {
		p := fldPath.Child("configMap")
		var e field.ErrorList
		if v.ConfigMap.Name == "" {
			e = append(e, field.Required(p.Child("name"), ""))
		}
		e = append(e, fileMode(v.ConfigMap.DefaultMode, p.Child("defaultMode"))...)
		return append(e, keyToPaths(v.ConfigMap.Items, p.Child("items"))...)
	})
	one("persistentVolumeClaim", v.PersistentVolumeClaim != nil, func() field.ErrorList {
		if v.PersistentVolumeClaim.ClaimName == "" {
			return field.ErrorList{field.Required(fldPath.Child("persistentVolumeClaim", "claimName"), "")}
		}
		return nil
	})
	one("downwardAPI", v.DownwardAPI != nil, func() field.ErrorList {
		p := fldPath.Child("downwardAPI")
		e := fileMode(v.DownwardAPI.DefaultMode, p.Child("defaultMode"))
		for i, item := range v.DownwardAPI.Items {
			e = append(e, downwardAPIFile(item, p.Child("items").Index(i))...)
		}
		return e
	})
	one("projected", v.Projected != nil, func() field.ErrorList {
		p := fldPath.Child("projected")
		e := fileMode(v.Projected.DefaultMode, p.Child("defaultMode"))
		for i, src := range v.Projected.Sources {
			sp := p.Child("sources").Index(i)
			if src.Secret != nil {
				e = append(e, keyToPaths(src.Secret.Items, sp.Child("secret", "items"))...)
			}
			if src.ConfigMap != nil {
				e = append(e, keyToPaths(src.ConfigMap.Items, sp.Child("configMap", "items"))...)
			}
			if src.DownwardAPI != nil {
				for j, item := range src.DownwardAPI.Items {
					e = append(e, downwardAPIFile(item, sp.Child("downwardAPI", "items").Index(j))...)
				}
			}
			if t := src.ServiceAccountToken; t != nil {
				if t.ExpirationSeconds != nil && *t.ExpirationSeconds < 600 {
					e = append(e, field.Invalid(sp.Child("serviceAccountToken", "expirationSeconds"), *t.ExpirationSeconds,
						"may not specify a duration less than 10 minutes"))
				}
				if t.Path == "" {
					e = append(e, field.Required(sp.Child("serviceAccountToken", "path"), ""))
				}
			}
		}
		return e
	})
	one("nfs", v.NFS != nil, func() field.ErrorList {
		var e field.ErrorList
		if v.NFS.Server == "" {
			e = append(e, field.Required(fldPath.Child("nfs", "server"), ""))
		}
		if v.NFS.Path == "" {
			e = append(e, field.Required(fldPath.Child("nfs", "path"), ""))
		} else if !path.IsAbs(v.NFS.Path) {
			e = append(e, field.Invalid(fldPath.Child("nfs", "path"), v.NFS.Path, "must be an absolute path"))
		}
		return e
	})
	one("csi", v.CSI != nil, func() field.ErrorList {
		if v.CSI.Driver == "" {
			return field.ErrorList{field.Required(fldPath.Child("csi", "driver"), "")}
		}
		return nil
	})
	one("ephemeral", v.Ephemeral != nil, func() field.ErrorList {
		if v.Ephemeral.VolumeClaimTemplate == nil {
			return field.ErrorList{field.Required(fldPath.Child("ephemeral", "volumeClaimTemplate"), "")}
		}
		return persistentVolumeClaimSpec(&v.Ephemeral.VolumeClaimTemplate.Spec, fldPath.Child("ephemeral", "volumeClaimTemplate", "spec"))
	})
	one("image", v.Image != nil, func() field.ErrorList {
		if v.Image.Reference == "" {
			return field.ErrorList{field.Required(fldPath.Child("image", "reference"), "")}
		}
		return nil
	})
	// Legacy in-tree sources are accepted and counted but not inspected:
	// Skiff's kubelet does not mount them.
	for _, set := range []bool{v.GCEPersistentDisk != nil, v.AWSElasticBlockStore != nil, v.GitRepo != nil,
		v.ISCSI != nil, v.Glusterfs != nil, v.RBD != nil, v.FlexVolume != nil, v.Cinder != nil, v.CephFS != nil,
		v.Flocker != nil, v.FC != nil, v.AzureFile != nil, v.VsphereVolume != nil, v.Quobyte != nil, v.AzureDisk != nil,
		v.PhotonPersistentDisk != nil, v.PortworxVolume != nil, v.ScaleIO != nil, v.StorageOS != nil} {
		if set {
			n++
		}
	}
	if n == 0 {
		errs = append(errs, field.Required(fldPath, "must specify a volume type"))
	}
	return errs
}

var hostPathTypes = sets.New(corev1.HostPathUnset, corev1.HostPathDirectoryOrCreate, corev1.HostPathDirectory,
	corev1.HostPathFileOrCreate, corev1.HostPathFile, corev1.HostPathSocket, corev1.HostPathCharDev, corev1.HostPathBlockDev)

func fileMode(m *int32, fldPath *field.Path) field.ErrorList {
	if m != nil && (*m > 0777 || *m < 0) {
		return field.ErrorList{field.Invalid(fldPath, *m, fileModeErrorMsg)}
	}
	return nil
}

func keyToPaths(items []corev1.KeyToPath, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i, kp := range items {
		p := fldPath.Index(i)
		if kp.Key == "" {
			errs = append(errs, field.Required(p.Child("key"), ""))
		}
		if kp.Path == "" {
			errs = append(errs, field.Required(p.Child("path"), ""))
		}
		errs = append(errs, localDescendingPath(kp.Path, p.Child("path"))...)
		errs = append(errs, fileMode(kp.Mode, p.Child("mode"))...)
	}
	return errs
}

// localDescendingPath rejects absolute paths and ".." elements, which
// would let a projected file escape its volume.
func localDescendingPath(p string, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	if path.IsAbs(p) {
		errs = append(errs, field.Invalid(fldPath, p, "must be a relative path"))
	}
	for _, part := range strings.Split(p, "/") {
		if part == ".." {
			errs = append(errs, field.Invalid(fldPath, p, "must not contain '..'"))
			break
		}
	}
	return errs
}

func downwardAPIFile(f corev1.DownwardAPIVolumeFile, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	if f.Path == "" {
		errs = append(errs, field.Required(fldPath.Child("path"), ""))
	}
	errs = append(errs, localDescendingPath(f.Path, fldPath.Child("path"))...)
	errs = append(errs, fileMode(f.Mode, fldPath.Child("mode"))...)
	switch {
	case f.FieldRef != nil && f.ResourceFieldRef != nil:
		errs = append(errs, field.Invalid(fldPath, "resource", "fieldRef and resourceFieldRef can not be specified simultaneously"))
	case f.FieldRef != nil:
		errs = append(errs, objectFieldSelector(f.FieldRef, volumeFieldPaths, fldPath.Child("fieldRef"))...)
	case f.ResourceFieldRef != nil:
		errs = append(errs, resourceFieldSelector(f.ResourceFieldRef, false, fldPath.Child("resourceFieldRef"))...)
	default:
		errs = append(errs, field.Required(fldPath, "one of fieldRef and resourceFieldRef is required"))
	}
	return errs
}

// Field paths the downward API can expose, as upstream lists them.
var (
	volumeFieldPaths = []string{"metadata.annotations", "metadata.labels", "metadata.name", "metadata.namespace", "metadata.uid"}
	envFieldPaths    = []string{"metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName", "spec.serviceAccountName",
		"status.hostIP", "status.hostIPs", "status.podIP", "status.podIPs"}
)

func objectFieldSelector(s *corev1.ObjectFieldSelector, allowed []string, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	if s.APIVersion == "" {
		errs = append(errs, field.Required(fldPath.Child("apiVersion"), ""))
		return errs
	}
	if s.FieldPath == "" {
		errs = append(errs, field.Required(fldPath.Child("fieldPath"), ""))
		return errs
	}
	if s.APIVersion != "v1" {
		errs = append(errs, field.Invalid(fldPath.Child("apiVersion"), s.APIVersion, "unsupported API version"))
		return errs
	}
	fp := s.FieldPath
	// metadata.labels['key'] and metadata.annotations['key'] select one key.
	for _, prefix := range []string{"metadata.labels", "metadata.annotations"} {
		if strings.HasPrefix(fp, prefix+"['") && strings.HasSuffix(fp, "']") {
			key := strings.TrimSuffix(strings.TrimPrefix(fp, prefix+"['"), "']")
			for _, msg := range validation.IsQualifiedName(strings.ToLower(key)) {
				errs = append(errs, field.Invalid(fldPath.Child("fieldPath"), fp, fmt.Sprintf("invalid key: %s", msg)))
			}
			return errs
		}
	}
	for _, a := range allowed {
		if fp == a {
			return errs
		}
	}
	return append(errs, field.NotSupported(fldPath.Child("fieldPath"), fp, allowed))
}

var resourceFieldRefs = sets.New("limits.cpu", "limits.memory", "limits.ephemeral-storage",
	"requests.cpu", "requests.memory", "requests.ephemeral-storage")

func resourceFieldSelector(s *corev1.ResourceFieldSelector, inEnv bool, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	if !inEnv && s.ContainerName == "" {
		errs = append(errs, field.Required(fldPath.Child("containerName"), ""))
	}
	switch {
	case s.Resource == "":
		errs = append(errs, field.Required(fldPath.Child("resource"), ""))
	case resourceFieldRefs.Has(s.Resource),
		strings.HasPrefix(s.Resource, "limits.hugepages-"), strings.HasPrefix(s.Resource, "requests.hugepages-"):
	default:
		errs = append(errs, field.NotSupported(fldPath.Child("resource"), s.Resource, sets.List(resourceFieldRefs)))
	}
	return errs
}

// containers validates init or regular containers; names collects every
// container name seen so far in the pod.
func containers(cs []corev1.Container, vols, names sets.Set[string], init bool, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i := range cs {
		c := &cs[i]
		idx := fldPath.Index(i)
		errs = append(errs, containerCommon(c, vols, names, idx)...)
		if c.RestartPolicy != nil {
			if !init {
				errs = append(errs, field.Forbidden(idx.Child("restartPolicy"), "may not be set for non-init containers"))
			} else if *c.RestartPolicy != corev1.ContainerRestartPolicyAlways {
				errs = append(errs, field.NotSupported(idx.Child("restartPolicy"), *c.RestartPolicy,
					[]corev1.ContainerRestartPolicy{corev1.ContainerRestartPolicyAlways}))
			}
		}
		sidecar := init && c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways
		// Plain init containers run to completion, so probes and lifecycle
		// hooks make no sense for them; sidecars are long-running.
		if init && !sidecar {
			if c.Lifecycle != nil {
				errs = append(errs, field.Forbidden(idx.Child("lifecycle"), "may not be set for init containers without restartPolicy=Always"))
			}
			if c.LivenessProbe != nil {
				errs = append(errs, field.Forbidden(idx.Child("livenessProbe"), "may not be set for init containers without restartPolicy=Always"))
			}
			if c.ReadinessProbe != nil {
				errs = append(errs, field.Forbidden(idx.Child("readinessProbe"), "may not be set for init containers without restartPolicy=Always"))
			}
			if c.StartupProbe != nil {
				errs = append(errs, field.Forbidden(idx.Child("startupProbe"), "may not be set for init containers without restartPolicy=Always"))
			}
		}
		if !init || sidecar {
			errs = append(errs, probe(c.LivenessProbe, true, idx.Child("livenessProbe"))...)
			errs = append(errs, probe(c.ReadinessProbe, false, idx.Child("readinessProbe"))...)
			errs = append(errs, probe(c.StartupProbe, true, idx.Child("startupProbe"))...)
			errs = append(errs, lifecycle(c.Lifecycle, idx.Child("lifecycle"))...)
		}
	}
	return errs
}

// containerCommon validates what every kind of container shares.
func containerCommon(c *corev1.Container, vols, names sets.Set[string], idx *field.Path) field.ErrorList {
	var errs field.ErrorList
	switch {
	case c.Name == "":
		errs = append(errs, field.Required(idx.Child("name"), ""))
	case names.Has(c.Name):
		errs = append(errs, field.Duplicate(idx.Child("name"), c.Name))
	default:
		for _, msg := range validation.IsDNS1123Label(c.Name) {
			errs = append(errs, field.Invalid(idx.Child("name"), c.Name, msg))
		}
	}
	names.Insert(c.Name)
	if c.Image == "" {
		errs = append(errs, field.Required(idx.Child("image"), ""))
	} else if c.Image != strings.TrimSpace(c.Image) {
		errs = append(errs, field.Invalid(idx.Child("image"), c.Image, "must not have leading or trailing whitespace"))
	}
	errs = append(errs, containerPorts(c.Ports, idx.Child("ports"))...)
	errs = append(errs, envVars(c.Env, idx.Child("env"))...)
	errs = append(errs, envFrom(c.EnvFrom, idx.Child("envFrom"))...)
	errs = append(errs, volumeMounts(c.VolumeMounts, vols, idx.Child("volumeMounts"))...)
	errs = append(errs, resourceRequirements(&c.Resources, idx.Child("resources"))...)
	switch c.TerminationMessagePolicy {
	case corev1.TerminationMessageReadFile, corev1.TerminationMessageFallbackToLogsOnError:
	case "":
		errs = append(errs, field.Required(idx.Child("terminationMessagePolicy"), "must be 'File' or 'FallbackToLogsOnError'"))
	default:
		errs = append(errs, field.Invalid(idx.Child("terminationMessagePolicy"), c.TerminationMessagePolicy, "must be 'File' or 'FallbackToLogsOnError'"))
	}
	switch c.ImagePullPolicy {
	case corev1.PullAlways, corev1.PullIfNotPresent, corev1.PullNever:
	case "":
		errs = append(errs, field.Required(idx.Child("imagePullPolicy"), ""))
	default:
		errs = append(errs, field.NotSupported(idx.Child("imagePullPolicy"), c.ImagePullPolicy,
			[]corev1.PullPolicy{corev1.PullAlways, corev1.PullIfNotPresent, corev1.PullNever}))
	}
	return errs
}

var supportedProtocols = []corev1.Protocol{corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP}

func protocol(p corev1.Protocol, fldPath *field.Path) field.ErrorList {
	switch p {
	case corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP:
		return nil
	case "":
		return field.ErrorList{field.Required(fldPath, "")}
	}
	return field.ErrorList{field.NotSupported(fldPath, p, supportedProtocols)}
}

func portNum(port int32, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	for _, msg := range validation.IsValidPortNum(int(port)) {
		errs = append(errs, field.Invalid(fldPath, port, msg))
	}
	return errs
}

func containerPorts(ps []corev1.ContainerPort, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	names := sets.New[string]()
	for i, p := range ps {
		idx := fldPath.Index(i)
		if p.Name != "" {
			for _, msg := range validation.IsValidPortName(p.Name) {
				errs = append(errs, field.Invalid(idx.Child("name"), p.Name, msg))
			}
			if names.Has(p.Name) {
				errs = append(errs, field.Duplicate(idx.Child("name"), p.Name))
			}
			names.Insert(p.Name)
		}
		if p.ContainerPort == 0 {
			errs = append(errs, field.Required(idx.Child("containerPort"), ""))
		} else {
			errs = append(errs, portNum(p.ContainerPort, idx.Child("containerPort"))...)
		}
		if p.HostPort != 0 {
			errs = append(errs, portNum(p.HostPort, idx.Child("hostPort"))...)
		}
		errs = append(errs, protocol(p.Protocol, idx.Child("protocol"))...)
	}
	return errs
}

func envVars(es []corev1.EnvVar, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i, e := range es {
		idx := fldPath.Index(i)
		if e.Name == "" {
			errs = append(errs, field.Required(idx.Child("name"), ""))
		} else {
			for _, msg := range validation.IsRelaxedEnvVarName(e.Name) {
				errs = append(errs, field.Invalid(idx.Child("name"), e.Name, msg))
			}
		}
		if e.ValueFrom == nil {
			continue
		}
		vf := e.ValueFrom
		vp := idx.Child("valueFrom")
		n := 0
		if vf.FieldRef != nil {
			n++
			errs = append(errs, objectFieldSelector(vf.FieldRef, envFieldPaths, vp.Child("fieldRef"))...)
		}
		if vf.ResourceFieldRef != nil {
			n++
			errs = append(errs, resourceFieldSelector(vf.ResourceFieldRef, true, vp.Child("resourceFieldRef"))...)
		}
		if vf.ConfigMapKeyRef != nil {
			n++
			errs = append(errs, keySelector(vf.ConfigMapKeyRef.Name, vf.ConfigMapKeyRef.Key, vp.Child("configMapKeyRef"))...)
		}
		if vf.SecretKeyRef != nil {
			n++
			errs = append(errs, keySelector(vf.SecretKeyRef.Name, vf.SecretKeyRef.Key, vp.Child("secretKeyRef"))...)
		}
		if vf.FileKeyRef != nil {
			n++
		}
		switch {
		case n == 0:
			errs = append(errs, field.Invalid(vp, "", "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`"))
		case n > 1:
			errs = append(errs, field.Invalid(vp, "", "may not have more than one field specified at a time"))
		case e.Value != "":
			errs = append(errs, field.Invalid(vp, "", "may not be specified when `value` is not empty"))
		}
	}
	return errs
}

func keySelector(name, key string, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	if name == "" {
		errs = append(errs, field.Required(fldPath.Child("name"), ""))
	}
	if key == "" {
		errs = append(errs, field.Required(fldPath.Child("key"), ""))
	} else {
		for _, msg := range validation.IsConfigMapKey(key) {
			errs = append(errs, field.Invalid(fldPath.Child("key"), key, msg))
		}
	}
	return errs
}

func envFrom(es []corev1.EnvFromSource, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i, e := range es {
		idx := fldPath.Index(i)
		if e.Prefix != "" {
			for _, msg := range validation.IsRelaxedEnvVarName(e.Prefix) {
				errs = append(errs, field.Invalid(idx.Child("prefix"), e.Prefix, msg))
			}
		}
		n := 0
		if e.ConfigMapRef != nil {
			n++
			if e.ConfigMapRef.Name == "" {
				errs = append(errs, field.Required(idx.Child("configMapRef", "name"), ""))
			}
		}
		if e.SecretRef != nil {
			n++
			if e.SecretRef.Name == "" {
				errs = append(errs, field.Required(idx.Child("secretRef", "name"), ""))
			}
		}
		switch {
		case n == 0:
			errs = append(errs, field.Invalid(idx, "", "must specify one of: `configMapRef` or `secretRef`"))
		case n > 1:
			errs = append(errs, field.Invalid(idx, "", "may not have more than one field specified at a time"))
		}
	}
	return errs
}

func volumeMounts(ms []corev1.VolumeMount, vols sets.Set[string], fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	paths := sets.New[string]()
	for i, m := range ms {
		idx := fldPath.Index(i)
		if m.Name == "" {
			errs = append(errs, field.Required(idx.Child("name"), ""))
		} else if !vols.Has(m.Name) {
			errs = append(errs, field.NotFound(idx.Child("name"), m.Name))
		}
		if m.MountPath == "" {
			errs = append(errs, field.Required(idx.Child("mountPath"), ""))
		} else if paths.Has(m.MountPath) {
			errs = append(errs, field.Invalid(idx.Child("mountPath"), m.MountPath, "must be unique"))
		}
		paths.Insert(m.MountPath)
		if m.SubPath != "" {
			errs = append(errs, localDescendingPath(m.SubPath, idx.Child("subPath"))...)
		}
		if m.SubPath != "" && m.SubPathExpr != "" {
			errs = append(errs, field.Invalid(idx.Child("subPathExpr"), m.SubPathExpr, "subPathExpr and subPath are mutually exclusive"))
		}
	}
	return errs
}

func probe(p *corev1.Probe, successMustBeOne bool, fldPath *field.Path) field.ErrorList {
	if p == nil {
		return nil
	}
	errs := handler(&p.ProbeHandler, fldPath)
	errs = append(errs, apivalidation.ValidateNonnegativeField(int64(p.InitialDelaySeconds), fldPath.Child("initialDelaySeconds"))...)
	errs = append(errs, apivalidation.ValidateNonnegativeField(int64(p.TimeoutSeconds), fldPath.Child("timeoutSeconds"))...)
	errs = append(errs, apivalidation.ValidateNonnegativeField(int64(p.PeriodSeconds), fldPath.Child("periodSeconds"))...)
	errs = append(errs, apivalidation.ValidateNonnegativeField(int64(p.SuccessThreshold), fldPath.Child("successThreshold"))...)
	errs = append(errs, apivalidation.ValidateNonnegativeField(int64(p.FailureThreshold), fldPath.Child("failureThreshold"))...)
	if p.TerminationGracePeriodSeconds != nil && *p.TerminationGracePeriodSeconds <= 0 {
		errs = append(errs, field.Invalid(fldPath.Child("terminationGracePeriodSeconds"), *p.TerminationGracePeriodSeconds, "must be greater than 0"))
	}
	// Liveness and startup probes end at the first success.
	if successMustBeOne && p.SuccessThreshold != 1 {
		errs = append(errs, field.Invalid(fldPath.Child("successThreshold"), p.SuccessThreshold, "must be 1"))
	}
	return errs
}

func handler(h *corev1.ProbeHandler, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	n := 0
	add := func(name string, set bool, check func() field.ErrorList) {
		if !set {
			return
		}
		n++
		if n > 1 {
			errs = append(errs, field.Forbidden(fldPath.Child(name), "may not specify more than 1 handler type"))
			return
		}
		errs = append(errs, check()...)
	}
	add("exec", h.Exec != nil, func() field.ErrorList { return execAction(h.Exec, fldPath.Child("exec")) })
	add("httpGet", h.HTTPGet != nil, func() field.ErrorList { return httpGetAction(h.HTTPGet, fldPath.Child("httpGet")) })
	add("tcpSocket", h.TCPSocket != nil, func() field.ErrorList {
		return portNumOrName(h.TCPSocket.Port, fldPath.Child("tcpSocket", "port"))
	})
	add("grpc", h.GRPC != nil, func() field.ErrorList { return portNum(h.GRPC.Port, fldPath.Child("grpc", "port")) })
	if n == 0 {
		errs = append(errs, field.Required(fldPath, "must specify a handler type"))
	}
	return errs
}

func lifecycle(l *corev1.Lifecycle, fldPath *field.Path) field.ErrorList {
	if l == nil {
		return nil
	}
	var errs field.ErrorList
	for name, h := range map[string]*corev1.LifecycleHandler{"postStart": l.PostStart, "preStop": l.PreStop} {
		if h == nil {
			continue
		}
		p := fldPath.Child(name)
		n := 0
		if h.Exec != nil {
			n++
			errs = append(errs, execAction(h.Exec, p.Child("exec"))...)
		}
		if h.HTTPGet != nil {
			n++
			errs = append(errs, httpGetAction(h.HTTPGet, p.Child("httpGet"))...)
		}
		if h.TCPSocket != nil {
			n++
			errs = append(errs, portNumOrName(h.TCPSocket.Port, p.Child("tcpSocket", "port"))...)
		}
		if h.Sleep != nil {
			n++
			if h.Sleep.Seconds < 0 {
				errs = append(errs, field.Invalid(p.Child("sleep", "seconds"), h.Sleep.Seconds, "must be non-negative"))
			}
		}
		if n == 0 {
			errs = append(errs, field.Required(p, "must specify a handler type"))
		} else if n > 1 {
			errs = append(errs, field.Forbidden(p, "may not specify more than 1 handler type"))
		}
	}
	return errs
}

func execAction(e *corev1.ExecAction, fldPath *field.Path) field.ErrorList {
	if len(e.Command) == 0 {
		return field.ErrorList{field.Required(fldPath.Child("command"), "")}
	}
	return nil
}

func httpGetAction(h *corev1.HTTPGetAction, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	if h.Path == "" {
		errs = append(errs, field.Required(fldPath.Child("path"), ""))
	}
	errs = append(errs, portNumOrName(h.Port, fldPath.Child("port"))...)
	switch h.Scheme {
	case corev1.URISchemeHTTP, corev1.URISchemeHTTPS:
	default:
		errs = append(errs, field.NotSupported(fldPath.Child("scheme"), h.Scheme, []corev1.URIScheme{corev1.URISchemeHTTP, corev1.URISchemeHTTPS}))
	}
	for i, hdr := range h.HTTPHeaders {
		for _, msg := range validation.IsHTTPHeaderName(hdr.Name) {
			errs = append(errs, field.Invalid(fldPath.Child("httpHeaders").Index(i).Child("name"), hdr.Name, msg))
		}
	}
	return errs
}

// portNumOrName validates a port given as a number or as a named port.
func portNumOrName(port intstr.IntOrString, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	switch port.Type {
	case intstr.Int:
		for _, msg := range validation.IsValidPortNum(port.IntValue()) {
			errs = append(errs, field.Invalid(fldPath, port.IntValue(), msg))
		}
	case intstr.String:
		for _, msg := range validation.IsValidPortName(port.StrVal) {
			errs = append(errs, field.Invalid(fldPath, port.StrVal, msg))
		}
	default:
		errs = append(errs, field.InternalError(fldPath, fmt.Errorf("unknown type: %v", port.Type)))
	}
	return errs
}

func tolerations(ts []corev1.Toleration, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i, t := range ts {
		idx := fldPath.Index(i)
		if t.Key != "" {
			errs = append(errs, metav1validation.ValidateLabelName(t.Key, idx.Child("key"))...)
		}
		if t.Key == "" && t.Operator != corev1.TolerationOpExists {
			errs = append(errs, field.Invalid(idx.Child("operator"), t.Operator,
				"operator must be Exists when `key` is empty, which means \"match all values and all keys\""))
		}
		if t.TolerationSeconds != nil && t.Effect != corev1.TaintEffectNoExecute {
			errs = append(errs, field.Invalid(idx.Child("effect"), t.Effect, "effect must be 'NoExecute' when `tolerationSeconds` is set"))
		}
		switch t.Operator {
		case corev1.TolerationOpEqual, "":
			for _, msg := range validation.IsValidLabelValue(t.Value) {
				errs = append(errs, field.Invalid(idx.Child("operator"), t.Value, msg))
			}
		case corev1.TolerationOpExists:
			if t.Value != "" {
				errs = append(errs, field.Invalid(idx.Child("operator"), t.Value, "value must be empty when `operator` is 'Exists'"))
			}
		default:
			errs = append(errs, field.NotSupported(idx.Child("operator"), t.Operator,
				[]corev1.TolerationOperator{corev1.TolerationOpEqual, corev1.TolerationOpExists}))
		}
		if t.Effect != "" {
			errs = append(errs, taintEffect(t.Effect, idx.Child("effect"))...)
		}
	}
	return errs
}

func taintEffect(e corev1.TaintEffect, fldPath *field.Path) field.ErrorList {
	switch e {
	case corev1.TaintEffectNoSchedule, corev1.TaintEffectPreferNoSchedule, corev1.TaintEffectNoExecute:
		return nil
	}
	return field.ErrorList{field.NotSupported(fldPath, e, []corev1.TaintEffect{
		corev1.TaintEffectNoSchedule, corev1.TaintEffectPreferNoSchedule, corev1.TaintEffectNoExecute})}
}

func topologySpread(cs []corev1.TopologySpreadConstraint, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i, c := range cs {
		idx := fldPath.Index(i)
		if c.MaxSkew <= 0 {
			errs = append(errs, field.Invalid(idx.Child("maxSkew"), c.MaxSkew, "must be greater than zero"))
		}
		if c.TopologyKey == "" {
			errs = append(errs, field.Required(idx.Child("topologyKey"), "can not be empty"))
		} else {
			errs = append(errs, metav1validation.ValidateLabelName(c.TopologyKey, idx.Child("topologyKey"))...)
		}
		switch c.WhenUnsatisfiable {
		case corev1.DoNotSchedule, corev1.ScheduleAnyway:
		default:
			errs = append(errs, field.NotSupported(idx.Child("whenUnsatisfiable"), c.WhenUnsatisfiable,
				[]corev1.UnsatisfiableConstraintAction{corev1.DoNotSchedule, corev1.ScheduleAnyway}))
		}
		errs = append(errs, metav1validation.ValidateLabelSelector(c.LabelSelector, metav1validation.LabelSelectorValidationOptions{}, idx.Child("labelSelector"))...)
	}
	return errs
}

// nativeResources are the resource names a container may request without
// a domain prefix.
var nativeResources = sets.New[corev1.ResourceName](corev1.ResourceCPU, corev1.ResourceMemory, corev1.ResourceEphemeralStorage)

func isNativeResource(n corev1.ResourceName) bool {
	return !strings.Contains(string(n), "/") || strings.Contains(string(n), "kubernetes.io/")
}

// containerResourceName validates a resource name in requests or limits.
func containerResourceName(n corev1.ResourceName, fldPath *field.Path) field.ErrorList {
	errs := qualifiedName(string(n), fldPath)
	if len(errs) > 0 {
		return errs
	}
	if isNativeResource(n) && !nativeResources.Has(n) && !strings.HasPrefix(string(n), corev1.ResourceHugePagesPrefix) {
		errs = append(errs, field.Invalid(fldPath, n, "must be a standard resource for containers"))
	}
	return errs
}

// resourceList validates the names and the non-negativity of quantities.
func resourceList(l corev1.ResourceList, fldPath *field.Path, nameFn func(corev1.ResourceName, *field.Path) field.ErrorList) field.ErrorList {
	var errs field.ErrorList
	for _, name := range sets.List(sets.KeySet(l)) {
		q := l[name]
		p := fldPath.Key(string(name))
		errs = append(errs, nameFn(name, p)...)
		if q.Sign() < 0 {
			errs = append(errs, field.Invalid(p, q.String(), apivalidation.IsNegativeErrorMsg))
		}
	}
	return errs
}

func resourceRequirements(r *corev1.ResourceRequirements, fldPath *field.Path) field.ErrorList {
	limPath, reqPath := fldPath.Child("limits"), fldPath.Child("requests")
	errs := resourceList(r.Limits, limPath, containerResourceName)
	errs = append(errs, resourceList(r.Requests, reqPath, containerResourceName)...)
	for _, name := range sets.List(sets.KeySet(r.Requests)) {
		req := r.Requests[name]
		lim, hasLimit := r.Limits[name]
		switch {
		case hasLimit && isNativeResource(name) && req.Cmp(lim) > 0:
			errs = append(errs, field.Invalid(reqPath.Key(string(name)), req.String(),
				fmt.Sprintf("must be less than or equal to %s limit of %s", name, lim.String())))
		case !isNativeResource(name) && !hasLimit:
			// Extended resources cannot be overcommitted, so the limit
			// must be given and equal to the request.
			errs = append(errs, field.Required(limPath, "Limit must be set for non overcommitable resources"))
		case !isNativeResource(name) && req.Cmp(lim) != 0:
			errs = append(errs, field.Invalid(reqPath.Key(string(name)), req.String(),
				fmt.Sprintf("must be equal to %s limit of %s", name, lim.String())))
		}
	}
	return errs
}

// validatePodUpdate enforces that a pod's spec is immutable except for the
// fields upstream lets users change, then validates the new pod.
func validatePodUpdate(p, old *corev1.Pod) field.ErrorList {
	specPath := field.NewPath("spec")
	errs := metaUpdate(&p.ObjectMeta, &old.ObjectMeta)
	errs = append(errs, podSpec(&p.Spec, specPath)...)

	if old.Spec.ActiveDeadlineSeconds != nil {
		adPath := specPath.Child("activeDeadlineSeconds")
		switch {
		case p.Spec.ActiveDeadlineSeconds == nil:
			errs = append(errs, field.Invalid(adPath, p.Spec.ActiveDeadlineSeconds, "must not update from a positive integer to nil value"))
		case *p.Spec.ActiveDeadlineSeconds > *old.Spec.ActiveDeadlineSeconds:
			errs = append(errs, field.Invalid(adPath, *p.Spec.ActiveDeadlineSeconds, "must be less than or equal to previous value"))
		}
	}
	if len(p.Spec.Containers) != len(old.Spec.Containers) || len(p.Spec.InitContainers) != len(old.Spec.InitContainers) {
		// The munging below copies fields index by index; with a different
		// number of containers the specs differ anyway.
		return append(errs, podSpecForbidden(&old.Spec, &p.Spec, specPath))
	}

	// Copy the updatable fields from the new spec onto a copy of the old
	// one: if the result equals the new spec, only allowed fields changed.
	munged := old.Spec.DeepCopy()
	for i := range munged.Containers {
		munged.Containers[i].Image = p.Spec.Containers[i].Image
	}
	for i := range munged.InitContainers {
		munged.InitContainers[i].Image = p.Spec.InitContainers[i].Image
	}
	munged.ActiveDeadlineSeconds = p.Spec.ActiveDeadlineSeconds
	if tolerationsOnlyAdded(old.Spec.Tolerations, p.Spec.Tolerations) {
		munged.Tolerations = p.Spec.Tolerations
	}
	if g := old.Spec.TerminationGracePeriodSeconds; g != nil && *g < 0 &&
		p.Spec.TerminationGracePeriodSeconds != nil && *p.Spec.TerminationGracePeriodSeconds == 1 {
		munged.TerminationGracePeriodSeconds = p.Spec.TerminationGracePeriodSeconds
	}
	// Scheduling gates may only be removed, and only before scheduling.
	if len(p.Spec.SchedulingGates) <= len(old.Spec.SchedulingGates) && old.Spec.NodeName == "" {
		munged.SchedulingGates = p.Spec.SchedulingGates
	}
	if !apiequality.Semantic.DeepEqual(*munged, p.Spec) {
		errs = append(errs, podSpecForbidden(munged, &p.Spec, specPath))
	}
	return errs
}

func podSpecForbidden(old, new *corev1.PodSpec, specPath *field.Path) *field.Error {
	// The diff is upstream's too: without it users cannot tell which of the
	// many pod fields they changed.
	return field.Forbidden(specPath, fmt.Sprintf("pod updates may not change fields other than %s\n%v",
		strings.Join(updatablePodSpecFields, ","), cmp.Diff(*old, *new)))
}

// tolerationsOnlyAdded reports whether every old toleration is still in
// new (tolerationSeconds may shrink), i.e. the update only added some.
func tolerationsOnlyAdded(old, new []corev1.Toleration) bool {
	for _, o := range old {
		found := false
		for _, n := range new {
			if o.Key == n.Key && o.Operator == n.Operator && o.Value == n.Value && o.Effect == n.Effect {
				if o.TolerationSeconds == nil || (n.TolerationSeconds != nil && *n.TolerationSeconds <= *o.TolerationSeconds) {
					found = true
					break
				}
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// podStatus validates the status of a pod status update.
func podStatus(p *corev1.Pod) field.ErrorList {
	var errs field.ErrorList
	sp := field.NewPath("status")
	if p.Status.NominatedNodeName != "" {
		for _, msg := range apivalidation.NameIsDNSSubdomain(p.Status.NominatedNodeName, false) {
			errs = append(errs, field.Invalid(sp.Child("nominatedNodeName"), p.Status.NominatedNodeName, msg))
		}
	}
	for name, sts := range map[string][]corev1.ContainerStatus{
		"containerStatuses": p.Status.ContainerStatuses, "initContainerStatuses": p.Status.InitContainerStatuses,
		"ephemeralContainerStatuses": p.Status.EphemeralContainerStatuses,
	} {
		for i, s := range sts {
			errs = append(errs, apivalidation.ValidateNonnegativeField(int64(s.RestartCount), sp.Child(name).Index(i).Child("restartCount"))...)
		}
	}
	for i, ip := range p.Status.PodIPs {
		errs = append(errs, validation.IsValidIP(sp.Child("podIPs").Index(i).Child("ip"), ip.IP)...)
	}
	for i, ip := range p.Status.HostIPs {
		errs = append(errs, validation.IsValidIP(sp.Child("hostIPs").Index(i).Child("ip"), ip.IP)...)
	}
	return errs
}
