// Package server is the kubelet's HTTPS API on :10250, the part the API
// server calls for `kubectl logs`, `exec`, `attach`, `cp` and
// `port-forward`. It serves upstream's kubelet paths:
//
//	GET  /containerLogs/{namespace}/{pod}/{container}
//	     ?follow&previous&tailLines&sinceSeconds&sinceTime&timestamps&limitBytes
//	GET|POST /exec/{namespace}/{pod}[/{uid}]/{container}?command=...&input&output&error&tty
//	GET|POST /attach/{namespace}/{pod}[/{uid}]/{container}?input&output&error&tty
//	GET|POST /portForward/{namespace}/{pod}[/{uid}]
//	GET  /stats/summary[?only_cpu_and_memory=true]
//	GET  /metrics/resource
//	GET  /healthz
//
// Logs are read from the CRI log files (the "<RFC3339Nano> stdout|stderr
// F|P <msg>" format containerd writes). Exec, attach and port-forward ask
// the runtime for a streaming URL (CRI Exec/Attach/PortForward, served by
// containerd's stream server on 127.0.0.1) and reverse-proxy the upgraded
// connection (SPDY or WebSocket) to it, so the client's protocol
// negotiation happens end to end with the runtime. The stats paths render
// what a StatsProvider reports (see stats.go): the Summary as JSON and
// upstream's resource metrics in the Prometheus text format, which the API
// server scrapes for metrics.k8s.io.
//
// Only the API server may call it: every path but /healthz needs a client
// certificate signed by the configured CA whose subject is the API
// server's kubelet client (CN kube-apiserver-kubelet-client) or a member
// of system:masters.
package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"k8s.io/klog/v2"
)

// Identities allowed to call the server by default.
const (
	// APIServerClientCN is the common name of the API server's kubelet
	// client certificate.
	APIServerClientCN = "kube-apiserver-kubelet-client"
	// MastersGroup is the organization of cluster administrators.
	MastersGroup = "system:masters"
)

// DefaultFollowPollInterval is how often a followed log file is checked
// for new lines and its container for an exit.
const DefaultFollowPollInterval = 200 * time.Millisecond

// ErrNotFound is returned (wrapped) by a Runtime when the pod or container
// does not exist; the server answers 404.
var ErrNotFound = errors.New("not found")

// ErrNotRunning is returned (wrapped) by a Runtime when a container or pod
// sandbox exists but cannot stream (it is not running); the server answers
// 400 like upstream.
var ErrNotRunning = errors.New("not running")

// ContainerRef names a container of a pod as the kubelet paths do. UID is
// optional: when set, it must match the pod's UID.
type ContainerRef struct {
	Namespace, Pod, UID, Container string
}

func (r ContainerRef) String() string {
	return fmt.Sprintf("%s/%s/%s", r.Namespace, r.Pod, r.Container)
}

// LogFile is where a container instance's CRI log is.
type LogFile struct {
	// Path is the CRI log file.
	Path string
	// ContainerID is the runtime's ID of the instance, for
	// Runtime.ContainerRunning.
	ContainerID string
}

// ExecRequest is what to run in a container.
type ExecRequest struct {
	ContainerRef
	Cmd                        []string
	TTY, Stdin, Stdout, Stderr bool
}

// AttachRequest attaches to a container's main process.
type AttachRequest struct {
	ContainerRef
	TTY, Stdin, Stdout, Stderr bool
}

// PortForwardRequest forwards to ports of a pod's network namespace. Ports
// may be empty: the client names them in its stream headers.
type PortForwardRequest struct {
	Namespace, Pod, UID string
	Ports               []int32
}

// Runtime is what the server needs from the container runtime. CRI
// implements it over a CRI runtime service. Implementations must be safe
// for concurrent use and return errors wrapping ErrNotFound or
// ErrNotRunning where those apply.
type Runtime interface {
	// LogPath finds the log of the container's current instance, or of the
	// one before it when previous is set.
	LogPath(ctx context.Context, ref ContainerRef, previous bool) (LogFile, error)
	// ContainerRunning reports whether the instance is still running (its
	// log may still grow).
	ContainerRunning(ctx context.Context, containerID string) (bool, error)
	// Exec, Attach and PortForward return the runtime's streaming URL for
	// the request; the server proxies the client's upgraded connection
	// to it.
	Exec(ctx context.Context, req ExecRequest) (string, error)
	Attach(ctx context.Context, req AttachRequest) (string, error)
	PortForward(ctx context.Context, req PortForwardRequest) (string, error)
}

// Config configures a Server.
type Config struct {
	// Runtime serves logs and streams; required.
	Runtime Runtime
	// Stats serves /stats/summary and /metrics/resource; without it
	// those paths answer 404.
	Stats StatsProvider
	// NodeName names the node in the stats summary.
	NodeName string
	// Certificate is the server's serving certificate; required by Serve.
	Certificate *tls.Certificate
	// ClientCAs verify client certificates; required: without them no
	// request but /healthz is allowed.
	ClientCAs *x509.CertPool
	// Authorize decides whether a verified client certificate may call
	// the API; by default only APIServerClientCN and MastersGroup may.
	Authorize func(cert *x509.Certificate) bool
	// FollowPollInterval is DefaultFollowPollInterval when zero.
	FollowPollInterval time.Duration
	// Now is time.Now when nil (sinceSeconds is relative to it).
	Now func() time.Time
}

