package criruntime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skiff-project/skiff/pkg/kubelet"
)

// Waiting reasons and event reasons, as upstream spells them.
const (
	reasonCrashLoopBackOff      = "CrashLoopBackOff"
	reasonErrImagePull          = "ErrImagePull"
	reasonImagePullBackOff      = "ImagePullBackOff"
	reasonErrImageNeverPull     = "ErrImageNeverPull"
	reasonCreateContainerConfig = "CreateContainerConfigError"
	reasonCreateContainer       = "CreateContainerError"
	reasonRunContainer          = "RunContainerError"
	reasonContainerCreating     = "ContainerCreating"
	reasonStatusUnknown         = "ContainerStatusUnknown"

	eventPulling       = "Pulling"
	eventPulled        = "Pulled"
	eventFailed        = "Failed"
	eventBackOff       = "BackOff"
	eventCreated       = "Created"
	eventStarted       = "Started"
	eventKilling       = "Killing"
	eventFailedSandbox = "FailedCreatePodSandBox"
)

// instance is one CRI container of a pod (one attempt of a spec container).
type instance struct {
	id      string
	attempt uint32
	status  *runtimeapi.ContainerStatus
}

func (i *instance) exited() bool {
	return i.status.State == runtimeapi.ContainerState_CONTAINER_EXITED
}

// syncState carries one SyncPod's results.
type syncState struct {
	pod      *corev1.Pod
	rs       kubelet.PodRuntimeStatus
	sandbox  string
	sbConfig *runtimeapi.PodSandboxConfig
	errs     []error
}

func (s *syncState) event(typ, reason, fieldPath, format string, args ...any) {
	s.rs.Events = append(s.rs.Events, kubelet.Event{Type: typ, Reason: reason, FieldPath: fieldPath, Message: fmt.Sprintf(format, args...)})
}

// requeue asks for the next sync within d at the latest.
func (s *syncState) requeue(d time.Duration) {
	if d <= 0 {
		d = time.Millisecond
	}
	if s.rs.NextSyncAfter == 0 || d < s.rs.NextSyncAfter {
		s.rs.NextSyncAfter = d
	}
}

// SyncPod implements kubelet.Runtime.
func (r *Runtime) SyncPod(ctx context.Context, pod *corev1.Pod) (kubelet.PodRuntimeStatus, error) {
	s := &syncState{pod: pod}
	err := r.syncPod(ctx, s)
	s.errs = append(s.errs, err)
	if err := errors.Join(s.errs...); err != nil {
		return s.rs, fmt.Errorf("criruntime: syncing pod %s: %w", podDesc(pod), err)
	}
	return s.rs, nil
}

func (r *Runtime) syncPod(ctx context.Context, s *syncState) error {
	pod := s.pod
	uidFilter := map[string]string{LabelPodUID: string(pod.UID)}
	sandboxes, err := r.rs.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{LabelSelector: uidFilter})
	if err != nil {
		return fmt.Errorf("listing sandboxes: %w", err)
	}
	sort.Slice(sandboxes, func(i, j int) bool { return sandboxes[i].CreatedAt > sandboxes[j].CreatedAt })
	instances, err := r.podInstances(ctx, uidFilter)
	if err != nil {
		return err
	}

	var latest *runtimeapi.PodSandbox
	if len(sandboxes) > 0 {
		latest = sandboxes[0]
	}
	if latest == nil || latest.State != runtimeapi.PodSandboxState_SANDBOX_READY {
		// A pod that never restarts and already ran its containers is
		// not brought back after its sandbox died: report what is left.
		if pod.Spec.RestartPolicy == corev1.RestartPolicyNever && len(instances) > 0 {
			r.reportOnly(s, instances)
			return nil
		}
		var attempt uint32
		if latest != nil {
			attempt = latest.Metadata.GetAttempt() + 1
			for _, sb := range sandboxes {
				if sb.State == runtimeapi.PodSandboxState_SANDBOX_READY {
					continue
				}
				if err := r.rs.StopPodSandbox(ctx, sb.Id); err != nil {
					return fmt.Errorf("stopping dead sandbox %s: %w", sb.Id, err)
				}
			}
		}
		id, cfg, err := r.createSandbox(ctx, pod, attempt)
		if err != nil {
			s.event(corev1.EventTypeWarning, eventFailedSandbox, "", "Failed to create pod sandbox: %v", err)
			return err
		}
		s.sandbox, s.sbConfig = id, cfg
	} else {
		s.sandbox = latest.Id
		cfg, err := r.sandboxConfig(pod, latest.Metadata.GetAttempt())
		if err != nil {
			return fmt.Errorf("building sandbox config: %w", err)
		}
		s.sbConfig = cfg
	}

	st, err := r.rs.PodSandboxStatus(ctx, s.sandbox, false)
	if err != nil {
		return fmt.Errorf("reading sandbox %s: %w", s.sandbox, err)
	}
	s.rs.SandboxReady = st.GetStatus().GetState() == runtimeapi.PodSandboxState_SANDBOX_READY
	switch {
	case pod.Spec.HostNetwork:
		s.rs.PodIPs = append([]string(nil), r.cfg.NodeIPs...)
	case st.GetStatus().GetNetwork().GetIp() != "":
		s.rs.PodIPs = []string{st.Status.Network.Ip}
		for _, ip := range st.Status.Network.AdditionalIps {
			s.rs.PodIPs = append(s.rs.PodIPs, ip.Ip)
		}
	}

	// Init containers run one at a time, in order; the regular ones
	// start once every init container has succeeded.
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		cs, done := r.syncContainer(ctx, s, c, true, instances[c.Name])
		if cs != nil {
			s.rs.InitContainers = append(s.rs.InitContainers, *cs)
		}
		if !done {
			return nil
		}
	}
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		if cs, _ := r.syncContainer(ctx, s, c, false, instances[c.Name]); cs != nil {
			s.rs.Containers = append(s.rs.Containers, *cs)
		}
	}
	return nil
}

