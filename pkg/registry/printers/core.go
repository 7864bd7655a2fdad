package printers

import (
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/sets"
)

const (
	// labelNodeRolePrefix marks a node role: node-role.kubernetes.io/<role>.
	labelNodeRolePrefix = "node-role.kubernetes.io/"
	// labelNodeRole is the legacy role label: kubernetes.io/role=<role>.
	labelNodeRole = "kubernetes.io/role"
	// maxEndpoints is how many addresses the Endpoints column lists before
	// summarizing the rest as " + N more...".
	maxEndpoints = 3
)

func forCore(resource string) (*Printer, bool) {
	switch resource {
	case "pods":
		return podPrinter(), true
	case "podtemplates":
		return podTemplatePrinter(), true
	case "replicationcontrollers":
		return replicationControllerPrinter(), true
	case "services":
		return servicePrinter(), true
	case "endpoints":
		return endpointsPrinter(), true
	case "nodes":
		return nodePrinter(), true
	case "events":
		return eventPrinter(), true
	case "namespaces":
		return namespacePrinter(), true
	case "configmaps":
		return configMapPrinter(), true
	case "secrets":
		return secretPrinter(), true
	case "serviceaccounts":
		return serviceAccountPrinter(), true
	case "persistentvolumes":
		return persistentVolumePrinter(), true
	case "persistentvolumeclaims":
		return persistentVolumeClaimPrinter(), true
	case "resourcequotas":
		return resourceQuotaPrinter(), true
	case "componentstatuses":
		return componentStatusPrinter(), true
	case "limitranges":
		// Upstream serves limit ranges with the default table.
		return Default(), true
	}
	return nil, false
}

func servicePrinter() *Printer {
	spec := corev1.ServiceSpec{}.SwaggerDoc()
	return &Printer{
		Columns: cols(
			nameColumn(),
			column("Type", "string", spec["type"]),
			column("Cluster-IP", "string", spec["clusterIP"]),
			column("External-IP", "string", spec["externalIPs"]),
			column("Port(s)", "string", spec["ports"]),
			ageColumn(),
			wide(column("Selector", "string", spec["selector"])),
		),
		Row: typed(func(svc *corev1.Service, now time.Time) []interface{} {
			clusterIP := "<none>"
			if len(svc.Spec.ClusterIPs) > 0 {
				clusterIP = svc.Spec.ClusterIPs[0]
			}
			ports := servicePorts(svc.Spec.Ports)
			if ports == "" {
				ports = "<none>"
			}
			return []interface{}{
				svc.Name, string(svc.Spec.Type), clusterIP, serviceExternalIP(svc), ports,
				age(svc.CreationTimestamp, now), labels.FormatLabels(svc.Spec.Selector),
			}
		}),
	}
}

// serviceExternalIP is the External-IP column. The server always renders
// the untruncated (wide) form, as upstream's API server does.
func serviceExternalIP(svc *corev1.Service) string {
	switch svc.Spec.Type {
	case corev1.ServiceTypeClusterIP, corev1.ServiceTypeNodePort:
		if len(svc.Spec.ExternalIPs) > 0 {
			return strings.Join(svc.Spec.ExternalIPs, ",")
		}
		return "<none>"
	case corev1.ServiceTypeLoadBalancer:
		lb := loadBalancerAddresses(svc.Status.LoadBalancer.Ingress)
		if len(svc.Spec.ExternalIPs) > 0 {
			return strings.Join(append(lb, svc.Spec.ExternalIPs...), ",")
		}
		if len(lb) > 0 {
			return strings.Join(lb, ",")
		}
		return "<pending>"
	case corev1.ServiceTypeExternalName:
		return svc.Spec.ExternalName
	}
	return "<unknown>"
}

// loadBalancerAddresses returns the sorted, de-duplicated IPs (or, lacking
// one, hostnames) of load-balancer ingress points.
func loadBalancerAddresses(ingress []corev1.LoadBalancerIngress) []string {
	set := sets.New[string]()
	for _, in := range ingress {
		if in.IP != "" {
			set.Insert(in.IP)
		} else if in.Hostname != "" {
			set.Insert(in.Hostname)
		}
	}
	return sets.List(set)
}

// servicePorts renders ports as "80/TCP" or, with a node port, "80:30080/TCP".
func servicePorts(ports []corev1.ServicePort) string {
	pieces := make([]string, len(ports))
	for i, p := range ports {
		if p.NodePort > 0 {
			pieces[i] = fmt.Sprintf("%d:%d/%s", p.Port, p.NodePort, p.Protocol)
		} else {
			pieces[i] = fmt.Sprintf("%d/%s", p.Port, p.Protocol)
		}
	}
	return strings.Join(pieces, ",")
}

