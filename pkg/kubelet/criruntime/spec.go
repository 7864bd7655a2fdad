package criruntime

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math"
	"os"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Upstream's CPU and OOM constants (pkg/kubelet/cm, pkg/kubelet/qos).
const (
	minShares             = 2
	sharesPerCPU          = 1024
	milliCPUToCPU         = 1000
	quotaPeriod           = 100000 // µs
	minQuotaPeriod        = 1000   // µs
	guaranteedOOMScoreAdj = -997
	besteffortOOMScoreAdj = 1000
)

// sandboxConfig is the CRI sandbox configuration of pod.
func (r *Runtime) sandboxConfig(pod *corev1.Pod, attempt uint32) (*runtimeapi.PodSandboxConfig, error) {
	labels := map[string]string{}
	for k, v := range pod.Labels {
		labels[k] = v
	}
	labels[LabelPodName] = pod.Name
	labels[LabelPodNamespace] = pod.Namespace
	labels[LabelPodUID] = string(pod.UID)
	annotations := map[string]string{}
	for k, v := range pod.Annotations {
		annotations[k] = v
	}
	hostname, err := r.podHostname(pod)
	if err != nil {
		return nil, err
	}
	if pod.Spec.HostNetwork {
		// The sandbox shares the node's UTS namespace, where runc refuses
		// to set a hostname ("unable to set hostname without a private
		// UTS namespace"); like upstream, send none.
		hostname = ""
	}
	dns, err := r.dnsConfig(pod)
	if err != nil {
		return nil, err
	}
	cfg := &runtimeapi.PodSandboxConfig{
		Metadata: &runtimeapi.PodSandboxMetadata{
			Name: pod.Name, Namespace: pod.Namespace, Uid: string(pod.UID), Attempt: attempt,
		},
		Hostname:     hostname,
		LogDirectory: r.podLogDir(pod),
		DnsConfig:    dns,
		PortMappings: portMappings(pod),
		Labels:       labels,
		Annotations:  annotations,
		Linux: &runtimeapi.LinuxPodSandboxConfig{
			CgroupParent: r.podCgroup(pod.UID, qosClass(pod)),
			SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
				NamespaceOptions: namespaceOptions(pod),
			},
		},
	}
	cfg.Linux.SecurityContext.Privileged = hasPrivilegedContainer(pod)
	if sc := pod.Spec.SecurityContext; sc != nil {
		cfg.Linux.SecurityContext.RunAsUser = int64Value(sc.RunAsUser)
		// containerd refuses a sandbox group without a user; the pause
		// process then keeps its image's user and group.
		if sc.RunAsUser != nil {
			cfg.Linux.SecurityContext.RunAsGroup = int64Value(sc.RunAsGroup)
		}
		cfg.Linux.SecurityContext.SupplementalGroups = podSupplementalGroups(sc)
		if len(sc.Sysctls) > 0 {
			cfg.Linux.Sysctls = map[string]string{}
			for _, s := range sc.Sysctls {
				cfg.Linux.Sysctls[s.Name] = s.Value
			}
		}
	}
	return cfg, nil
}

func int64Value(p *int64) *runtimeapi.Int64Value {
	if p == nil {
		return nil
	}
	return &runtimeapi.Int64Value{Value: *p}
}

// podHostname is upstream's GeneratePodHostNameAndDomain without the
// subdomain: spec.hostname or the pod name, cut to 63 bytes; the node's for
// hostNetwork pods.
func (r *Runtime) podHostname(pod *corev1.Pod) (string, error) {
	if pod.Spec.HostNetwork {
		h, err := os.Hostname()
		if err != nil {
			return "", fmt.Errorf("reading the node's hostname: %w", err)
		}
		return h, nil
	}
	h := pod.Name
	if pod.Spec.Hostname != "" {
		h = pod.Spec.Hostname
	}
	if len(h) > 63 {
		h = strings.TrimRight(h[:63], "-.")
	}
	return h, nil
}

