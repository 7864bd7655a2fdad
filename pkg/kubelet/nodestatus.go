package kubelet

import (
	"context"
	"fmt"
	goruntime "runtime"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// KubeletVersion is the version the kubelet reports in node.status.nodeInfo:
// the Kubernetes version whose behaviour it implements.
const KubeletVersion = "v1.37.2"

// KubeletPort is the kubelet's API port, published in
// node.status.daemonEndpoints.
const KubeletPort = 10250

// Node condition reasons and messages, as upstream's kubelet writes them.
const (
	ReasonKubeletReady                = "KubeletReady"
	ReasonKubeletHasSufficientMemory  = "KubeletHasSufficientMemory"
	ReasonKubeletHasNoDiskPressure    = "KubeletHasNoDiskPressure"
	ReasonKubeletHasSufficientPID     = "KubeletHasSufficientPID"
	MessageKubeletReady               = "kubelet is posting ready status"
	MessageKubeletHasSufficientMemory = "kubelet has sufficient memory available"
	MessageKubeletHasNoDiskPressure   = "kubelet has no disk pressure"
	MessageKubeletHasSufficientPID    = "kubelet has sufficient PID available"
)

// annotationControllerManagedAttach tells the attach/detach controller that
// it, not the kubelet, attaches volumes to this node (upstream's default).
const annotationControllerManagedAttach = "volumes.kubernetes.io/controller-managed-attach-detach"

// nodeConditionEvents maps a node condition and its status to the event
// reason upstream records when the condition turns to that status.
var nodeConditionEvents = map[corev1.NodeConditionType]map[corev1.ConditionStatus]string{
	corev1.NodeMemoryPressure: {corev1.ConditionFalse: "NodeHasSufficientMemory", corev1.ConditionTrue: "NodeHasInsufficientMemory"},
	corev1.NodeDiskPressure:   {corev1.ConditionFalse: "NodeHasNoDiskPressure", corev1.ConditionTrue: "NodeHasDiskPressure"},
	corev1.NodePIDPressure:    {corev1.ConditionFalse: "NodeHasSufficientPID", corev1.ConditionTrue: "NodeHasInsufficientPID"},
	corev1.NodeReady:          {corev1.ConditionTrue: "NodeReady", corev1.ConditionFalse: "NodeNotReady"},
}

// nodeLabels returns the labels the kubelet puts on its node: the
// well-known hostname/os/arch labels (with their beta twins, which upstream
// still sets) plus the configured ones, which win.
func (k *Kubelet) nodeLabels() map[string]string {
	l := map[string]string{
		corev1.LabelHostname:      k.cfg.NodeName,
		corev1.LabelOSStable:      k.cfg.SystemInfo.OperatingSystem,
		corev1.LabelArchStable:    k.cfg.SystemInfo.Architecture,
		"beta.kubernetes.io/os":   k.cfg.SystemInfo.OperatingSystem,
		"beta.kubernetes.io/arch": k.cfg.SystemInfo.Architecture,
	}
	for key, v := range k.cfg.Labels {
		l[key] = v
	}
	return l
}

// initialNode is the Node the kubelet registers, status included.
func (k *Kubelet) initialNode(runtimeVersion string, now time.Time) *corev1.Node {
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:        k.cfg.NodeName,
			Labels:      k.nodeLabels(),
			Annotations: map[string]string{annotationControllerManagedAttach: "true"},
		},
	}
	k.setNodeStatus(node, runtimeVersion, now)
	return node
}

// reconcileNodeMeta adds the kubelet's labels and annotations to an
// existing node (registered before a restart) and reports whether it
// changed anything. Other labels (added by users) are left alone.
func (k *Kubelet) reconcileNodeMeta(node *corev1.Node) bool {
	changed := false
	want := k.nodeLabels()
	want2 := map[string]string{annotationControllerManagedAttach: "true"}
	for _, p := range []struct {
		have *map[string]string
		want map[string]string
	}{{&node.Labels, want}, {&node.Annotations, want2}} {
		for key, v := range p.want {
			if cur, ok := (*p.have)[key]; ok && cur == v {
				continue
			}
			if *p.have == nil {
				*p.have = map[string]string{}
			}
			(*p.have)[key] = v
			changed = true
		}
	}
	return changed
}