func endpointsPrinter() *Printer {
	return &Printer{
		Columns: cols(
			nameColumn(),
			column("Endpoints", "string", corev1.Endpoints{}.SwaggerDoc()["subsets"]),
			ageColumn(),
		),
		Row: typed(func(ep *corev1.Endpoints, now time.Time) []interface{} {
			return []interface{}{ep.Name, formatEndpoints(ep), age(ep.CreationTimestamp, now)}
		}),
	}
}

// formatEndpoints lists ready addresses as "ip:port" (bare IPs for port-less
// headless subsets), at most maxEndpoints of them followed by " + N more...".
func formatEndpoints(ep *corev1.Endpoints) string {
	if len(ep.Subsets) == 0 {
		return "<none>"
	}
	var list []string
	count := 0
	add := func(s string) {
		count++
		if len(list) < maxEndpoints {
			list = append(list, s)
		}
	}
	for _, ss := range ep.Subsets {
		if len(ss.Ports) == 0 {
			for _, a := range ss.Addresses {
				add(a.IP)
			}
			continue
		}
		for _, p := range ss.Ports {
			for _, a := range ss.Addresses {
				add(net.JoinHostPort(a.IP, strconv.Itoa(int(p.Port))))
			}
		}
	}
	ret := strings.Join(list, ",")
	if count > maxEndpoints {
		return fmt.Sprintf("%s + %d more...", ret, count-maxEndpoints)
	}
	return ret
}

func nodePrinter() *Printer {
	info, status := corev1.NodeSystemInfo{}.SwaggerDoc(), corev1.NodeStatus{}.SwaggerDoc()
	return &Printer{
		Columns: cols(
			nameColumn(),
			column("Status", "string", "The status of the node"),
			column("Roles", "string", "The roles of the node"),
			ageColumn(),
			column("Version", "string", info["kubeletVersion"]),
			wide(column("Internal-IP", "string", status["addresses"])),
			wide(column("External-IP", "string", status["addresses"])),
			wide(column("OS-Image", "string", info["osImage"])),
			wide(column("Kernel-Version", "string", info["kernelVersion"])),
			wide(column("Container-Runtime", "string", info["containerRuntimeVersion"])),
		),
		Row: typed(func(node *corev1.Node, now time.Time) []interface{} {
			ni := node.Status.NodeInfo
			return []interface{}{
				node.Name, nodeStatus(node), nodeRoles(node), age(node.CreationTimestamp, now), ni.KubeletVersion,
				nodeAddress(node, corev1.NodeInternalIP), nodeAddress(node, corev1.NodeExternalIP),
				orUnknown(ni.OSImage), orUnknown(ni.KernelVersion), orUnknown(ni.ContainerRuntimeVersion),
			}
		}),
	}
}

// nodeStatus is "Ready", "NotReady" or "Unknown" (no Ready condition),
// followed by ",SchedulingDisabled" for a cordoned node. The last Ready
// condition wins, as in upstream's condition map.
func nodeStatus(node *corev1.Node) string {
	status := "Unknown"
	for _, c := range node.Status.Conditions {
		if c.Type != corev1.NodeReady {
			continue
		}
		if c.Status == corev1.ConditionTrue {
			status = string(corev1.NodeReady)
		} else {
			status = "Not" + string(corev1.NodeReady)
		}
	}
	if node.Spec.Unschedulable {
		status += ",SchedulingDisabled"
	}
	return status
}

// nodeRoles lists, sorted, the roles named by node-role.kubernetes.io/<role>
// labels and the legacy kubernetes.io/role label; "<none>" if there are none.
func nodeRoles(node *corev1.Node) string {
	roles := sets.New[string]()
	for k, v := range node.Labels {
		switch {
		case strings.HasPrefix(k, labelNodeRolePrefix):
			if role := strings.TrimPrefix(k, labelNodeRolePrefix); role != "" {
				roles.Insert(role)
			}
		case k == labelNodeRole && v != "":
			roles.Insert(v)
		}
	}
	if roles.Len() == 0 {
		return "<none>"
	}
	return strings.Join(sets.List(roles), ",")
}

// nodeAddress returns the node's first address of type t, or "<none>".
func nodeAddress(node *corev1.Node, t corev1.NodeAddressType) string {
	for _, a := range node.Status.Addresses {
		if a.Type == t {
			return a.Address
		}
	}
	return "<none>"
}