// namespaceOptions maps hostNetwork/hostPID/hostIPC and
// shareProcessNamespace to CRI namespace modes. Containers get their own
// PID namespace unless the pod shares one, as upstream does.
func namespaceOptions(pod *corev1.Pod) *runtimeapi.NamespaceOption {
	o := &runtimeapi.NamespaceOption{
		Network: runtimeapi.NamespaceMode_POD,
		Pid:     runtimeapi.NamespaceMode_CONTAINER,
		Ipc:     runtimeapi.NamespaceMode_POD,
	}
	if pod.Spec.HostNetwork {
		o.Network = runtimeapi.NamespaceMode_NODE
	}
	if pod.Spec.HostIPC {
		o.Ipc = runtimeapi.NamespaceMode_NODE
	}
	switch {
	case pod.Spec.HostPID:
		o.Pid = runtimeapi.NamespaceMode_NODE
	case pod.Spec.ShareProcessNamespace != nil && *pod.Spec.ShareProcessNamespace:
		o.Pid = runtimeapi.NamespaceMode_POD
	}
	return o
}

// portMappings lists the hostPorts of the pod's containers.
func portMappings(pod *corev1.Pod) []*runtimeapi.PortMapping {
	var out []*runtimeapi.PortMapping
	for _, c := range pod.Spec.Containers {
		for _, p := range c.Ports {
			if p.HostPort <= 0 {
				continue
			}
			proto := runtimeapi.Protocol_TCP
			switch p.Protocol {
			case corev1.ProtocolUDP:
				proto = runtimeapi.Protocol_UDP
			case corev1.ProtocolSCTP:
				proto = runtimeapi.Protocol_SCTP
			}
			out = append(out, &runtimeapi.PortMapping{
				Protocol: proto, ContainerPort: p.ContainerPort, HostPort: p.HostPort, HostIp: p.HostIP,
			})
		}
	}
	return out
}

// dnsConfig follows upstream's dns.Configurer: ClusterFirst pods use the
// cluster DNS (falling back to the node's resolver when none is
// configured), Default pods the node's resolver, None pods only their
// dnsConfig, which is merged into the others.
func (r *Runtime) dnsConfig(pod *corev1.Pod) (*runtimeapi.DNSConfig, error) {
	policy := pod.Spec.DNSPolicy
	if policy == "" {
		policy = corev1.DNSClusterFirst
	}
	switch {
	case policy == corev1.DNSClusterFirstWithHostNet:
		policy = corev1.DNSClusterFirst
	case policy == corev1.DNSClusterFirst && pod.Spec.HostNetwork:
		policy = corev1.DNSDefault
	}
	if policy == corev1.DNSClusterFirst && len(r.cfg.ClusterDNS) == 0 {
		policy = corev1.DNSDefault
	}
	cfg := &runtimeapi.DNSConfig{}
	switch policy {
	case corev1.DNSClusterFirst:
		d := r.cfg.ClusterDomain
		cfg.Servers = append([]string(nil), r.cfg.ClusterDNS...)
		cfg.Searches = []string{pod.Namespace + ".svc." + d, "svc." + d, d}
		host, err := readResolvConf(r.cfg.ResolvConf)
		if err != nil {
			return nil, err
		}
		cfg.Searches = append(cfg.Searches, host.Searches...)
		cfg.Options = []string{"ndots:5"}
	case corev1.DNSDefault:
		host, err := readResolvConf(r.cfg.ResolvConf)
		if err != nil {
			return nil, err
		}
		cfg = host
	}
	if pc := pod.Spec.DNSConfig; pc != nil {
		cfg.Servers = appendUnique(cfg.Servers, pc.Nameservers...)
		cfg.Searches = appendUnique(cfg.Searches, pc.Searches...)
		for _, o := range pc.Options {
			opt := o.Name
			if o.Value != nil {
				opt += ":" + *o.Value
			}
			cfg.Options = mergeOption(cfg.Options, o.Name, opt)
		}
	}
	if len(cfg.Servers) > 3 {
		cfg.Servers = cfg.Servers[:3]
	}
	if len(cfg.Searches) > 32 {
		cfg.Searches = cfg.Searches[:32]
	}
	return cfg, nil
}

func appendUnique(list []string, add ...string) []string {
	for _, a := range add {
		found := false
		for _, l := range list {
			found = found || l == a
		}
		if !found {
			list = append(list, a)
		}
	}
	return list
}

// mergeOption replaces the option called name in opts with opt, or
// appends it.
func mergeOption(opts []string, name, opt string) []string {
	for i, o := range opts {
		if n, _, _ := strings.Cut(o, ":"); n == name {
			opts[i] = opt
			return opts
		}
	}
	return append(opts, opt)
}