// Server is the kubelet's API server. It is safe for concurrent use.
type Server struct {
	cfg     Config // immutable, defaults applied
	handler http.Handler
}

// New returns a Server for cfg.
func New(cfg Config) (*Server, error) {
	if cfg.Runtime == nil {
		return nil, errors.New("kubelet server: Config.Runtime is required")
	}
	if cfg.Authorize == nil {
		cfg.Authorize = DefaultAuthorize
	}
	if cfg.FollowPollInterval <= 0 {
		cfg.FollowPollInterval = DefaultFollowPollInterval
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Server{cfg: cfg}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	mux.Handle("GET /containerLogs/{namespace}/{pod}/{container}", s.authorized(http.HandlerFunc(s.serveContainerLogs)))
	for _, m := range []string{"GET", "POST"} {
		mux.Handle(m+" /exec/{namespace}/{pod}/{container}", s.authorized(http.HandlerFunc(s.serveExec)))
		mux.Handle(m+" /exec/{namespace}/{pod}/{uid}/{container}", s.authorized(http.HandlerFunc(s.serveExec)))
		mux.Handle(m+" /attach/{namespace}/{pod}/{container}", s.authorized(http.HandlerFunc(s.serveAttach)))
		mux.Handle(m+" /attach/{namespace}/{pod}/{uid}/{container}", s.authorized(http.HandlerFunc(s.serveAttach)))
		mux.Handle(m+" /portForward/{namespace}/{pod}", s.authorized(http.HandlerFunc(s.servePortForward)))
		mux.Handle(m+" /portForward/{namespace}/{pod}/{uid}", s.authorized(http.HandlerFunc(s.servePortForward)))
	}
	if cfg.Stats != nil {
		mux.Handle("GET /stats/summary", s.authorized(http.HandlerFunc(s.serveStatsSummary)))
		mux.Handle("GET /metrics/resource", s.authorized(http.HandlerFunc(s.serveResourceMetrics)))
	}
	s.handler = mux
	return s, nil
}

// DefaultAuthorize allows the API server's kubelet client and
// system:masters.
func DefaultAuthorize(cert *x509.Certificate) bool {
	return cert.Subject.CommonName == APIServerClientCN || slices.Contains(cert.Subject.Organization, MastersGroup)
}

// Handler returns the server's HTTP handler. It expects requests over TLS
// with verified client certificates (r.TLS.VerifiedChains), as Serve
// arranges.
func (s *Server) Handler() http.Handler { return s.handler }

// TLSConfig returns the server side TLS configuration Serve uses: the
// serving certificate, and client certificates verified against
// Config.ClientCAs when given (a client without one reaches /healthz
// only).
func (s *Server) TLSConfig() (*tls.Config, error) {
	if s.cfg.Certificate == nil {
		return nil, errors.New("kubelet server: Config.Certificate is required to serve TLS")
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{*s.cfg.Certificate},
		ClientAuth:   tls.VerifyClientCertIfGiven,
		ClientCAs:    s.cfg.ClientCAs,
		// Upgrades (SPDY, WebSocket) need HTTP/1.1.
		NextProtos: []string{"http/1.1"},
	}, nil
}

// Serve serves HTTPS on ln until ctx is done, then closes ln and every
// connection, including hijacked streaming sessions (their request
// contexts end with ctx). It returns nil after a shutdown caused by ctx.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	tlsCfg, err := s.TLSConfig()
	if err != nil {
		_ = ln.Close()
		return err
	}
	hs := &http.Server{
		Handler:           s.handler,
		TLSConfig:         tlsCfg,
		ReadHeaderTimeout: 30 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	closed := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(closed)
		_ = hs.Close()
	})
	err = hs.ServeTLS(ln, "", "")
	if stop() {
		// ctx is not done: the server failed on its own.
		_ = hs.Close()
		return fmt.Errorf("kubelet server: %w", err)
	}
	<-closed
	return nil
}

// authorized admits requests whose verified client certificate passes
// Config.Authorize: 401 without one, 403 for anyone else.
func (s *Server) authorized(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
			return
		}
		cert := r.TLS.VerifiedChains[0][0]
		if !s.cfg.Authorize(cert) {
			klog.V(2).InfoS("kubelet API request refused", "user", cert.Subject.CommonName, "path", r.URL.Path)
			http.Error(w, fmt.Sprintf("Forbidden (user=%s, verb=%s, path=%s)", cert.Subject.CommonName, strings.ToLower(r.Method), r.URL.Path), http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// writeRuntimeError answers err from the runtime with upstream's codes.
func writeRuntimeError(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, ErrNotFound):
		code = http.StatusNotFound
	case errors.Is(err, ErrNotRunning):
		code = http.StatusBadRequest
	}
	http.Error(w, err.Error(), code)
}
