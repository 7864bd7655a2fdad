package criruntime

import (
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/skiff-project/skiff/pkg/kubelet"
)

// Lifecycle hook reasons, as upstream spells them.
const (
	eventFailedPostStartHook = "FailedPostStartHook"
	eventFailedPreStopHook   = "FailedPreStopHook"
	reasonPostStartHookError = "PostStartHookError"
)

// runHook runs a lifecycle handler of container c (CRI id) of pod like
// upstream's handlerRunner: exec through the CRI's ExecSync (a non-zero
// exit fails), httpGet to the handler's host or the pod's IP (only a
// failed request fails, whatever the status code, as upstream), sleep. A
// zero timeout means none beyond ctx.
func (r *Runtime) runHook(ctx context.Context, pod *corev1.Pod, c *corev1.Container, id, podIP string, h *corev1.LifecycleHandler, timeout time.Duration) error {
	switch {
	case h.Exec != nil:
		stdout, stderr, err := r.rs.ExecSync(ctx, id, h.Exec.Command, timeout)
		if err != nil {
			return fmt.Errorf("exec lifecycle hook (%v) for container %q in pod %s failed - error: %w, message: %q",
				h.Exec.Command, c.Name, podDesc(pod), err, string(append(stdout, stderr...)))
		}
		return nil
	case h.HTTPGet != nil:
		if err := httpHook(ctx, c, podIP, h.HTTPGet, timeout); err != nil {
			return fmt.Errorf("HTTP lifecycle hook (%s) for container %q in pod %s failed - error: %w", h.HTTPGet.Path, c.Name, podDesc(pod), err)
		}
		return nil
	case h.Sleep != nil:
		t := time.NewTimer(time.Duration(h.Sleep.Seconds) * time.Second)
		defer t.Stop()
		select {
		case <-t.C:
			return nil
		case <-ctx.Done():
			return fmt.Errorf("sleep lifecycle hook for container %q in pod %s: %w", c.Name, podDesc(pod), ctx.Err())
		}
	}
	return fmt.Errorf("lifecycle hook for container %q in pod %s has no handler", c.Name, podDesc(pod))
}

// httpHook sends the handler's GET request and discards the answer.
func httpHook(ctx context.Context, c *corev1.Container, podIP string, g *corev1.HTTPGetAction, timeout time.Duration) error {
	host := g.Host
	if host == "" {
		host = podIP
	}
	if host == "" {
		return fmt.Errorf("no host: the pod has no IP")
	}
	port, err := resolvePort(c, g)
	if err != nil {
		return err
	}
	scheme := strings.ToLower(string(g.Scheme))
	if scheme == "" {
		scheme = "http"
	}
	path := g.Path
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	u, err := url.Parse(scheme + "://" + net.JoinHostPort(host, strconv.Itoa(port)) + path)
	if err != nil {
		return err
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	for _, h := range g.HTTPHeaders {
		if strings.EqualFold(h.Name, "Host") {
			req.Host = h.Value
			continue
		}
		req.Header.Add(h.Name, h.Value)
	}
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", "kube-lifecycle/skiff")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 10<<10))
	return resp.Body.Close()
}

// resolvePort is the handler's port number, a named port looked up in the
// container's ports.
func resolvePort(c *corev1.Container, g *corev1.HTTPGetAction) (int, error) {
	if g.Port.StrVal == "" {
		if g.Port.IntVal <= 0 || g.Port.IntVal > 65535 {
			return 0, fmt.Errorf("invalid port %d", g.Port.IntVal)
		}
		return int(g.Port.IntVal), nil
	}
	for _, p := range c.Ports {
		if p.Name == g.Port.StrVal {
			return int(p.ContainerPort), nil
		}
	}
	if n, err := strconv.Atoi(g.Port.StrVal); err == nil && n > 0 && n <= 65535 {
		return n, nil
	}
	return 0, fmt.Errorf("no port named %q in container %s", g.Port.StrVal, c.Name)
}

// specContainer finds the spec of the pod's container called name and
// whether it is an init container.
func specContainer(pod *corev1.Pod, name string) (*corev1.Container, bool) {
	for i := range pod.Spec.InitContainers {
		if pod.Spec.InitContainers[i].Name == name {
			return &pod.Spec.InitContainers[i], true
		}
	}
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == name {
			return &pod.Spec.Containers[i], false
		}
	}
	return nil, false
}

