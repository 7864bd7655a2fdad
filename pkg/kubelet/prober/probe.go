package prober

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Execer runs a command in a running container, like the CRI's ExecSync.
type Execer interface {
	// ExecSync runs cmd in the container with containerID
	// ("<runtime>://<id>") and returns its combined output and exit
	// code. A command still running after timeout is killed and
	// reported as an error wrapping context.DeadlineExceeded; other
	// errors mean the command could not be run.
	ExecSync(ctx context.Context, containerID string, cmd []string, timeout time.Duration) (output []byte, exitCode int32, err error)
}

// Request is one probe to run.
type Request struct {
	Kind        Kind
	Probe       *corev1.Probe     // never nil
	Container   *corev1.Container // the spec container; never nil
	ContainerID string            // "<runtime>://<id>"
	PodIP       string            // the pod's primary IP; "" if unknown
	Timeout     time.Duration     // the probe's timeoutSeconds
}

// Executor runs probes. Implementations must be safe for concurrent use.
type Executor interface {
	// Probe runs req and returns its result and, for a failure, the
	// message upstream reports after "<Kind> probe failed: ".
	Probe(ctx context.Context, req Request) (Result, string)
}

// maxProbeBody bounds how much of an HTTP probe's response body is read.
const maxProbeBody = 10 << 10

// handlers is the Executor of the four upstream probe handlers: exec
// through an Execer, httpGet, tcpSocket and grpc from the kubelet's
// network namespace to the pod IP.
type handlers struct {
	exec Execer // nil: exec probes cannot run (Unknown)
}

// NewExecutor returns the Executor of upstream's handlers; exec probes run
// through e (which may be nil, then they are never run).
func NewExecutor(e Execer) Executor { return handlers{exec: e} }

// Probe implements Executor.
func (h handlers) Probe(ctx context.Context, req Request) (Result, string) {
	p := req.Probe
	switch {
	case p.Exec != nil:
		return h.execProbe(ctx, req)
	case p.HTTPGet != nil:
		return httpProbe(ctx, req)
	case p.TCPSocket != nil:
		port, err := resolvePort(p.TCPSocket.Port, req.Container)
		if err != nil {
			return Unknown, err.Error()
		}
		host := p.TCPSocket.Host
		if host == "" {
			host = req.PodIP
		}
		d := net.Dialer{Timeout: req.Timeout}
		conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			return Failure, err.Error()
		}
		_ = conn.Close()
		return Success, ""
	case p.GRPC != nil:
		return grpcProbe(ctx, req)
	default:
		return Unknown, "missing probe handler"
	}
}

func (h handlers) execProbe(ctx context.Context, req Request) (Result, string) {
	if h.exec == nil {
		return Unknown, "the runtime cannot run exec probes"
	}
	out, code, err := h.exec.ExecSync(ctx, req.ContainerID, req.Probe.Exec.Command, req.Timeout)
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return Failure, fmt.Sprintf("command %q timed out", strings.Join(req.Probe.Exec.Command, " "))
	case err != nil:
		return Unknown, err.Error()
	case code != 0:
		return Failure, string(out)
	}
	return Success, ""
}

// resolvePort returns the port number of port, looking names up in the
// container's ports like upstream.
func resolvePort(port intstr.IntOrString, c *corev1.Container) (int, error) {
	if port.Type == intstr.Int {
		if port.IntVal <= 0 || port.IntVal > 65535 {
			return 0, fmt.Errorf("invalid port number: %d", port.IntVal)
		}
		return int(port.IntVal), nil
	}
	for _, p := range c.Ports {
		if p.Name == port.StrVal {
			return int(p.ContainerPort), nil
		}
	}
	if n, err := strconv.Atoi(port.StrVal); err == nil && n > 0 && n <= 65535 {
		return n, nil
	}
	return 0, fmt.Errorf("couldn't find port: %v in %v", port.StrVal, c.Name)
}

// httpProbe is upstream's HTTP probe: success for a status in [200, 400),
// redirects followed only within the same host (a redirect elsewhere
// counts as success), certificates not verified.
func httpProbe(ctx context.Context, req Request) (Result, string) {
	g := req.Probe.HTTPGet
	port, err := resolvePort(g.Port, req.Container)
	if err != nil {
		return Unknown, err.Error()
	}
	host := g.Host
	if host == "" {
		host = req.PodIP
	}
	scheme := strings.ToLower(string(g.Scheme))
	if scheme == "" {
		scheme = "http"
	}
	path := g.Path
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	u := &url.URL{Scheme: scheme, Host: net.JoinHostPort(host, strconv.Itoa(port))}
	if ref, err := url.Parse(path); err == nil {
		u = u.ResolveReference(ref)
	}
	ctx, cancel := context.WithTimeout(ctx, req.Timeout)
	defer cancel()
	hreq, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return Unknown, err.Error()
	}
	hreq.Header.Set("User-Agent", "kube-probe/1.33")
	hreq.Header.Set("Accept", "*/*")
	for _, h := range g.HTTPHeaders {
		if strings.EqualFold(h.Name, "Host") {
			hreq.Host = h.Value
			continue
		}
		hreq.Header.Add(h.Name, h.Value)
	}
	client := &http.Client{
		Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // upstream does not verify probe targets
			DisableKeepAlives: true,
			Proxy:             nil,
		},
		CheckRedirect: func(r *http.Request, via []*http.Request) error {
			if r.URL.Hostname() != u.Hostname() || len(via) >= 10 {
				return http.ErrUseLastResponse
			}
			return nil
		},
	}
	resp, err := client.Do(hreq)
	if err != nil {
		return Failure, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxProbeBody))
	if resp.StatusCode >= http.StatusOK && resp.StatusCode < http.StatusBadRequest {
		return Success, ""
	}
	return Failure, fmt.Sprintf("HTTP probe failed with statuscode: %d", resp.StatusCode) + bodySuffix(body)
}

func bodySuffix(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return ", body: " + strings.TrimSpace(string(b))
}

// grpcProbe calls grpc.health.v1.Health/Check on the pod IP.
func grpcProbe(ctx context.Context, req Request) (Result, string) {
	g := req.Probe.GRPC
	addr := net.JoinHostPort(req.PodIP, strconv.Itoa(int(g.Port)))
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithUserAgent("kube-probe/1.33"))
	if err != nil {
		return Unknown, err.Error()
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, req.Timeout)
	defer cancel()
	var service string
	if g.Service != nil {
		service = *g.Service
	}
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: service})
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return Failure, fmt.Sprintf("timeout: health rpc did not complete within %v", req.Timeout)
	case err != nil:
		return Failure, fmt.Sprintf("error: health rpc probe failed: %v", err)
	case resp.GetStatus() != healthpb.HealthCheckResponse_SERVING:
		return Failure, fmt.Sprintf("service unhealthy (responded with %q)", resp.GetStatus())
	}
	return Success, ""
}