// setNodeStatus writes the kubelet-owned parts of node.Status. Condition
// heartbeat times become now; transition times are kept while a
// condition's status does not change.
func (k *Kubelet) setNodeStatus(node *corev1.Node, runtimeVersion string, now time.Time) {
	nowT := metav1.NewTime(now.Truncate(time.Second))
	st := &node.Status
	st.Capacity = k.cfg.Capacity.DeepCopy()
	st.Allocatable = k.cfg.Allocatable.DeepCopy()
	st.Addresses = append([]corev1.NodeAddress(nil), k.cfg.Addresses...)
	st.DaemonEndpoints.KubeletEndpoint.Port = KubeletPort
	info := k.cfg.SystemInfo
	info.ContainerRuntimeVersion = runtimeVersion
	st.NodeInfo = info

	want := [...]corev1.NodeCondition{
		{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse, Reason: ReasonKubeletHasSufficientMemory, Message: MessageKubeletHasSufficientMemory},
		{Type: corev1.NodeDiskPressure, Status: corev1.ConditionFalse, Reason: ReasonKubeletHasNoDiskPressure, Message: MessageKubeletHasNoDiskPressure},
		{Type: corev1.NodePIDPressure, Status: corev1.ConditionFalse, Reason: ReasonKubeletHasSufficientPID, Message: MessageKubeletHasSufficientPID},
		{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: ReasonKubeletReady, Message: MessageKubeletReady},
	}
	conds := make([]corev1.NodeCondition, 0, len(st.Conditions)+len(want))
	// Conditions set by others (node problem detector, NetworkUnavailable
	// from a network plugin) are kept untouched.
	for _, c := range st.Conditions {
		if _, ours := nodeConditionEvents[c.Type]; !ours {
			conds = append(conds, c)
		}
	}
	for _, c := range want {
		c.LastHeartbeatTime = nowT
		c.LastTransitionTime = nowT
		for _, o := range st.Conditions {
			if o.Type == c.Type && o.Status == c.Status {
				c.LastTransitionTime = o.LastTransitionTime
			}
		}
		conds = append(conds, c)
	}
	st.Conditions = conds
}

// nodeStatusChanged reports whether want differs from have in anything but
// condition heartbeat times: only then is a status write due before the
// report interval elapses.
func nodeStatusChanged(have, want *corev1.NodeStatus) bool {
	strip := func(s *corev1.NodeStatus) *corev1.NodeStatus {
		c := s.DeepCopy()
		for i := range c.Conditions {
			c.Conditions[i].LastHeartbeatTime = metav1.Time{}
		}
		return c
	}
	return !equality.Semantic.DeepEqual(strip(have), strip(want))
}

// conditionEvents returns the event reasons for the conditions of want
// whose status differs from have (or that have lacks).
func conditionEvents(have, want []corev1.NodeCondition) []string {
	var reasons []string
	for _, w := range want {
		byStatus, ok := nodeConditionEvents[w.Type]
		if !ok {
			continue
		}
		changed := true
		for _, h := range have {
			if h.Type == w.Type && h.Status == w.Status {
				changed = false
			}
		}
		if r := byStatus[w.Status]; changed && r != "" {
			reasons = append(reasons, r)
		}
	}
	return reasons
}

// nodeRef is the reference node events are recorded against; upstream
// uses the node name as UID so that events survive node re-creation.
func (k *Kubelet) nodeRef() *corev1.ObjectReference {
	return &corev1.ObjectReference{Kind: "Node", Name: k.cfg.NodeName, UID: types.UID(k.cfg.NodeName)}
}

func (k *Kubelet) recordNodeEvents(reasons []string) {
	for _, r := range reasons {
		k.recorder.Eventf(k.nodeRef(), corev1.EventTypeNormal, r, "Node %s status is now: %s", k.cfg.NodeName, r)
	}
}

// registerNode creates the Node, or adopts an existing one with the same
// name by reconciling the kubelet's labels. It is called once, before the
// heartbeat starts.
func (k *Kubelet) registerNode(ctx context.Context) error {
	rv, err := k.cfg.Runtime.Version(ctx)
	if err != nil {
		return fmt.Errorf("getting runtime version: %w", err)
	}
	k.runtimeVersion = rv.String()
	node := k.initialNode(k.runtimeVersion, k.cfg.Clock.Now())
	created, err := k.cfg.Client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	switch {
	case err == nil:
		k.recordNodeEvents(conditionEvents(nil, created.Status.Conditions))
		k.node = created
		k.lastReport = k.cfg.Clock.Now()
		return k.syncPodCIDR(ctx, created)
	case !apierrors.IsAlreadyExists(err):
		return fmt.Errorf("creating node %q: %w", k.cfg.NodeName, err)
	}
	existing, err := k.cfg.Client.CoreV1().Nodes().Get(ctx, k.cfg.NodeName, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("getting existing node %q: %w", k.cfg.NodeName, err)
	}
	if k.reconcileNodeMeta(existing) {
		if existing, err = k.cfg.Client.CoreV1().Nodes().Update(ctx, existing, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("updating labels of existing node %q: %w", k.cfg.NodeName, err)
		}
	}
	k.node = existing
	// The status of a node registered by an earlier run is stale (possibly
	// Unknown after the node lifecycle controller noticed the silence):
	// report now rather than at the next tick.
	return k.syncNodeStatus(ctx, true)
}