// podInstances returns the pod's containers by spec name, newest attempt
// first, each with its status.
func (r *Runtime) podInstances(ctx context.Context, uidFilter map[string]string) (map[string][]*instance, error) {
	list, err := r.rs.ListContainers(ctx, &runtimeapi.ContainerFilter{LabelSelector: uidFilter})
	if err != nil {
		return nil, fmt.Errorf("listing containers: %w", err)
	}
	out := map[string][]*instance{}
	for _, c := range list {
		resp, err := r.rs.ContainerStatus(ctx, c.Id, false)
		if err != nil {
			return nil, fmt.Errorf("reading container %s: %w", c.Id, err)
		}
		name := c.Labels[LabelContainerName]
		out[name] = append(out[name], &instance{id: c.Id, attempt: c.Metadata.GetAttempt(), status: resp.Status})
	}
	for _, l := range out {
		sort.Slice(l, func(i, j int) bool {
			if l[i].attempt != l[j].attempt {
				return l[i].attempt > l[j].attempt
			}
			return l[i].status.CreatedAt > l[j].status.CreatedAt
		})
	}
	return out, nil
}

// reportOnly fills s with the observed state of a pod the runtime will not
// act on any more.
func (r *Runtime) reportOnly(s *syncState, instances map[string][]*instance) {
	for _, c := range s.pod.Spec.InitContainers {
		if l := instances[c.Name]; len(l) > 0 {
			s.rs.InitContainers = append(s.rs.InitContainers, observedStatus(c.Name, l))
		}
	}
	for _, c := range s.pod.Spec.Containers {
		if l := instances[c.Name]; len(l) > 0 {
			s.rs.Containers = append(s.rs.Containers, observedStatus(c.Name, l))
		}
	}
}

// createSandbox creates the pod's cgroup and log directory and runs its
// sandbox.
func (r *Runtime) createSandbox(ctx context.Context, pod *corev1.Pod, attempt uint32) (string, *runtimeapi.PodSandboxConfig, error) {
	cfg, err := r.sandboxConfig(pod, attempt)
	if err != nil {
		return "", nil, fmt.Errorf("building sandbox config: %w", err)
	}
	if err := r.cgroups.create(cfg.Linux.CgroupParent, podCgroupLimits(pod)); err != nil {
		return "", nil, err
	}
	if err := os.MkdirAll(cfg.LogDirectory, 0o755); err != nil {
		return "", nil, fmt.Errorf("creating log directory: %w", err)
	}
	id, err := r.rs.RunPodSandbox(ctx, cfg, r.cfg.RuntimeHandler)
	if err != nil {
		return "", nil, fmt.Errorf("running sandbox: %w", err)
	}
	return id, cfg, nil
}

// shouldRestart applies the restart policy to an exited container; init
// containers are only restarted after failing, and never under Never.
func shouldRestart(pod *corev1.Pod, init bool, exitCode int32) bool {
	switch pod.Spec.RestartPolicy {
	case corev1.RestartPolicyNever:
		return false
	case corev1.RestartPolicyOnFailure:
		return exitCode != 0
	default:
		return !init || exitCode != 0
	}
}