// readResolvConf parses the nameserver, search and options lines of a
// resolv.conf; a missing file is an empty configuration.
func readResolvConf(path string) (*runtimeapi.DNSConfig, error) {
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return &runtimeapi.DNSConfig{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	cfg := &runtimeapi.DNSConfig{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || strings.HasPrefix(f[0], "#") || strings.HasPrefix(f[0], ";") {
			continue
		}
		switch f[0] {
		case "nameserver":
			cfg.Servers = append(cfg.Servers, f[1])
		case "search", "domain":
			cfg.Searches = f[1:]
		case "options":
			cfg.Options = append(cfg.Options, f[1:]...)
		}
	}
	return cfg, nil
}

// qosClass classifies pod like upstream (a copy of the kubelet's rule, as
// the API status may not carry it yet).
func qosClass(pod *corev1.Pod) corev1.PodQOSClass {
	if pod.Status.QOSClass != "" {
		return pod.Status.QOSClass
	}
	bestEffort, guaranteed := true, true
	for _, c := range allContainers(pod) {
		for _, name := range [...]corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			req, hasReq := c.Resources.Requests[name]
			lim, hasLim := c.Resources.Limits[name]
			if (hasReq && !req.IsZero()) || (hasLim && !lim.IsZero()) {
				bestEffort = false
			}
			if !hasLim || (hasReq && req.Cmp(lim) != 0) {
				guaranteed = false
			}
		}
	}
	switch {
	case bestEffort:
		return corev1.PodQOSBestEffort
	case guaranteed:
		return corev1.PodQOSGuaranteed
	default:
		return corev1.PodQOSBurstable
	}
}

func allContainers(pod *corev1.Pod) []corev1.Container {
	all := make([]corev1.Container, 0, len(pod.Spec.InitContainers)+len(pod.Spec.Containers))
	all = append(all, pod.Spec.InitContainers...)
	return append(all, pod.Spec.Containers...)
}

// cpuRequest is the container's CPU request, its limit when only that is
// set (the API's defaulting).
func cpuRequest(c *corev1.Container) resource.Quantity {
	if q, ok := c.Resources.Requests[corev1.ResourceCPU]; ok {
		return q
	}
	return c.Resources.Limits[corev1.ResourceCPU]
}

func milliCPUToShares(milli int64) uint64 {
	if milli == 0 {
		return minShares
	}
	shares := milli * sharesPerCPU / milliCPUToCPU
	if shares < minShares {
		return minShares
	}
	return uint64(shares)
}

func milliCPUToQuota(milli, period int64) int64 {
	if milli == 0 {
		return 0
	}
	q := milli * period / milliCPUToCPU
	if q < minQuotaPeriod {
		q = minQuotaPeriod
	}
	return q
}

// podCgroupLimits are upstream's pod-level limits: CPU shares from the
// requests; quota and memory limit only when every container limits them
// (init containers count by their maximum).
func podCgroupLimits(pod *corev1.Pod) podLimits {
	var reqMilli, limMilli, mem, initMilli, initMem int64
	cpuLimited, memLimited := true, true
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		q := cpuRequest(c)
		reqMilli += q.MilliValue()
		if l, ok := c.Resources.Limits[corev1.ResourceCPU]; ok {
			limMilli += l.MilliValue()
		} else {
			cpuLimited = false
		}
		if l, ok := c.Resources.Limits[corev1.ResourceMemory]; ok {
			mem += l.Value()
		} else {
			memLimited = false
		}
	}
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		if l, ok := c.Resources.Limits[corev1.ResourceCPU]; ok {
			initMilli = max(initMilli, l.MilliValue())
		} else {
			cpuLimited = false
		}
		if l, ok := c.Resources.Limits[corev1.ResourceMemory]; ok {
			initMem = max(initMem, l.Value())
		} else {
			memLimited = false
		}
	}
	l := podLimits{cpuShares: milliCPUToShares(reqMilli), cpuPeriod: quotaPeriod}
	if cpuLimited && len(pod.Spec.Containers) > 0 {
		l.cpuQuota = milliCPUToQuota(max(limMilli, initMilli), quotaPeriod)
	}
	if memLimited && len(pod.Spec.Containers) > 0 {
		l.memoryLimit = max(mem, initMem)
	}
	return l
}