// currentNode returns the latest known version of the node: from the
// shared node lister when configured, else from the API server's watch
// cache (resourceVersion=0), as upstream's first status attempt does.
func (k *Kubelet) currentNode(ctx context.Context) (*corev1.Node, error) {
	if k.cfg.Nodes != nil {
		if n, err := k.cfg.Nodes.Get(k.cfg.NodeName); err == nil {
			return n, nil
		}
	}
	n, err := k.cfg.Client.CoreV1().Nodes().Get(ctx, k.cfg.NodeName, metav1.GetOptions{ResourceVersion: "0"})
	if err != nil {
		return nil, fmt.Errorf("getting node %q: %w", k.cfg.NodeName, err)
	}
	return n, nil
}

// syncNodeStatus writes the node status when it changed, or when
// NodeStatusReportFrequency has passed since the last write, or when force
// is set. Only the heartbeat goroutine (or registration before it) calls it.
func (k *Kubelet) syncNodeStatus(ctx context.Context, force bool) error {
	cur, err := k.currentNode(ctx)
	if err != nil {
		return err
	}
	// The lister may lag behind our own last write; the newer of the two
	// (by the API server's resourceVersion order for one object, which
	// only grows) is the base for the next write.
	if k.node != nil && k.node.ResourceVersion != "" && newerRV(k.node.ResourceVersion, cur.ResourceVersion) {
		cur = k.node
	}
	if err := k.syncPodCIDR(ctx, cur); err != nil {
		return err
	}
	now := k.cfg.Clock.Now()
	want := cur.DeepCopy()
	k.setNodeStatus(want, k.runtimeVersion, now)
	due := now.Sub(k.lastReport) >= k.cfg.NodeStatusReportFrequency
	if !force && !due && !nodeStatusChanged(&cur.Status, &want.Status) {
		return nil
	}
	updated, err := k.cfg.Client.CoreV1().Nodes().UpdateStatus(ctx, want, metav1.UpdateOptions{})
	if err != nil {
		return fmt.Errorf("updating status of node %q: %w", k.cfg.NodeName, err)
	}
	k.recordNodeEvents(conditionEvents(cur.Status.Conditions, updated.Status.Conditions))
	k.node = updated
	k.lastReport = now
	return nil
}

// newerRV reports whether resourceVersion a is newer than b. Versions of
// one object are etcd revisions (decimal integers): compare by length,
// then lexically, without parsing. Non-numeric versions are never newer.
func newerRV(a, b string) bool {
	for _, s := range [...]string{a, b} {
		for _, r := range s {
			if r < '0' || r > '9' {
				return false
			}
		}
	}
	if len(a) != len(b) {
		return len(a) > len(b)
	}
	return a > b
}

// syncPodCIDR passes a newly allocated node.spec.podCIDR to the runtime.
func (k *Kubelet) syncPodCIDR(ctx context.Context, node *corev1.Node) error {
	cidr := node.Spec.PodCIDR
	if cidr == "" || cidr == k.podCIDR {
		return nil
	}
	if err := k.cfg.Runtime.UpdatePodCIDR(ctx, cidr); err != nil {
		return fmt.Errorf("passing pod CIDR %s to the runtime: %w", cidr, err)
	}
	k.podCIDR = cidr
	return nil
}

// defaultSystemInfo fills the nodeInfo fields the kubelet itself knows.
func defaultSystemInfo(info corev1.NodeSystemInfo) corev1.NodeSystemInfo {
	info.KubeletVersion = KubeletVersion
	if info.OperatingSystem == "" {
		info.OperatingSystem = goruntime.GOOS
	}
	if info.Architecture == "" {
		info.Architecture = goruntime.GOARCH
	}
	return info
}
