package cluster

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"github.com/skiff-project/skiff/pkg/agent"
	"github.com/skiff-project/skiff/pkg/kubelet"
)

// The in-process control-plane components, named as kubeadm names their
// static pods (and their `component` label).
const (
	componentEtcd              = "etcd"
	componentAPIServer         = "kube-apiserver"
	componentControllerManager = "kube-controller-manager"
	componentScheduler         = "kube-scheduler"
)

// controlPlanePodsInterval is how often the components' health is checked
// and their mirror pods reconciled.
const controlPlanePodsInterval = 5 * time.Second

// componentHealth is one observation of a component's health.
type componentHealth struct {
	// Ready reports the component healthy.
	Ready bool
	// Reason says why it is not; empty when Ready.
	Reason string
}

// controlPlanePods keeps one mirror pod per in-process control-plane
// component in kube-system, the way kubeadm clusters show theirs: the API
// server, the embedded etcd member, the controller manager and the
// scheduler run inside `skiff server`, and these pods make them visible to
// `kubectl get pods -n kube-system`, with a status that follows their
// health. The pods carry kubernetes.io/config.source=skiff-server, which
// tells kubelets to leave them alone: nothing runs them but this process.
//
// It is level-triggered: every interval it compares each pod with what it
// should be and writes only the difference (nothing, once converged). A
// deleted pod is created again; one a user asked to delete (graceful
// deletion, which no kubelet finishes for these pods) is deleted at once
// and created again.
type controlPlanePods struct {
	client   kubernetes.Interface // immutable; never nil
	nodeName string               // immutable
	// fallbackIP is the pods' IP while the Node has no InternalIP (or
	// does not exist: --disable-agent); immutable.
	fallbackIP string
	// containers maps each component to its container (name, image,
	// command, probes); immutable.
	containers map[string]corev1.Container
	start      time.Time // when the server started; immutable
	clock      clock.WithTicker
	// health observes the components; called once per sync.
	health func(ctx context.Context) map[string]componentHealth
}

// runControlPlanePods keeps the mirror pods of this server's in-process
// components until ctx is done. RunServer starts it once the API server
// serves; etcd is the server's etcd client (its member is shown only when
// embedded).
func runControlPlanePods(ctx context.Context, cfg ServerConfig, pki *PKI, etcd *clientv3.Client, start time.Time) {
	logger := klog.FromContext(ctx).WithName("control-plane-pods")
	ctx = klog.NewContext(ctx, logger)
	restCfg := pki.LoopbackConfig(cfg.LocalURL())
	restCfg.UserAgent = "skiff-control-plane-pods"
	restCfg.Timeout = 10 * time.Second
	client, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		logger.Error(err, "no control-plane mirror pods: building a client")
		return
	}
	nodeName := cfg.NodeName
	if nodeName == "" {
		if nodeName, err = agent.DefaultNodeName(); err != nil {
			logger.Error(err, "no control-plane mirror pods")
			return
		}
	}
	embedded := len(cfg.EtcdServers) == 0
	if !embedded {
		etcd = nil
	}
	r := &controlPlanePods{
		client:     client,
		nodeName:   nodeName,
		fallbackIP: cfg.AdvertiseIP(agent.PrimaryIP).String(),
		containers: controlPlaneContainers(cfg, nodeName, embedded),
		start:      start,
		clock:      clock.RealClock{},
		health: func(ctx context.Context) map[string]componentHealth {
			return checkControlPlane(ctx, client, etcd, time.Now())
		},
	}
	r.run(ctx, controlPlanePodsInterval)
}

// run syncs every interval until ctx is done.
func (r *controlPlanePods) run(ctx context.Context, interval time.Duration) {
	logger := klog.FromContext(ctx)
	t := r.clock.NewTicker(interval)
	defer t.Stop()
	for {
		if err := r.sync(ctx); err != nil && ctx.Err() == nil {
			logger.Error(err, "syncing control-plane mirror pods")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C():
		}
	}
}