// linuxResources maps the container's resources to CRI's.
func (r *Runtime) linuxResources(pod *corev1.Pod, c *corev1.Container) *runtimeapi.LinuxContainerResources {
	req := cpuRequest(c)
	res := &runtimeapi.LinuxContainerResources{
		CpuShares:   int64(milliCPUToShares(req.MilliValue())),
		OomScoreAdj: r.oomScoreAdj(pod, c),
	}
	if l, ok := c.Resources.Limits[corev1.ResourceCPU]; ok && !l.IsZero() {
		res.CpuPeriod = quotaPeriod
		res.CpuQuota = milliCPUToQuota(l.MilliValue(), quotaPeriod)
	}
	if l, ok := c.Resources.Limits[corev1.ResourceMemory]; ok && !l.IsZero() {
		res.MemoryLimitInBytes = l.Value()
	}
	return res
}

// oomScoreAdj is upstream's GetContainerOOMScoreAdjust.
func (r *Runtime) oomScoreAdj(pod *corev1.Pod, c *corev1.Container) int64 {
	switch qosClass(pod) {
	case corev1.PodQOSGuaranteed:
		return guaranteedOOMScoreAdj
	case corev1.PodQOSBestEffort:
		return besteffortOOMScoreAdj
	}
	capacity := r.machineMemory.Value()
	if capacity <= 0 {
		return besteffortOOMScoreAdj - 1
	}
	req := c.Resources.Requests[corev1.ResourceMemory]
	adj := 1000 - (1000*req.Value())/capacity
	if adj < 1000+guaranteedOOMScoreAdj {
		return 1000 + guaranteedOOMScoreAdj
	}
	if adj == besteffortOOMScoreAdj {
		return adj - 1
	}
	return adj
}

// containerHash fingerprints the container spec; a running container
// whose hash differs from the spec's is restarted.
func containerHash(c *corev1.Container) string {
	b, err := json.Marshal(c)
	if err != nil {
		return ""
	}
	h := fnv.New32a()
	h.Write(b)
	return strconv.FormatUint(uint64(h.Sum32()), 16)
}

// resourceValue is upstream's ExtractContainerResourceValue: the value of
// a resourceFieldRef, rounded up to whole divisors, with unset limits
// replaced by the node's allocatable.
func (r *Runtime) resourceValue(pod *corev1.Pod, c *corev1.Container, ref *corev1.ResourceFieldSelector) (string, error) {
	target := c
	if ref.ContainerName != "" && ref.ContainerName != c.Name {
		target = nil
		for _, cc := range allContainers(pod) {
			if cc.Name == ref.ContainerName {
				target = &cc
				break
			}
		}
		if target == nil {
			return "", fmt.Errorf("resourceFieldRef: no container %q", ref.ContainerName)
		}
	}
	divisor := ref.Divisor
	if divisor.IsZero() {
		divisor = resource.MustParse("1")
	}
	kind, name, _ := strings.Cut(ref.Resource, ".")
	if name == "" {
		kind, name = "requests", ref.Resource
	}
	rn := corev1.ResourceName(name)
	var q resource.Quantity
	var ok bool
	switch kind {
	case "limits":
		if q, ok = target.Resources.Limits[rn]; !ok {
			q = r.allocatable(rn)
		}
	case "requests":
		q = target.Resources.Requests[rn]
	default:
		return "", fmt.Errorf("resourceFieldRef: unsupported resource %q", ref.Resource)
	}
	if rn == corev1.ResourceCPU {
		return strconv.FormatInt(int64(math.Ceil(float64(q.MilliValue())/float64(divisor.MilliValue()))), 10), nil
	}
	return strconv.FormatInt(int64(math.Ceil(float64(q.Value())/float64(divisor.Value()))), 10), nil
}

func (r *Runtime) allocatable(name corev1.ResourceName) resource.Quantity {
	if q, ok := r.cfg.NodeAllocatable[name]; ok {
		return q
	}
	switch name {
	case corev1.ResourceCPU:
		return r.machineCPU
	case corev1.ResourceMemory:
		return r.machineMemory
	}
	return resource.Quantity{}
}

// fieldValue is the downward API value of a fieldRef.
func (r *Runtime) fieldValue(pod *corev1.Pod, podIPs []string, path string) (string, error) {
	if key, ok := strings.CutPrefix(path, "metadata.labels['"); ok {
		return pod.Labels[strings.TrimSuffix(key, "']")], nil
	}
	if key, ok := strings.CutPrefix(path, "metadata.annotations['"); ok {
		return pod.Annotations[strings.TrimSuffix(key, "']")], nil
	}
	first := func(l []string) string {
		if len(l) == 0 {
			return ""
		}
		return l[0]
	}
	switch path {
	case "metadata.name":
		return pod.Name, nil
	case "metadata.namespace":
		return pod.Namespace, nil
	case "metadata.uid":
		return string(pod.UID), nil
	case "spec.nodeName":
		return pod.Spec.NodeName, nil
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName, nil
	case "status.hostIP":
		return first(r.cfg.NodeIPs), nil
	case "status.hostIPs":
		return strings.Join(r.cfg.NodeIPs, ","), nil
	case "status.podIP":
		return first(podIPs), nil
	case "status.podIPs":
		return strings.Join(podIPs, ","), nil
	}
	return "", fmt.Errorf("fieldRef: unsupported field path %q", path)
}

