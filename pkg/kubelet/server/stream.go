package server

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"time"

	"k8s.io/klog/v2"
)

// streamTransport reaches the runtime's stream server: HTTP/1.1 (upgrades
// need it), no proxy from the environment, no connection reuse across
// sessions (each streaming URL is single use).
var streamTransport = &http.Transport{
	Proxy:                 nil,
	DialContext:           (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
	TLSHandshakeTimeout:   10 * time.Second,
	ResponseHeaderTimeout: 30 * time.Second,
	DisableKeepAlives:     true,
	ForceAttemptHTTP2:     false,
}

// streamParams are the flags exec and attach share. Upstream's kubelet
// reads input/output/error/tty ("1" when set); stdin/stdout/stderr are
// accepted too.
type streamParams struct {
	stdin, stdout, stderr, tty bool
}

func parseStreamParams(q url.Values) (streamParams, error) {
	flag := func(names ...string) bool {
		for _, n := range names {
			if v, ok := q[n]; ok && (len(v) == 0 || v[0] == "" || v[0] == "1" || strings.EqualFold(v[0], "true")) {
				return true
			}
		}
		return false
	}
	p := streamParams{
		stdin:  flag("input", "stdin"),
		stdout: flag("output", "stdout"),
		stderr: flag("error", "stderr"),
		tty:    flag("tty"),
	}
	if p.tty {
		// A terminal merges stderr into stdout.
		p.stderr = false
	}
	if !p.stdin && !p.stdout && !p.stderr {
		return p, errors.New("you must specify at least 1 of stdin, stdout, stderr")
	}
	return p, nil
}

func containerRef(r *http.Request) ContainerRef {
	return ContainerRef{
		Namespace: r.PathValue("namespace"),
		Pod:       r.PathValue("pod"),
		UID:       r.PathValue("uid"),
		Container: r.PathValue("container"),
	}
}

// serveExec serves /exec/{namespace}/{pod}[/{uid}]/{container}.
func (s *Server) serveExec(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	p, err := parseStreamParams(q)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	cmd := q["command"]
	if len(cmd) == 0 {
		http.Error(w, "you must specify at least 1 command", http.StatusBadRequest)
		return
	}
	ref := containerRef(r)
	u, err := s.cfg.Runtime.Exec(r.Context(), ExecRequest{ContainerRef: ref, Cmd: cmd, TTY: p.tty, Stdin: p.stdin, Stdout: p.stdout, Stderr: p.stderr})
	if err != nil {
		writeRuntimeError(w, fmt.Errorf("exec in container %s: %w", ref, err))
		return
	}
	proxyStream(w, r, u)
}

// serveAttach serves /attach/{namespace}/{pod}[/{uid}]/{container}.
func (s *Server) serveAttach(w http.ResponseWriter, r *http.Request) {
	p, err := parseStreamParams(r.URL.Query())
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	ref := containerRef(r)
	u, err := s.cfg.Runtime.Attach(r.Context(), AttachRequest{ContainerRef: ref, TTY: p.tty, Stdin: p.stdin, Stdout: p.stdout, Stderr: p.stderr})
	if err != nil {
		writeRuntimeError(w, fmt.Errorf("attach to container %s: %w", ref, err))
		return
	}
	proxyStream(w, r, u)
}

// servePortForward serves /portForward/{namespace}/{pod}[/{uid}]. Ports
// may be named by "port" or "ports" parameters (the WebSocket protocol);
// SPDY clients name them per stream.
func (s *Server) servePortForward(w http.ResponseWriter, r *http.Request) {
	req := PortForwardRequest{Namespace: r.PathValue("namespace"), Pod: r.PathValue("pod"), UID: r.PathValue("uid")}
	q := r.URL.Query()
	for _, v := range append(q["port"], q["ports"]...) {
		for _, f := range strings.Split(v, ",") {
			n, err := strconv.ParseUint(strings.TrimSpace(f), 10, 16)
			if err != nil || n == 0 {
				http.Error(w, fmt.Sprintf("invalid port %q", f), http.StatusBadRequest)
				return
			}
			req.Ports = append(req.Ports, int32(n))
		}
	}
	u, err := s.cfg.Runtime.PortForward(r.Context(), req)
	if err != nil {
		writeRuntimeError(w, fmt.Errorf("port-forward to pod %s/%s: %w", req.Namespace, req.Pod, err))
		return
	}
	proxyStream(w, r, u)
}

// proxyStream reverse-proxies r, upgrade included (SPDY or WebSocket), to
// the runtime's streaming URL. The session lasts until either side closes
// or r's context ends.
func proxyStream(w http.ResponseWriter, r *http.Request, streamURL string) {
	target, err := url.Parse(streamURL)
	if err != nil || (target.Scheme != "http" && target.Scheme != "https") || target.Host == "" {
		http.Error(w, fmt.Sprintf("runtime returned an unusable streaming URL %q", streamURL), http.StatusInternalServerError)
		return
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			u := *target
			pr.Out.URL = &u
			pr.Out.Host = target.Host
			pr.Out.Header.Del("Authorization")
		},
		Transport:     streamTransport,
		FlushInterval: -1,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			klog.V(2).InfoS("proxying to the runtime's stream server", "path", r.URL.Path, "err", err)
			http.Error(w, fmt.Sprintf("error proxying to the container runtime: %v", err), http.StatusBadGateway)
		},
	}
	rp.ServeHTTP(w, r)
}