// sync observes the components' health once and reconciles every pod.
func (r *controlPlanePods) sync(ctx context.Context) error {
	node, err := r.client.CoreV1().Nodes().Get(ctx, r.nodeName, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		node = nil // --disable-agent, or not registered yet: no owner
	case err != nil:
		return fmt.Errorf("getting node %s: %w", r.nodeName, err)
	}
	ips := nodeInternalIPs(node)
	if len(ips) == 0 {
		ips = []string{r.fallbackIP}
	}
	health := r.health(ctx)
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(r.containers)) {
		want := controlPlanePod(r.containers[name], r.nodeName, node)
		if err := r.syncPod(ctx, want, health[name], ips); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// syncPod makes the API's pod match want and its status match h.
func (r *controlPlanePods) syncPod(ctx context.Context, want *corev1.Pod, h componentHealth, ips []string) error {
	key := want.Namespace + "/" + want.Name
	pods := r.client.CoreV1().Pods(want.Namespace)
	cur, err := pods.Get(ctx, want.Name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		cur = nil
	case err != nil:
		return fmt.Errorf("getting control-plane pod %s: %w", key, err)
	case cur.Annotations[kubelet.ConfigSourceAnnotationKey] != kubelet.ServerSource:
		// Someone else's pod has the name: never touch it.
		return fmt.Errorf("control-plane pod %s: the name is taken by a pod not kept by skiff-server", key)
	case cur.DeletionTimestamp != nil || cur.Annotations[kubelet.ConfigHashAnnotationKey] != want.Annotations[kubelet.ConfigHashAnnotationKey]:
		// A user's `kubectl delete` (no kubelet finishes it for these
		// pods), or the pod of a server that ran with other flags: the
		// spec cannot be updated in place, so replace the pod.
		uid := cur.UID
		err := pods.Delete(ctx, cur.Name, metav1.DeleteOptions{GracePeriodSeconds: new(int64(0)), Preconditions: &metav1.Preconditions{UID: &uid}})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("replacing control-plane pod %s: %w", key, err)
		}
		cur = nil
	case !metadataMatches(cur, want):
		updated := cur.DeepCopy()
		updated.OwnerReferences = want.OwnerReferences
		if updated.Labels == nil {
			updated.Labels = map[string]string{}
		}
		maps.Copy(updated.Labels, want.Labels)
		maps.Copy(updated.Annotations, want.Annotations)
		if cur, err = pods.Update(ctx, updated, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("updating control-plane pod %s: %w", key, err)
		}
	}
	if cur == nil {
		if cur, err = pods.Create(ctx, want, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("creating control-plane pod %s: %w", key, err)
		}
	}
	status := controlPlanePodStatus(cur, h, ips, r.start, r.clock.Now())
	if equality.Semantic.DeepEqual(cur.Status, status) {
		return nil
	}
	updated := cur.DeepCopy()
	updated.Status = status
	if _, err := pods.UpdateStatus(ctx, updated, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("updating status of control-plane pod %s: %w", key, err)
	}
	return nil
}

// metadataMatches reports whether cur has want's labels, annotations and
// owners (others' labels and annotations are kept).
func metadataMatches(cur, want *corev1.Pod) bool {
	for k, v := range want.Labels {
		if cur.Labels[k] != v {
			return false
		}
	}
	for k, v := range want.Annotations {
		if cur.Annotations[k] != v {
			return false
		}
	}
	return equality.Semantic.DeepEqual(cur.OwnerReferences, want.OwnerReferences)
}

// nodeInternalIPs returns node's InternalIP addresses; none for nil.
func nodeInternalIPs(node *corev1.Node) []string {
	if node == nil {
		return nil
	}
	var ips []string
	for _, a := range node.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			ips = append(ips, a.Address)
		}
	}
	return ips
}

