package criruntime

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	cri "k8s.io/cri-client/pkg"
	utilexec "k8s.io/utils/exec"

	"github.com/skiff-project/skiff/pkg/kubelet"
)

var _ kubelet.ProbingRuntime = (*Runtime)(nil)

// criID strips the "containerd://" prefix of a kubelet container ID.
func criID(containerID string) string {
	if _, id, ok := strings.Cut(containerID, "://"); ok {
		return id
	}
	return containerID
}

// ExecSync implements kubelet.ProbingRuntime through the CRI's ExecSync.
func (r *Runtime) ExecSync(ctx context.Context, containerID string, cmd []string, timeout time.Duration) ([]byte, int32, error) {
	stdout, stderr, err := r.rs.ExecSync(ctx, criID(containerID), cmd, timeout)
	out := append(stdout, stderr...)
	var exit utilexec.ExitError
	switch {
	case errors.As(err, &exit):
		return out, int32(exit.ExitStatus()), nil
	case errors.Is(err, cri.ErrCommandTimedOut):
		return out, 0, fmt.Errorf("criruntime: exec in %s: %w: %w", containerID, context.DeadlineExceeded, err)
	case err != nil:
		return out, 0, fmt.Errorf("criruntime: exec in %s: %w", containerID, err)
	}
	return out, 0, nil
}

// KillContainer implements kubelet.ProbingRuntime: it stops the container
// (its preStop hook, then SIGTERM, SIGKILL once gracePeriod passes) and keeps it, so its exit is the
// last state of the instance SyncPod starts next. A container that is
// gone is not an error.
func (r *Runtime) KillContainer(ctx context.Context, pod *corev1.Pod, containerID string, gracePeriod time.Duration) error {
	id := criID(containerID)
	var name string
	if st, err := r.rs.ContainerStatus(ctx, id, false); err == nil {
		name = st.GetStatus().GetLabels()[LabelContainerName]
	}
	err := r.stopContainer(ctx, pod, id, name, "", gracePeriod, r.emitter(pod))
	if err != nil && status.Code(err) != codes.NotFound {
		return fmt.Errorf("criruntime: killing container %s of pod %s: %w", containerID, podDesc(pod), err)
	}
	return nil
}