// orUnknown renders an empty string as "<unknown>".
func orUnknown(s string) string {
	if s == "" {
		return "<unknown>"
	}
	return s
}

func namespacePrinter() *Printer {
	return &Printer{
		Columns: cols(nameColumn(), column("Status", "string", "The status of the namespace"), ageColumn()),
		Row: typed(func(ns *corev1.Namespace, now time.Time) []interface{} {
			return []interface{}{ns.Name, string(ns.Status.Phase), age(ns.CreationTimestamp, now)}
		}),
	}
}

func configMapPrinter() *Printer {
	return &Printer{
		Columns: cols(nameColumn(), column("Data", "string", corev1.ConfigMap{}.SwaggerDoc()["data"]), ageColumn()),
		Row: typed(func(cm *corev1.ConfigMap, now time.Time) []interface{} {
			return []interface{}{cm.Name, strconv.Itoa(len(cm.Data) + len(cm.BinaryData)), age(cm.CreationTimestamp, now)}
		}),
	}
}

func secretPrinter() *Printer {
	doc := corev1.Secret{}.SwaggerDoc()
	return &Printer{
		Columns: cols(nameColumn(), column("Type", "string", doc["type"]), column("Data", "string", doc["data"]), ageColumn()),
		Row: typed(func(s *corev1.Secret, now time.Time) []interface{} {
			// Secrets written with stringData are merged into data on write,
			// so data alone is the count upstream shows.
			return []interface{}{s.Name, string(s.Type), strconv.Itoa(len(s.Data)), age(s.CreationTimestamp, now)}
		}),
	}
}

func serviceAccountPrinter() *Printer {
	return &Printer{
		Columns: cols(nameColumn(), column("Secrets", "string", corev1.ServiceAccount{}.SwaggerDoc()["secrets"]), ageColumn()),
		Row: typed(func(sa *corev1.ServiceAccount, now time.Time) []interface{} {
			return []interface{}{sa.Name, strconv.Itoa(len(sa.Secrets)), age(sa.CreationTimestamp, now)}
		}),
	}
}

const (
	// betaStorageClassAnnotation overrides spec.storageClassName, as upstream
	// still honours it.
	betaStorageClassAnnotation = "volume.beta.kubernetes.io/storage-class"
)

func persistentVolumePrinter() *Printer {
	spec, status := corev1.PersistentVolumeSpec{}.SwaggerDoc(), corev1.PersistentVolumeStatus{}.SwaggerDoc()
	return &Printer{
		Columns: cols(
			nameColumn(),
			column("Capacity", "string", spec["capacity"]),
			column("Access Modes", "string", spec["accessModes"]),
			column("Reclaim Policy", "string", spec["persistentVolumeReclaimPolicy"]),
			column("Status", "string", status["phase"]),
			column("Claim", "string", spec["claimRef"]),
			column("StorageClass", "string", "StorageClass of the pv"),
			column("VolumeAttributesClass", "string", "VolumeAttributesClass of the pv"),
			column("Reason", "string", status["reason"]),
			ageColumn(),
			wide(column("VolumeMode", "string", spec["volumeMode"])),
		),
		Row: typed(func(pv *corev1.PersistentVolume, now time.Time) []interface{} {
			claim := ""
			if pv.Spec.ClaimRef != nil {
				claim = pv.Spec.ClaimRef.Namespace + "/" + pv.Spec.ClaimRef.Name
			}
			capacity := pv.Spec.Capacity[corev1.ResourceStorage]
			phase := string(pv.Status.Phase)
			if pv.DeletionTimestamp != nil {
				phase = "Terminating"
			}
			class := pv.Spec.StorageClassName
			if c, ok := pv.Annotations[betaStorageClassAnnotation]; ok {
				class = c
			}
			return []interface{}{
				pv.Name, capacity.String(), accessModes(pv.Spec.AccessModes), string(pv.Spec.PersistentVolumeReclaimPolicy),
				phase, claim, class, orUnset(pv.Spec.VolumeAttributesClassName), pv.Status.Reason,
				age(pv.CreationTimestamp, now), volumeMode(pv.Spec.VolumeMode),
			}
		}),
	}
}

