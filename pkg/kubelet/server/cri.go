package server

import (
	"context"
	"fmt"
	"sort"

	internalapi "k8s.io/cri-api/pkg/apis"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skiff-project/skiff/pkg/kubelet/criruntime"
)

// CRI implements Runtime over a CRI runtime service, finding pods and
// containers by the labels criruntime (and upstream's kubelet) put on
// them, so it needs no state of its own.
type CRI struct {
	// Runtime is the CRI runtime service; required.
	Runtime internalapi.RuntimeService
}

var _ Runtime = CRI{}

// containers returns the pod's instances of the container, newest
// (highest attempt) first.
func (c CRI) containers(ctx context.Context, ref ContainerRef) ([]*runtimeapi.Container, error) {
	labels := map[string]string{
		criruntime.LabelPodNamespace:  ref.Namespace,
		criruntime.LabelPodName:       ref.Pod,
		criruntime.LabelContainerName: ref.Container,
	}
	if ref.UID != "" {
		labels[criruntime.LabelPodUID] = ref.UID
	}
	list, err := c.Runtime.ListContainers(ctx, &runtimeapi.ContainerFilter{LabelSelector: labels})
	if err != nil {
		return nil, fmt.Errorf("listing containers: %w", err)
	}
	sort.SliceStable(list, func(i, j int) bool {
		if ai, aj := attempt(list[i]), attempt(list[j]); ai != aj {
			return ai > aj
		}
		return list[i].CreatedAt > list[j].CreatedAt
	})
	return list, nil
}

func attempt(c *runtimeapi.Container) uint32 {
	if c.Metadata == nil {
		return 0
	}
	return c.Metadata.Attempt
}

// running returns the container's running instance.
func (c CRI) running(ctx context.Context, ref ContainerRef) (string, error) {
	list, err := c.containers(ctx, ref)
	if err != nil {
		return "", err
	}
	if len(list) == 0 {
		return "", fmt.Errorf("container %q in pod %s/%s: %w", ref.Container, ref.Namespace, ref.Pod, ErrNotFound)
	}
	if list[0].State != runtimeapi.ContainerState_CONTAINER_RUNNING {
		return "", fmt.Errorf("container %q in pod %s/%s is %s: %w", ref.Container, ref.Namespace, ref.Pod, list[0].State, ErrNotRunning)
	}
	return list[0].Id, nil
}

// LogPath implements Runtime: the log of the newest instance, or of the
// one before it when previous is set (upstream's "previous terminated
// container").
func (c CRI) LogPath(ctx context.Context, ref ContainerRef, previous bool) (LogFile, error) {
	list, err := c.containers(ctx, ref)
	if err != nil {
		return LogFile{}, err
	}
	i := 0
	if previous {
		i = 1
	}
	if len(list) <= i {
		what := "container"
		if previous {
			what = "previous terminated container"
		}
		return LogFile{}, fmt.Errorf("%s %q in pod %q: %w", what, ref.Container, ref.Pod, ErrNotFound)
	}
	st, err := c.Runtime.ContainerStatus(ctx, list[i].Id, false)
	if err != nil {
		return LogFile{}, fmt.Errorf("status of container %s: %w", list[i].Id, err)
	}
	if st.GetStatus().GetLogPath() == "" {
		return LogFile{}, fmt.Errorf("container %s has no log path: %w", list[i].Id, ErrNotFound)
	}
	return LogFile{Path: st.Status.LogPath, ContainerID: list[i].Id}, nil
}

// ContainerRunning implements Runtime.
func (c CRI) ContainerRunning(ctx context.Context, containerID string) (bool, error) {
	st, err := c.Runtime.ContainerStatus(ctx, containerID, false)
	if err != nil {
		return false, fmt.Errorf("status of container %s: %w", containerID, err)
	}
	return st.GetStatus().GetState() == runtimeapi.ContainerState_CONTAINER_RUNNING, nil
}

// Exec implements Runtime with CRI Exec on the running instance.
func (c CRI) Exec(ctx context.Context, req ExecRequest) (string, error) {
	id, err := c.running(ctx, req.ContainerRef)
	if err != nil {
		return "", err
	}
	resp, err := c.Runtime.Exec(ctx, &runtimeapi.ExecRequest{ContainerId: id, Cmd: req.Cmd, Tty: req.TTY, Stdin: req.Stdin, Stdout: req.Stdout, Stderr: req.Stderr})
	if err != nil {
		return "", fmt.Errorf("CRI exec: %w", err)
	}
	return resp.Url, nil
}

// Attach implements Runtime with CRI Attach on the running instance.
func (c CRI) Attach(ctx context.Context, req AttachRequest) (string, error) {
	id, err := c.running(ctx, req.ContainerRef)
	if err != nil {
		return "", err
	}
	resp, err := c.Runtime.Attach(ctx, &runtimeapi.AttachRequest{ContainerId: id, Tty: req.TTY, Stdin: req.Stdin, Stdout: req.Stdout, Stderr: req.Stderr})
	if err != nil {
		return "", fmt.Errorf("CRI attach: %w", err)
	}
	return resp.Url, nil
}

// PortForward implements Runtime with CRI PortForward on the pod's ready
// sandbox.
func (c CRI) PortForward(ctx context.Context, req PortForwardRequest) (string, error) {
	labels := map[string]string{criruntime.LabelPodNamespace: req.Namespace, criruntime.LabelPodName: req.Pod}
	if req.UID != "" {
		labels[criruntime.LabelPodUID] = req.UID
	}
	sbs, err := c.Runtime.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{LabelSelector: labels})
	if err != nil {
		return "", fmt.Errorf("listing pod sandboxes: %w", err)
	}
	id := ""
	var newest int64
	for _, sb := range sbs {
		if sb.State == runtimeapi.PodSandboxState_SANDBOX_READY && (id == "" || sb.CreatedAt > newest) {
			id, newest = sb.Id, sb.CreatedAt
		}
	}
	if id == "" {
		if len(sbs) > 0 {
			return "", fmt.Errorf("pod %s/%s has no ready sandbox: %w", req.Namespace, req.Pod, ErrNotRunning)
		}
		return "", fmt.Errorf("pod %s/%s: %w", req.Namespace, req.Pod, ErrNotFound)
	}
	resp, err := c.Runtime.PortForward(ctx, &runtimeapi.PortForwardRequest{PodSandboxId: id, Port: req.Ports})
	if err != nil {
		return "", fmt.Errorf("CRI port-forward: %w", err)
	}
	return resp.Url, nil
}