// syncContainer brings one spec container to its desired state and returns
// its status (nil while it has never been created) and, for init
// containers, whether it completed successfully.
func (r *Runtime) syncContainer(ctx context.Context, s *syncState, c *corev1.Container, init bool, insts []*instance) (*kubelet.ContainerStatus, bool) {
	pod := s.pod
	fp := kubelet.ContainerFieldPath(init, c.Name)
	var cur *instance
	if len(insts) > 0 {
		cur = insts[0]
	}
	var attempt uint32
	if cur != nil {
		attempt = cur.attempt + 1
		switch cur.status.State {
		case runtimeapi.ContainerState_CONTAINER_RUNNING:
			if h := cur.status.Annotations[annotationContainerHash]; !init && h != "" && h != containerHash(c) {
				s.event(corev1.EventTypeNormal, eventKilling, fp, "Container %s definition changed, will be restarted", c.Name)
				var podIP string
				if len(s.rs.PodIPs) > 0 {
					podIP = s.rs.PodIPs[0]
				}
				emit := func(e kubelet.Event) { s.rs.Events = append(s.rs.Events, e) }
				if err := r.stopContainer(ctx, pod, cur.id, c.Name, podIP, time.Duration(terminationGrace(pod))*time.Second, emit); err != nil {
					s.errs = append(s.errs, fmt.Errorf("stopping changed container %s: %w", c.Name, err))
				}
				break
			}
			s.requeue(r.cfg.PollInterval)
			st := observedStatus(c.Name, insts)
			return &st, false
		case runtimeapi.ContainerState_CONTAINER_CREATED:
			// Created but not started: a start failed or the kubelet
			// stopped in between. Start it now.
			cs := r.startCreated(ctx, s, c, fp, insts)
			return cs, false
		case runtimeapi.ContainerState_CONTAINER_EXITED:
			code := cur.status.ExitCode
			if init && code == 0 {
				st := observedStatus(c.Name, insts)
				return &st, true
			}
			if !shouldRestart(pod, init, code) {
				st := observedStatus(c.Name, insts)
				return &st, false
			}
			key := string(pod.UID) + "/" + c.Name
			finished := time.Unix(0, cur.status.FinishedAt)
			if left, delay := r.crashBackoff.remaining(key, finished); left > 0 {
				s.event(corev1.EventTypeWarning, eventBackOff, fp, "Back-off restarting failed container %s in pod %s", c.Name, podDesc(pod))
				s.requeue(left)
				st := observedStatus(c.Name, insts)
				st.LastTerminationState = st.State
				st.State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{
					Reason:  reasonCrashLoopBackOff,
					Message: fmt.Sprintf("back-off %s restarting failed container=%s pod=%s", delay, c.Name, podDesc(pod)),
				}}
				return &st, false
			}
			r.crashBackoff.next(key, finished)
			// Keep the instance that just exited (its logs and
			// last state); older ones go.
			for _, old := range insts[1:] {
				if err := r.rs.RemoveContainer(ctx, old.id); err != nil {
					s.errs = append(s.errs, fmt.Errorf("removing old container %s: %w", old.id, err))
				}
			}
			insts = insts[:1]
		default:
			st := observedStatus(c.Name, insts)
			s.requeue(r.cfg.PollInterval)
			return &st, false
		}
	}
	cs := r.startContainer(ctx, s, c, init, fp, attempt, insts)
	return cs, false
}

// terminationGrace is the pod's termination grace period in seconds.
func terminationGrace(pod *corev1.Pod) int64 {
	if pod.Spec.TerminationGracePeriodSeconds != nil {
		return *pod.Spec.TerminationGracePeriodSeconds
	}
	return corev1.DefaultTerminationGracePeriodSeconds
}

// waiting returns the status of a container that could not be started,
// keeping the previous instance's termination as its last state.
func waiting(c *corev1.Container, prev []*instance, reason, message string) *kubelet.ContainerStatus {
	st := kubelet.ContainerStatus{Name: c.Name}
	if len(prev) > 0 {
		st = observedStatus(c.Name, prev)
		if st.State.Terminated != nil {
			st.LastTerminationState = st.State
		}
	}
	st.State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: message}}
	return &st
}