func persistentVolumeClaimPrinter() *Printer {
	spec, status := corev1.PersistentVolumeClaimSpec{}.SwaggerDoc(), corev1.PersistentVolumeClaimStatus{}.SwaggerDoc()
	return &Printer{
		Columns: cols(
			nameColumn(),
			column("Status", "string", status["phase"]),
			column("Volume", "string", spec["volumeName"]),
			column("Capacity", "string", status["capacity"]),
			column("Access Modes", "string", status["accessModes"]),
			column("StorageClass", "string", "StorageClass of the pvc"),
			column("VolumeAttributesClass", "string", "VolumeAttributesClass of the pvc"),
			ageColumn(),
			wide(column("VolumeMode", "string", spec["volumeMode"])),
		),
		Row: typed(func(pvc *corev1.PersistentVolumeClaim, now time.Time) []interface{} {
			phase := string(pvc.Status.Phase)
			if pvc.DeletionTimestamp != nil {
				phase = "Terminating"
			}
			// Capacity and access modes are only meaningful once bound.
			var capacity, modes string
			if pvc.Spec.VolumeName != "" {
				q := pvc.Status.Capacity[corev1.ResourceStorage]
				capacity, modes = q.String(), accessModes(pvc.Status.AccessModes)
			}
			class := ""
			if pvc.Spec.StorageClassName != nil {
				class = *pvc.Spec.StorageClassName
			}
			if c, ok := pvc.Annotations[betaStorageClassAnnotation]; ok {
				class = c
			}
			return []interface{}{
				pvc.Name, phase, pvc.Spec.VolumeName, capacity, modes, class,
				orUnset(pvc.Spec.VolumeAttributesClassName), age(pvc.CreationTimestamp, now), volumeMode(pvc.Spec.VolumeMode),
			}
		}),
	}
}

// accessModes abbreviates access modes in upstream's fixed order
// (RWO, ROX, RWX, RWOP), each once.
func accessModes(modes []corev1.PersistentVolumeAccessMode) string {
	has := sets.New(modes...)
	var out []string
	for _, m := range []struct {
		mode  corev1.PersistentVolumeAccessMode
		short string
	}{
		{corev1.ReadWriteOnce, "RWO"},
		{corev1.ReadOnlyMany, "ROX"},
		{corev1.ReadWriteMany, "RWX"},
		{corev1.ReadWriteOncePod, "RWOP"},
	} {
		if has.Has(m.mode) {
			out = append(out, m.short)
		}
	}
	return strings.Join(out, ",")
}

func volumeMode(m *corev1.PersistentVolumeMode) string {
	if m == nil {
		return "<unset>"
	}
	return string(*m)
}

// orUnset renders an optional string as upstream does: "<unset>" for nil.
func orUnset(s *string) string {
	if s == nil {
		return "<unset>"
	}
	return *s
}

func resourceQuotaPrinter() *Printer {
	return &Printer{
		Columns: cols(
			nameColumn(),
			column("Request", "string", "Request represents a minimum amount of cpu/memory that a container may consume."),
			column("Limit", "string", "Limits control the maximum amount of cpu/memory that a container may use independent of contention on the node."),
			ageColumn(),
		),
		Row: typed(func(q *corev1.ResourceQuota, now time.Time) []interface{} {
			names := make([]string, 0, len(q.Status.Hard))
			for name := range q.Status.Hard {
				names = append(names, string(name))
			}
			sort.Strings(names)
			var requests, limits []string
			for _, name := range names {
				used, hard := q.Status.Used[corev1.ResourceName(name)], q.Status.Hard[corev1.ResourceName(name)]
				entry := fmt.Sprintf("%s: %s/%s", name, used.String(), hard.String())
				// "limits.cpu" and friends go to the Limit column.
				if pieces := strings.Split(name, "."); len(pieces) > 1 && pieces[0] == "limits" {
					limits = append(limits, entry)
				} else {
					requests = append(requests, entry)
				}
			}
			return []interface{}{q.Name, strings.Join(requests, ", "), strings.Join(limits, ", "), age(q.CreationTimestamp, now)}
		}),
	}
}

func componentStatusPrinter() *Printer {
	return &Printer{
		Columns: cols(
			nameColumn(),
			column("Status", "string", "Status of the component conditions"),
			column("Message", "string", "Message of the component conditions"),
			column("Error", "string", "Error of the component conditions"),
		),
		Row: typed(func(cs *corev1.ComponentStatus, _ time.Time) []interface{} {
			status, message, errMsg := "Unknown", "", ""
			for _, c := range cs.Conditions {
				if c.Type != corev1.ComponentHealthy {
					continue
				}
				status = "Unhealthy"
				if c.Status == corev1.ConditionTrue {
					status = "Healthy"
				}
				message, errMsg = c.Message, c.Error
				break
			}
			return []interface{}{cs.Name, status, message, errMsg}
		}),
	}
}