// controlPlanePod returns the mirror pod of the component running c on
// nodeName: "<component>-<node>" in kube-system, labelled like kubeadm's
// (component, tier=control-plane), on the host network with the
// system-node-critical priority, tolerating every NoExecute taint, owned by
// node when it exists. Its config hash covers everything but the owner, so
// it changes exactly when the pod would have to be replaced.
func controlPlanePod(c corev1.Container, nodeName string, node *corev1.Node) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:      c.Name + "-" + nodeName,
			Namespace: metav1.NamespaceSystem,
			Labels:    map[string]string{"component": c.Name, "tier": "control-plane"},
		},
		Spec: corev1.PodSpec{
			NodeName:          nodeName,
			HostNetwork:       true,
			PriorityClassName: "system-node-critical",
			Containers:        []corev1.Container{c},
			Tolerations:       []corev1.Toleration{{Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute}},
		},
	}
	content, _ := json.Marshal(struct {
		Name   string
		Labels map[string]string
		Spec   corev1.PodSpec
	}{p.Name, p.Labels, p.Spec}) // cannot fail: plain data
	sum := sha256.Sum256(content)
	hash := hex.EncodeToString(sum[:16])
	p.Annotations = map[string]string{
		kubelet.ConfigSourceAnnotationKey: kubelet.ServerSource,
		kubelet.ConfigHashAnnotationKey:   hash,
		kubelet.ConfigMirrorAnnotationKey: hash,
	}
	if node != nil {
		p.OwnerReferences = []metav1.OwnerReference{{
			APIVersion: corev1.SchemeGroupVersion.String(),
			Kind:       "Node",
			Name:       node.Name,
			UID:        node.UID,
			Controller: new(true),
		}}
	}
	return p
}

// controlPlanePodStatus returns the status of pod for a component observed
// as h: Running since start on the host network (ips), with Ready,
// ContainersReady and the container's ready flag following h. Transition
// times are kept from pod's status while a condition does not change, so
// an unchanged observation gives exactly the current status.
func controlPlanePodStatus(pod *corev1.Pod, h componentHealth, ips []string, start, now time.Time) corev1.PodStatus {
	old := &pod.Status
	nowT := metav1.NewTime(now.Truncate(time.Second))
	startT := metav1.NewTime(start.Truncate(time.Second))
	s := corev1.PodStatus{
		Phase:     corev1.PodRunning,
		StartTime: &startT,
		QOSClass:  old.QOSClass,
	}
	if s.QOSClass == "" {
		s.QOSClass = corev1.PodQOSBestEffort
	}
	if len(ips) > 0 {
		s.HostIP, s.PodIP = ips[0], ips[0]
		for _, ip := range ips {
			s.HostIPs = append(s.HostIPs, corev1.HostIP{IP: ip})
			s.PodIPs = append(s.PodIPs, corev1.PodIP{IP: ip})
		}
	}
	var unready []string
	for _, c := range pod.Spec.Containers {
		s.ContainerStatuses = append(s.ContainerStatuses, corev1.ContainerStatus{
			Name:    c.Name,
			Image:   c.Image,
			State:   corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: startT}},
			Ready:   h.Ready,
			Started: new(true),
		})
		if !h.Ready {
			unready = append(unready, c.Name)
		}
	}
	ready := corev1.PodCondition{Status: corev1.ConditionTrue}
	if !h.Ready {
		ready = corev1.PodCondition{Status: corev1.ConditionFalse, Reason: kubelet.ReasonContainersNotReady,
			Message: fmt.Sprintf("containers with unready status: [%s]", strings.Join(unready, " "))}
		s.Message = h.Reason
	}
	podReady, containersReady := ready, ready
	podReady.Type, containersReady.Type = corev1.PodReady, corev1.ContainersReady
	for _, c := range [...]corev1.PodCondition{
		{Type: corev1.PodReadyToStartContainers, Status: corev1.ConditionTrue},
		{Type: corev1.PodInitialized, Status: corev1.ConditionTrue},
		podReady,
		containersReady,
		{Type: corev1.PodScheduled, Status: corev1.ConditionTrue},
	} {
		c.LastTransitionTime = nowT
		for _, o := range old.Conditions {
			if o.Type == c.Type && o.Status == c.Status {
				c.LastTransitionTime = o.LastTransitionTime
			}
		}
		s.Conditions = append(s.Conditions, c)
	}
	return s
}