// startContainer pulls the image, creates attempt of c and starts it.
func (r *Runtime) startContainer(ctx context.Context, s *syncState, c *corev1.Container, init bool, fp string, attempt uint32, prev []*instance) *kubelet.ContainerStatus {
	pod := s.pod
	imageRef, reason, msg := r.ensureImage(ctx, s, c, fp)
	if reason != "" {
		return waiting(c, prev, reason, msg)
	}
	cfg, err := r.containerConfig(pod, c, imageRef, attempt, s.rs.PodIPs)
	if err == nil {
		err = r.applyImageUser(ctx, pod, c, cfg, imageRef)
	}
	if err != nil {
		s.event(corev1.EventTypeWarning, eventFailed, fp, "Error: %v", err)
		return waiting(c, prev, reasonCreateContainerConfig, err.Error())
	}
	if err := os.MkdirAll(filepath.Join(s.sbConfig.LogDirectory, c.Name), 0o755); err != nil {
		s.errs = append(s.errs, fmt.Errorf("creating log directory of %s: %w", c.Name, err))
		return waiting(c, prev, reasonCreateContainer, err.Error())
	}
	id, err := r.rs.CreateContainer(ctx, s.sandbox, cfg, s.sbConfig)
	if err != nil {
		s.event(corev1.EventTypeWarning, eventFailed, fp, "Error: %v", err)
		s.errs = append(s.errs, fmt.Errorf("creating container %s: %w", c.Name, err))
		return waiting(c, prev, reasonCreateContainer, err.Error())
	}
	s.event(corev1.EventTypeNormal, eventCreated, fp, "Created container: %s", c.Name)
	insts := append([]*instance{{id: id, attempt: attempt}}, prev...)
	return r.start(ctx, s, c, fp, insts)
}

// startCreated starts the newest instance, which is in state created.
func (r *Runtime) startCreated(ctx context.Context, s *syncState, c *corev1.Container, fp string, insts []*instance) *kubelet.ContainerStatus {
	return r.start(ctx, s, c, fp, insts)
}

// start starts insts[0] and returns the container's observed status.
func (r *Runtime) start(ctx context.Context, s *syncState, c *corev1.Container, fp string, insts []*instance) *kubelet.ContainerStatus {
	if err := r.rs.StartContainer(ctx, insts[0].id); err != nil {
		s.event(corev1.EventTypeWarning, eventFailed, fp, "Error: %v", err)
		s.errs = append(s.errs, fmt.Errorf("starting container %s: %w", c.Name, err))
		return waiting(c, insts[1:], reasonRunContainer, err.Error())
	}
	s.event(corev1.EventTypeNormal, eventStarted, fp, "Started container %s", c.Name)
	s.requeue(r.cfg.PollInterval)
	if err := r.postStart(ctx, s, c, fp, insts[0].id); err != nil {
		resp, serr := r.rs.ContainerStatus(ctx, insts[0].id, false)
		if serr != nil {
			return waiting(c, insts[1:], reasonPostStartHookError, err.Error())
		}
		insts[0].status = resp.Status
		return waiting(c, insts, reasonPostStartHookError, err.Error())
	}
	resp, err := r.rs.ContainerStatus(ctx, insts[0].id, false)
	if err != nil {
		s.errs = append(s.errs, fmt.Errorf("reading container %s: %w", c.Name, err))
		return waiting(c, insts[1:], reasonContainerCreating, "")
	}
	insts[0].status = resp.Status
	st := observedStatus(c.Name, insts)
	return &st
}

// observedStatus is the status of a spec container from its instances,
// newest first.
func observedStatus(name string, insts []*instance) kubelet.ContainerStatus {
	cur := insts[0]
	st := kubelet.ContainerStatus{
		Name:         name,
		ID:           "containerd://" + cur.id,
		ImageID:      cur.status.GetImageRef(),
		RestartCount: int32(cur.attempt),
		State:        criState(cur),
	}
	if len(insts) > 1 && insts[1].status != nil && insts[1].exited() {
		st.LastTerminationState = criState(insts[1])
	}
	return st
}

// criState maps a CRI container status to the API's container state.
func criState(i *instance) corev1.ContainerState {
	st := i.status
	switch st.State {
	case runtimeapi.ContainerState_CONTAINER_RUNNING:
		return corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(time.Unix(0, st.StartedAt))}}
	case runtimeapi.ContainerState_CONTAINER_EXITED:
		reason := st.Reason
		if reason == "" {
			reason = "Completed"
			if st.ExitCode != 0 {
				reason = "Error"
			}
		}
		t := &corev1.ContainerStateTerminated{
			ExitCode:    st.ExitCode,
			Reason:      reason,
			Message:     st.Message,
			ContainerID: "containerd://" + i.id,
		}
		if st.StartedAt > 0 {
			t.StartedAt = metav1.NewTime(time.Unix(0, st.StartedAt))
		}
		if st.FinishedAt > 0 {
			t.FinishedAt = metav1.NewTime(time.Unix(0, st.FinishedAt))
		}
		return corev1.ContainerState{Terminated: t}
	case runtimeapi.ContainerState_CONTAINER_CREATED:
		return corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reasonContainerCreating}}
	default:
		return corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reasonStatusUnknown}}
	}
}