// containerEnv resolves the container's env: literal values with $(VAR)
// references to earlier variables expanded, and the downward API
// (fieldRef, resourceFieldRef). ConfigMap and Secret references and
// envFrom are not resolved here.
func (r *Runtime) containerEnv(pod *corev1.Pod, c *corev1.Container, podIPs []string) ([]*runtimeapi.KeyValue, map[string]string, error) {
	if len(c.EnvFrom) > 0 {
		return nil, nil, fmt.Errorf("envFrom is not supported by this runtime yet")
	}
	vars := map[string]string{}
	var out []*runtimeapi.KeyValue
	for _, e := range c.Env {
		var v string
		switch {
		case e.ValueFrom == nil:
			v = expand(e.Value, vars)
		case e.ValueFrom.FieldRef != nil:
			val, err := r.fieldValue(pod, podIPs, e.ValueFrom.FieldRef.FieldPath)
			if err != nil {
				return nil, nil, fmt.Errorf("env %s: %w", e.Name, err)
			}
			v = val
		case e.ValueFrom.ResourceFieldRef != nil:
			val, err := r.resourceValue(pod, c, e.ValueFrom.ResourceFieldRef)
			if err != nil {
				return nil, nil, fmt.Errorf("env %s: %w", e.Name, err)
			}
			v = val
		default:
			return nil, nil, fmt.Errorf("env %s: configMapKeyRef and secretKeyRef are not supported by this runtime yet", e.Name)
		}
		vars[e.Name] = v
		out = append(out, &runtimeapi.KeyValue{Key: e.Name, Value: []byte(v)})
	}
	return out, vars, nil
}

// expand replaces $(VAR) with vars[VAR] when defined and $$ with $, like
// upstream's third_party/forked/golang/expansion; undefined references
// stay as written.
func expand(s string, vars map[string]string) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 >= len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				b.WriteString(s[i:])
				return b.String()
			}
			name := s[i+2 : i+2+end]
			if v, ok := vars[name]; ok {
				b.WriteString(v)
			} else {
				b.WriteString(s[i : i+3+end])
			}
			i += 2 + end
		default:
			b.WriteByte('$')
		}
	}
	return b.String()
}

func expandAll(list []string, vars map[string]string) []string {
	if list == nil {
		return nil
	}
	out := make([]string, len(list))
	for i, s := range list {
		out[i] = expand(s, vars)
	}
	return out
}

// containerConfig is the CRI configuration of container c's attempt.
func (r *Runtime) containerConfig(pod *corev1.Pod, c *corev1.Container, imageRef string, attempt uint32, podIPs []string) (*runtimeapi.ContainerConfig, error) {
	env, vars, err := r.containerEnv(pod, c, podIPs)
	if err != nil {
		return nil, err
	}
	termPath, termPolicy := c.TerminationMessagePath, c.TerminationMessagePolicy
	if termPath == "" {
		termPath = defaultTerminationMessagePath
	}
	if termPolicy == "" {
		termPolicy = defaultTerminationMessagePolicy
	}
	grace := int64(corev1.DefaultTerminationGracePeriodSeconds)
	if pod.Spec.TerminationGracePeriodSeconds != nil {
		grace = *pod.Spec.TerminationGracePeriodSeconds
	}
	cfg := &runtimeapi.ContainerConfig{
		Metadata:   &runtimeapi.ContainerMetadata{Name: c.Name, Attempt: attempt},
		Image:      &runtimeapi.ImageSpec{Image: imageRef, UserSpecifiedImage: c.Image},
		Command:    expandAll(c.Command, vars),
		Args:       expandAll(c.Args, vars),
		WorkingDir: c.WorkingDir,
		Envs:       env,
		Labels: map[string]string{
			LabelPodName: pod.Name, LabelPodNamespace: pod.Namespace, LabelPodUID: string(pod.UID),
			LabelContainerName: c.Name,
		},
		Annotations: map[string]string{
			annotationContainerHash:       containerHash(c),
			annotationRestartCount:        strconv.FormatUint(uint64(attempt), 10),
			annotationTerminationPath:     termPath,
			annotationTerminationPolicy:   string(termPolicy),
			annotationPodTerminationGrace: strconv.FormatInt(grace, 10),
		},
		LogPath: fmt.Sprintf("%s/%d.log", c.Name, attempt),
		Stdin:   c.Stdin, StdinOnce: c.StdinOnce, Tty: c.TTY,
		Linux: &runtimeapi.LinuxContainerConfig{
			Resources:       r.linuxResources(pod, c),
			SecurityContext: containerSecurityContext(pod, c),
		},
	}
	if cfg.Mounts, err = r.containerMounts(pod, c, vars); err != nil {
		return nil, err
	}
	return cfg, nil
}