// controlPlaneContainers returns the container of each in-process
// component (etcd only when embedded): the skiff image, and as
// command the `skiff server` flags that configure that component, with the
// values this server runs with.
func controlPlaneContainers(cfg ServerConfig, nodeName string, embeddedEtcd bool) map[string]corev1.Container {
	dataDir := cfg.DataDir
	if abs, err := filepath.Abs(dataDir); err == nil {
		dataDir = abs
	}
	common := []string{"skiff", "server", "--data-dir=" + dataDir, "--node-name=" + nodeName}
	if cfg.LogLevel != 0 {
		common = append(common, "--log-level="+strconv.Itoa(cfg.LogLevel))
	}
	flag := func(name, value string) string { return "--" + name + "=" + value }
	tolerations := []string{
		flag("default-not-ready-toleration-seconds", strconv.FormatInt(cfg.DefaultNotReadyTolerationSeconds, 10)),
		flag("default-unreachable-toleration-seconds", strconv.FormatInt(cfg.DefaultUnreachableTolerationSeconds, 10)),
	}

	apiserver := []string{
		flag("bind-address", cfg.BindAddress.String()),
		flag("secure-port", strconv.Itoa(cfg.SecurePort)),
	}
	if cfg.AdvertiseAddress.IsValid() {
		apiserver = append(apiserver, flag("advertise-address", cfg.AdvertiseAddress.String()))
	}
	apiserver = append(apiserver, flag("service-cluster-ip-range", cfg.ServiceClusterIPRange.String()))
	if cfg.ServiceNodePortRange.Size > 0 {
		apiserver = append(apiserver, flag("service-node-port-range", cfg.ServiceNodePortRange.String()))
	}
	if cfg.AuthorizationMode != "" {
		apiserver = append(apiserver, flag("authorization-mode", cfg.AuthorizationMode))
	}
	if cfg.ServiceAccountIssuer != "" {
		apiserver = append(apiserver, flag("service-account-issuer", cfg.ServiceAccountIssuer))
	}
	if len(cfg.EtcdServers) > 0 {
		apiserver = append(apiserver, flag("etcd-servers", strings.Join(cfg.EtcdServers, ",")))
		for _, f := range [...][2]string{{"etcd-cafile", cfg.EtcdCAFile}, {"etcd-certfile", cfg.EtcdCertFile}, {"etcd-keyfile", cfg.EtcdKeyFile}} {
			if f[1] != "" {
				apiserver = append(apiserver, flag(f[0], f[1]))
			}
		}
	}
	if cfg.TokenAuthFile != "" {
		apiserver = append(apiserver, flag("token-auth-file", cfg.TokenAuthFile))
	}
	for _, san := range cfg.TLSSANs {
		apiserver = append(apiserver, flag("tls-san", san))
	}
	apiserver = append(apiserver, tolerations...)

	controllerManager := append([]string{
		flag("cluster-cidr", cfg.ClusterCIDR.String()),
		flag("node-monitor-grace-period", cfg.NodeMonitorGracePeriod.String()),
	}, tolerations...)

	image := SkiffImage()
	container := func(name string, flags []string) corev1.Container {
		return corev1.Container{
			Name:            name,
			Image:           image,
			ImagePullPolicy: corev1.PullIfNotPresent,
			Command:         append(slices.Clone(common), flags...),
		}
	}
	out := map[string]corev1.Container{
		componentAPIServer:         container(componentAPIServer, apiserver),
		componentControllerManager: container(componentControllerManager, controllerManager),
		componentScheduler:         container(componentScheduler, nil),
	}
	// What the status follows, as kubeadm's manifests declare it.
	probeHost := cfg.AdvertiseAddress.String()
	if !cfg.AdvertiseAddress.IsValid() {
		probeHost = "127.0.0.1"
	}
	api := out[componentAPIServer]
	api.ReadinessProbe = &corev1.Probe{
		ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
			Host: probeHost, Path: "/readyz", Port: intstr.FromInt32(int32(cfg.SecurePort)), Scheme: corev1.URISchemeHTTPS}},
		TimeoutSeconds: 15, PeriodSeconds: int32(controlPlanePodsInterval.Seconds()), SuccessThreshold: 1, FailureThreshold: 1,
	}
	out[componentAPIServer] = api
	if embeddedEtcd {
		// The embedded member keeps its data in <data-dir>/etcd and
		// serves only this process; no flag configures it further.
		out[componentEtcd] = container(componentEtcd, nil)
	}
	return out
}