// podIP is the IP of the pod's ready sandbox, "" if none (or the node's
// for hostNetwork pods).
func (r *Runtime) podIP(ctx context.Context, pod *corev1.Pod) string {
	if pod.Spec.HostNetwork {
		if len(r.cfg.NodeIPs) > 0 {
			return r.cfg.NodeIPs[0]
		}
		return ""
	}
	sbs, err := r.rs.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{LabelSelector: map[string]string{LabelPodUID: string(pod.UID)}})
	if err != nil {
		return ""
	}
	for _, sb := range sbs {
		if sb.State != runtimeapi.PodSandboxState_SANDBOX_READY {
			continue
		}
		if st, err := r.rs.PodSandboxStatus(ctx, sb.Id, false); err == nil && st.GetStatus().GetNetwork().GetIp() != "" {
			return st.Status.Network.Ip
		}
	}
	return ""
}

// stopContainer stops CRI container id, the pod's container called name,
// like upstream's killContainer: its preStop hook (if any, and only with a
// positive grace period) runs first, bounded by the grace period, whose
// rest is the stop timeout (SIGTERM, then SIGKILL). A failed hook is
// reported to emit as FailedPreStopHook and the container is stopped all
// the same.
func (r *Runtime) stopContainer(ctx context.Context, pod *corev1.Pod, id, name, podIP string, grace time.Duration, emit func(kubelet.Event)) error {
	if c, init := specContainer(pod, name); c != nil && c.Lifecycle != nil && c.Lifecycle.PreStop != nil && grace > 0 {
		start := time.Now()
		if podIP == "" && c.Lifecycle.PreStop.HTTPGet != nil && c.Lifecycle.PreStop.HTTPGet.Host == "" {
			podIP = r.podIP(ctx, pod)
		}
		hctx, cancel := context.WithTimeout(ctx, grace)
		err := r.runHook(hctx, pod, c, id, podIP, c.Lifecycle.PreStop, grace)
		cancel()
		if err != nil && emit != nil {
			emit(kubelet.Event{Type: corev1.EventTypeWarning, Reason: eventFailedPreStopHook, FieldPath: kubelet.ContainerFieldPath(init, name), Message: err.Error()})
		}
		grace -= time.Since(start)
	}
	timeout := int64(math.Ceil(grace.Seconds()))
	if timeout < minContainerStopPeriod {
		timeout = minContainerStopPeriod
	}
	return r.rs.StopContainer(ctx, id, timeout)
}

// emitter sends events outside a SyncPod to Config.Events.
func (r *Runtime) emitter(pod *corev1.Pod) func(kubelet.Event) {
	if r.cfg.Events == nil {
		return nil
	}
	return func(e kubelet.Event) { r.cfg.Events(pod, e) }
}

// postStart runs c's postStart hook, if any, in the just started
// container id; on failure, like upstream, the event FailedPostStartHook
// is recorded, the container is killed and the hook's error returned.
func (r *Runtime) postStart(ctx context.Context, s *syncState, c *corev1.Container, fp, id string) error {
	if c.Lifecycle == nil || c.Lifecycle.PostStart == nil {
		return nil
	}
	var podIP string
	if len(s.rs.PodIPs) > 0 {
		podIP = s.rs.PodIPs[0]
	}
	err := r.runHook(ctx, s.pod, c, id, podIP, c.Lifecycle.PostStart, 0)
	if err == nil {
		return nil
	}
	// The message stays out of the event, as upstream: it may hold secrets.
	s.event(corev1.EventTypeWarning, eventFailedPostStartHook, fp, "PostStartHook failed")
	s.event(corev1.EventTypeNormal, eventKilling, fp, "FailedPostStartHook")
	grace := time.Duration(terminationGrace(s.pod)) * time.Second
	if kerr := r.stopContainer(ctx, s.pod, id, c.Name, podIP, grace, func(e kubelet.Event) { s.rs.Events = append(s.rs.Events, e) }); kerr != nil {
		s.errs = append(s.errs, fmt.Errorf("killing container %s after its postStart hook failed: %w", c.Name, kerr))
	}
	return err
}