// containerMounts are the CRI mounts of c's volume mounts (none without
// Config.Volumes), subPathExpr expanded with the container's variables
// like upstream. SELinux relabelling is never asked for.
func (r *Runtime) containerMounts(pod *corev1.Pod, c *corev1.Container, vars map[string]string) ([]*runtimeapi.Mount, error) {
	if r.cfg.Volumes == nil {
		return nil, nil
	}
	var out []*runtimeapi.Mount
	for _, vm := range c.VolumeMounts {
		if vm.SubPathExpr != "" {
			vm.SubPath = expand(vm.SubPathExpr, vars)
		}
		m, err := r.cfg.Volumes.HostMount(pod, vm)
		if err != nil {
			return nil, err
		}
		propagation := runtimeapi.MountPropagation_PROPAGATION_PRIVATE
		if vm.MountPropagation != nil {
			switch *vm.MountPropagation {
			case corev1.MountPropagationHostToContainer:
				propagation = runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER
			case corev1.MountPropagationBidirectional:
				propagation = runtimeapi.MountPropagation_PROPAGATION_BIDIRECTIONAL
			}
		}
		out = append(out, &runtimeapi.Mount{
			ContainerPath: vm.MountPath,
			HostPath:      m.HostPath,
			Readonly:      m.ReadOnly,
			Propagation:   propagation,
		})
	}
	return out, nil
}

// containerSecurityContext maps the pod's and container's security
// contexts (the container's winning) and namespace modes, like upstream's
// determineEffectiveSecurityContext: the pod's fsGroup and
// supplementalGroups are the container's supplementary groups,
// allowPrivilegeEscalation false is no_new_privs. runAsNonRoot has no CRI
// field: applyImageUser enforces it before the container is created. Capability
// names pass as written; containerd adds the CAP_ prefix and knows ALL.
func containerSecurityContext(pod *corev1.Pod, c *corev1.Container) *runtimeapi.LinuxContainerSecurityContext {
	sc := &runtimeapi.LinuxContainerSecurityContext{NamespaceOptions: namespaceOptions(pod)}
	if psc := pod.Spec.SecurityContext; psc != nil {
		sc.RunAsUser = int64Value(psc.RunAsUser)
		sc.RunAsGroup = int64Value(psc.RunAsGroup)
		sc.SupplementalGroups = podSupplementalGroups(psc)
	}
	csc := c.SecurityContext
	if csc == nil {
		return sc
	}
	if csc.RunAsUser != nil {
		sc.RunAsUser = int64Value(csc.RunAsUser)
	}
	if csc.RunAsGroup != nil {
		sc.RunAsGroup = int64Value(csc.RunAsGroup)
	}
	if csc.Privileged != nil {
		sc.Privileged = *csc.Privileged
	}
	if csc.ReadOnlyRootFilesystem != nil {
		sc.ReadonlyRootfs = *csc.ReadOnlyRootFilesystem
	}
	if csc.AllowPrivilegeEscalation != nil {
		sc.NoNewPrivs = !*csc.AllowPrivilegeEscalation
	}
	if caps := csc.Capabilities; caps != nil {
		sc.Capabilities = &runtimeapi.Capability{}
		for _, a := range caps.Add {
			sc.Capabilities.AddCapabilities = append(sc.Capabilities.AddCapabilities, string(a))
		}
		for _, d := range caps.Drop {
			sc.Capabilities.DropCapabilities = append(sc.Capabilities.DropCapabilities, string(d))
		}
	}
	return sc
}