// checkControlPlane observes the health of the in-process components: the
// API server's /readyz; the embedded etcd member (when etcd is not nil)
// answering a linearizable read with no alarm raised, as `etcdctl endpoint
// health` checks; and the controller manager and the scheduler through
// their leader-election Leases, held and renewed in time (by this server or
// another: a standby is healthy), as componentstatuses reports them.
func checkControlPlane(ctx context.Context, client kubernetes.Interface, etcd *clientv3.Client, now time.Time) map[string]componentHealth {
	ctx, cancel := context.WithTimeout(ctx, 4*time.Second)
	defer cancel()
	h := map[string]componentHealth{}
	observe := func(name string, err error) {
		h[name] = componentHealth{Ready: err == nil}
		if err != nil {
			h[name] = componentHealth{Reason: err.Error()}
		}
	}
	observe(componentAPIServer, checkReadyz(ctx, client.CoreV1().RESTClient()))
	if etcd != nil {
		observe(componentEtcd, checkEtcdMember(ctx, etcd))
	}
	observe(componentControllerManager, checkLeaderLease(ctx, client, "kube-controller-manager", now))
	observe(componentScheduler, checkLeaderLease(ctx, client, "kube-scheduler", now))
	return h
}

func checkReadyz(ctx context.Context, c rest.Interface) error {
	if err := c.Get().AbsPath("/readyz").Do(ctx).Error(); err != nil {
		return fmt.Errorf("/readyz: %w", err)
	}
	return nil
}

func checkEtcdMember(ctx context.Context, etcd *clientv3.Client) error {
	if _, err := etcd.Get(ctx, "health"); err != nil {
		return fmt.Errorf("etcd: %w", err)
	}
	alarms, err := etcd.AlarmList(ctx)
	if err != nil {
		return fmt.Errorf("etcd: listing alarms: %w", err)
	}
	if len(alarms.Alarms) > 0 {
		return fmt.Errorf("etcd: alarm %s raised on member %x", alarms.Alarms[0].Alarm, alarms.Alarms[0].MemberID)
	}
	return nil
}

// checkLeaderLease reports an error unless the kube-system Lease name is
// held and was renewed within its duration at now.
func checkLeaderLease(ctx context.Context, client kubernetes.Interface, name string, now time.Time) error {
	lease, err := client.CoordinationV1().Leases(metav1.NamespaceSystem).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("leader election: lease kube-system/%s: %w", name, err)
	}
	s := lease.Spec
	if s.HolderIdentity == nil || *s.HolderIdentity == "" || s.RenewTime == nil {
		return fmt.Errorf("leader election: no leader holds lease kube-system/%s", name)
	}
	d := 15 * time.Second
	if s.LeaseDurationSeconds != nil {
		d = time.Duration(*s.LeaseDurationSeconds) * time.Second
	}
	if now.Sub(s.RenewTime.Time) > d {
		return fmt.Errorf("leader election: leader %s stopped renewing lease kube-system/%s", *s.HolderIdentity, name)
	}
	return nil
}
