package apiserver

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	gwebsocket "github.com/gorilla/websocket"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/httpstream/spdy"
	"k8s.io/apimachinery/pkg/util/httpstream/wsstream"
	"k8s.io/apimachinery/pkg/util/portforward"
	"k8s.io/apimachinery/pkg/util/remotecommand"
	clientremotecommand "k8s.io/client-go/tools/remotecommand"
	"k8s.io/client-go/util/exec"
	"k8s.io/klog/v2"
)

// defaultKubeletPort is used when a node reports no kubelet endpoint.
const defaultKubeletPort = 10250

// kubeletClient reaches kubelets for pods' log, exec, attach and
// portforward subresources. Immutable.
type kubeletClient struct {
	tls *tls.Config
	// transport serves plain requests and SPDY upgrades through the
	// reverse proxy: HTTP/1.1 only, since upgrades need it.
	transport *http.Transport
}

// SetKubeletClient sets the TLS configuration the server uses to call
// kubelets (port 10250) for pods' log, exec, attach and portforward: the
// client certificate (upstream's kube-apiserver-kubelet-client) and the CA
// that verifies kubelets' serving certificates. cfg is cloned; nil turns
// the subresources off (503). Safe to call at any time.
func (s *Server) SetKubeletClient(cfg *tls.Config) {
	if cfg == nil {
		s.kubelet.Store(nil)
		return
	}
	c := cfg.Clone()
	c.NextProtos = []string{"http/1.1"}
	s.kubelet.Store(&kubeletClient{
		tls: c,
		transport: &http.Transport{
			TLSClientConfig:     c,
			DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSHandshakeTimeout: 10 * time.Second,
			ForceAttemptHTTP2:   false,
			TLSNextProto:        map[string]func(string, *tls.Conn) http.RoundTripper{},
			MaxIdleConnsPerHost: 4,
			IdleConnTimeout:     90 * time.Second,
		},
	})
}

func (s *Server) kubeletClient() *kubeletClient {
	return s.kubelet.Load()
}

// podStreamSubresource reports whether sub is a pod subresource served by
// a kubelet.
func podStreamSubresource(sub string) bool {
	switch sub {
	case "log", "exec", "attach", "portforward":
		return true
	}
	return false
}

// servePodStream serves pods/log, pods/exec, pods/attach and
// pods/portforward by proxying to the kubelet of the pod's node, upgrades
// included. It reports false, having written nothing, for any other
// subresource.
//
// Clients speak SPDY (proxied as is), the WebSocket remote command
// protocol v5.channel.k8s.io (kubectl ≥ 1.30; translated here to SPDY
// towards the kubelet, like upstream's StreamTranslatorHandler) or SPDY
// tunnelled over WebSocket for port-forward (kubectl ≥ 1.31; the tunnel's
// frames are relayed to an SPDY connection to the kubelet). Older
// WebSocket protocols are proxied as is.
func (s *Server) servePodStream(w http.ResponseWriter, r *http.Request, ep *endpoint, info *requestInfo) bool {
	if ep.res.Group != "" || ep.res.Resource != "pods" || !podStreamSubresource(info.Subresource) {
		return false
	}
	gr := schema.GroupResource{Resource: "pods/" + info.Subresource}
	switch {
	case info.Subresource == "log" && r.Method != http.MethodGet:
		s.writeError(w, r, apierrors.NewMethodNotSupported(gr, strings.ToLower(r.Method)))
		return true
	case r.Method != http.MethodGet && r.Method != http.MethodPost:
		s.writeError(w, r, apierrors.NewMethodNotSupported(gr, strings.ToLower(r.Method)))
		return true
	}
	kc := s.kubeletClient()
	if kc == nil {
		s.writeError(w, r, apierrors.NewServiceUnavailable(fmt.Sprintf("pods/%s is not served: the API server has no kubelet client configured", info.Subresource)))
		return true
	}
	lookupCtx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	pod, host, err := s.podKubelet(lookupCtx, ep, info)
	cancel()
	if err != nil {
		s.writeError(w, r, err)
		return true
	}
	q := r.URL.Query()
	target := &url.URL{Scheme: "https", Host: host}
	params := url.Values{}
	exec := execParams{}
	switch info.Subresource {
	case "log":
		container, err := podContainer(pod, q.Get("container"))
		if err != nil {
			s.writeError(w, r, err)
			return true
		}
		target.Path = "/containerLogs/" + pod.Namespace + "/" + pod.Name + "/" + container
		for _, k := range []string{"follow", "previous", "timestamps", "tailLines", "sinceSeconds", "sinceTime", "limitBytes"} {
			if v := q.Get(k); v != "" {
				params.Set(k, v)
			}
		}
		if err := validateLogParams(params); err != nil {
			s.writeError(w, r, err)
			return true
		}
	case "exec", "attach":
		container, err := podContainer(pod, q.Get("container"))
		if err != nil {
			s.writeError(w, r, err)
			return true
		}
		exec = execParams{stdin: queryBool(q, "stdin"), stdout: queryBool(q, "stdout"), stderr: queryBool(q, "stderr"), tty: queryBool(q, "tty")}
		if exec.tty {
			exec.stderr = false
		}
		if !exec.stdin && !exec.stdout && !exec.stderr {
			s.writeError(w, r, apierrors.NewBadRequest("you must specify at least 1 of stdin, stdout, stderr"))
			return true
		}
		path := "/" + info.Subresource + "/" + pod.Namespace + "/" + pod.Name + "/" + container
		if info.Subresource == "exec" {
			if len(q["command"]) == 0 {
				s.writeError(w, r, apierrors.NewBadRequest("you must specify at least 1 command"))
				return true
			}
			params["command"] = q["command"]
		}
		target.Path = path
		// Upstream's kubelet names the streams input, output and error.
		for name, on := range map[string]bool{"input": exec.stdin, "output": exec.stdout, "error": exec.stderr, "tty": exec.tty} {
			if on {
				params.Set(name, "1")
			}
		}
	case "portforward":
		target.Path = "/portForward/" + pod.Namespace + "/" + pod.Name
		for _, p := range q["ports"] {
			for _, f := range strings.Split(p, ",") {
				if n, err := strconv.ParseUint(strings.TrimSpace(f), 10, 16); err != nil || n == 0 {
					s.writeError(w, r, apierrors.NewBadRequest(fmt.Sprintf("invalid port %q", f)))
					return true
				}
				params.Add("port", strings.TrimSpace(f))
			}
		}
	}
	target.RawQuery = params.Encode()

	switch {
	case (info.Subresource == "exec" || info.Subresource == "attach") && wsstream.IsWebSocketRequestWithStreamCloseProtocol(r):
		s.translateRemoteCommand(w, r, kc, target, exec)
	case info.Subresource == "portforward" && wsstream.IsWebSocketRequestWithTunnelingProtocol(r):
		s.tunnelPortForward(w, r, kc, target)
	default:
		s.proxyToKubelet(w, r, kc, target)
	}
	return true
}

// podKubelet reads the pod and its node and returns the kubelet's
// host:port (the node's InternalIP, else ExternalIP, else Hostname, and
// its status.daemonEndpoints.kubeletEndpoint port).
func (s *Server) podKubelet(ctx context.Context, ep *endpoint, info *requestInfo) (*corev1.Pod, string, error) {
	obj, err := s.getServed(ctx, ep, info.Namespace, info.Name)
	if err != nil {
		return nil, "", err
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return nil, "", apierrors.NewInternalError(fmt.Errorf("stored pod is a %T", obj))
	}
	if pod.Spec.NodeName == "" {
		return nil, "", apierrors.NewBadRequest(fmt.Sprintf("pod %s does not have a host assigned", pod.Name))
	}
	nodes, ok := s.lookup(schema.GroupVersionResource{Version: "v1", Resource: "nodes"})
	if !ok {
		return nil, "", apierrors.NewInternalError(errors.New("nodes are not served"))
	}
	nobj, err := s.getServed(ctx, nodes, "", pod.Spec.NodeName)
	if err != nil {
		if apierrors.IsNotFound(err) {
			return nil, "", apierrors.NewBadRequest(fmt.Sprintf("node %s of pod %s not found", pod.Spec.NodeName, pod.Name))
		}
		return nil, "", err
	}
	node, ok := nobj.(*corev1.Node)
	if !ok {
		return nil, "", apierrors.NewInternalError(fmt.Errorf("stored node is a %T", nobj))
	}
	addr := nodeAddress(node)
	if addr == "" {
		return nil, "", apierrors.NewServiceUnavailable(fmt.Sprintf("node %s has no address", node.Name))
	}
	port := int(node.Status.DaemonEndpoints.KubeletEndpoint.Port)
	if port <= 0 {
		port = defaultKubeletPort
	}
	return pod, net.JoinHostPort(addr, strconv.Itoa(port)), nil
}

// nodeAddress picks the address to reach a node's kubelet at.
func nodeAddress(node *corev1.Node) string {
	for _, t := range []corev1.NodeAddressType{corev1.NodeInternalIP, corev1.NodeExternalIP, corev1.NodeHostName} {
		for _, a := range node.Status.Addresses {
			if a.Type == t && a.Address != "" {
				return a.Address
			}
		}
	}
	return ""
}

// podContainer resolves the container parameter as upstream does: the
// only container when none is named, and a 400 naming the choices
// otherwise. Init and ephemeral containers may be named.
func podContainer(pod *corev1.Pod, name string) (string, error) {
	if name == "" {
		if len(pod.Spec.Containers) == 1 {
			return pod.Spec.Containers[0].Name, nil
		}
		var names, inits []string
		for _, c := range pod.Spec.Containers {
			names = append(names, c.Name)
		}
		for _, c := range pod.Spec.InitContainers {
			inits = append(inits, c.Name)
		}
		msg := fmt.Sprintf("a container name must be specified for pod %s, choose one of: %v", pod.Name, names)
		if len(inits) > 0 {
			msg += fmt.Sprintf(" or one of the init containers: %v", inits)
		}
		return "", apierrors.NewBadRequest(msg)
	}
	for _, c := range pod.Spec.Containers {
		if c.Name == name {
			return name, nil
		}
	}
	for _, c := range pod.Spec.InitContainers {
		if c.Name == name {
			return name, nil
		}
	}
	for _, c := range pod.Spec.EphemeralContainers {
		if c.Name == name {
			return name, nil
		}
	}
	return "", apierrors.NewBadRequest(fmt.Sprintf("container %s is not valid for pod %s", name, pod.Name))
}

// validateLogParams checks PodLogOptions as upstream's validation does.
func validateLogParams(p url.Values) error {
	for _, k := range []string{"tailLines", "sinceSeconds", "limitBytes"} {
		v := p.Get(k)
		if v == "" {
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		least := int64(1)
		if k == "tailLines" {
			least = 0
		}
		if err != nil || n < least {
			return apierrors.NewBadRequest(fmt.Sprintf("%s: Invalid value: %q: must be an integer of at least %d", k, v, least))
		}
	}
	if p.Get("sinceSeconds") != "" && p.Get("sinceTime") != "" {
		return apierrors.NewBadRequest("at most one of `sinceTime` or `sinceSeconds` may be specified")
	}
	if v := p.Get("sinceTime"); v != "" {
		if _, err := time.Parse(time.RFC3339, v); err != nil {
			return apierrors.NewBadRequest(fmt.Sprintf("sinceTime: %v", err))
		}
	}
	return nil
}

func queryBool(q url.Values, key string) bool {
	v := q.Get(key)
	return v == "1" || strings.EqualFold(v, "true")
}

// execParams are the streams an exec or attach asked for.
type execParams struct {
	stdin, stdout, stderr, tty bool
}

// proxyToKubelet reverse-proxies r to target: streamed responses (logs
// with follow) and upgrades (SPDY, WebSocket) pass through. The client's
// credentials are not forwarded; the kubelet sees the API server's client
// certificate. Kubelet errors come back as Status objects.
func (s *Server) proxyToKubelet(w http.ResponseWriter, r *http.Request, kc *kubeletClient, target *url.URL) {
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL = target
			pr.Out.Host = target.Host
			pr.Out.Header.Del("Authorization")
			pr.Out.Header.Del("Cookie")
			for k := range pr.Out.Header {
				if strings.HasPrefix(k, "Impersonate-") {
					pr.Out.Header.Del(k)
				}
			}
			if p := pr.Out.Header.Get("Sec-Websocket-Protocol"); p != "" {
				// Drop bearer tokens browsers pass as a subprotocol.
				var keep []string
				for _, f := range strings.Split(p, ",") {
					if f = strings.TrimSpace(f); !strings.HasPrefix(f, "base64url.bearer.authorization.k8s.io.") {
						keep = append(keep, f)
					}
				}
				pr.Out.Header.Set("Sec-Websocket-Protocol", strings.Join(keep, ", "))
			}
		},
		Transport:      kc.transport,
		FlushInterval:  -1,
		ModifyResponse: kubeletErrorToStatus,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			klog.V(2).InfoS("proxying to kubelet", "url", target.String(), "err", err)
			s.writeError(w, r, apierrors.NewServiceUnavailable(fmt.Sprintf("error dialing backend: %v", err)))
		},
	}
	rp.ServeHTTP(w, r)
}

// kubeletErrorToStatus turns a kubelet's plain text error into a Status
// object with the same code, which kubectl prints as "Error from server".
func kubeletErrorToStatus(resp *http.Response) error {
	if resp.StatusCode < 400 || strings.Contains(resp.Header.Get("Content-Type"), "json") {
		return nil
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	if err != nil {
		return fmt.Errorf("reading kubelet error: %w", err)
	}
	st := statusForCode(resp.StatusCode, strings.TrimSpace(string(body)))
	b, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("encoding status: %w", err)
	}
	resp.Body = io.NopCloser(bytes.NewReader(b))
	resp.ContentLength = int64(len(b))
	resp.Header.Set("Content-Length", strconv.Itoa(len(b)))
	resp.Header.Set("Content-Type", "application/json")
	return nil
}

func statusForCode(code int, msg string) *metav1.Status {
	reason := metav1.StatusReasonInternalError
	switch code {
	case http.StatusBadRequest:
		reason = metav1.StatusReasonBadRequest
	case http.StatusUnauthorized:
		reason = metav1.StatusReasonUnauthorized
	case http.StatusForbidden:
		reason = metav1.StatusReasonForbidden
	case http.StatusNotFound:
		reason = metav1.StatusReasonNotFound
	case http.StatusServiceUnavailable, http.StatusBadGateway:
		reason = metav1.StatusReasonServiceUnavailable
	}
	return &metav1.Status{
		TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
		Status:   metav1.StatusFailure,
		Message:  msg,
		Reason:   reason,
		Code:     int32(code),
	}
}

// hijackable gives x/net/websocket (used by wsstream) the http.Hijacker
// it asserts, through http.ResponseController so wrapped writers (the
// metrics recorder) work.
type hijackable struct{ http.ResponseWriter }

func (h hijackable) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return http.NewResponseController(h.ResponseWriter).Hijack()
}

// Remote command WebSocket channels.
const (
	chanStdin  = remotecommand.StreamStdIn
	chanStdout = remotecommand.StreamStdOut
	chanStderr = remotecommand.StreamStdErr
	chanError  = remotecommand.StreamErr
	chanResize = remotecommand.StreamResize
)

// translateRemoteCommand serves a v5.channel.k8s.io WebSocket exec or
// attach by running it over SPDY against the kubelet: stdin (with
// half-close), stdout, stderr and terminal resizes are relayed, and the
// outcome is written as a Status on the error channel (exit codes as
// upstream's NonZeroExitCode) before the WebSocket closes.
func (s *Server) translateRemoteCommand(w http.ResponseWriter, r *http.Request, kc *kubeletClient, target *url.URL, p execParams) {
	rt, err := spdy.NewRoundTripperWithConfig(spdy.RoundTripperConfig{TLS: kc.tls, PingPeriod: 5 * time.Second})
	if err != nil {
		s.writeError(w, r, apierrors.NewInternalError(fmt.Errorf("spdy round tripper: %w", err)))
		return
	}
	executor, err := clientremotecommand.NewSPDYExecutorForTransports(rt, rt, http.MethodPost, target)
	if err != nil {
		s.writeError(w, r, apierrors.NewInternalError(fmt.Errorf("spdy executor: %w", err)))
		return
	}
	channels := make([]wsstream.ChannelType, 5)
	if p.stdin {
		channels[chanStdin] = wsstream.ReadChannel
	}
	if p.stdout {
		channels[chanStdout] = wsstream.WriteChannel
	}
	if p.stderr {
		channels[chanStderr] = wsstream.WriteChannel
	}
	channels[chanError] = wsstream.WriteChannel
	if p.tty {
		channels[chanResize] = wsstream.ReadChannel
	}
	conn := wsstream.NewConn(map[string]wsstream.ChannelProtocolConfig{
		remotecommand.StreamProtocolV5Name: {Binary: true, Channels: channels},
	})
	_, streams, err := conn.Open(hijackable{w}, r)
	if err != nil {
		klog.V(2).InfoS("websocket exec upgrade failed", "path", r.URL.Path, "err", err)
		return
	}
	defer conn.Close()

	opts := clientremotecommand.StreamOptions{Tty: p.tty}
	if p.stdin {
		opts.Stdin = streams[chanStdin]
	}
	if p.stdout {
		opts.Stdout = streams[chanStdout]
	}
	if p.stderr {
		opts.Stderr = streams[chanStderr]
	}
	var sizes *resizeQueue
	if p.tty {
		sizes = newResizeQueue(streams[chanResize])
		opts.TerminalSizeQueue = sizes
	}
	// r's context ends with the server; a client that goes away ends
	// stdin (its channel closes) or the next write.
	err = executor.StreamWithContext(r.Context(), opts)
	if sizes != nil {
		sizes.stop()
	}
	st := &metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}, Status: metav1.StatusSuccess}
	var statusErr *apierrors.StatusError
	var exitErr exec.CodeExitError
	switch {
	case err == nil:
	case errors.As(err, &exitErr) && exitErr.Exited():
		st = &metav1.Status{
			TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
			Status:   metav1.StatusFailure,
			Reason:   remotecommand.NonZeroExitCodeReason,
			Message:  fmt.Sprintf("command terminated with non-zero exit code: %v", exitErr),
			Details: &metav1.StatusDetails{Causes: []metav1.StatusCause{{
				Type: remotecommand.ExitCodeCauseType, Message: strconv.Itoa(exitErr.ExitStatus()),
			}}},
		}
	case errors.As(err, &statusErr):
		st = &statusErr.ErrStatus
	default:
		st = statusForCode(http.StatusInternalServerError, err.Error())
	}
	b, err := json.Marshal(st)
	if err == nil {
		_, err = streams[chanError].Write(b)
	}
	if err != nil {
		klog.V(2).InfoS("writing the exec status", "path", r.URL.Path, "err", err)
	}
}

// resizeQueue feeds terminal sizes read (as JSON) from the WebSocket's
// resize channel to the SPDY executor. Its goroutine ends when the channel
// ends (the WebSocket closes) or stop is called.
type resizeQueue struct {
	sizes chan clientremotecommand.TerminalSize
	done  chan struct{}
	once  sync.Once
}

func newResizeQueue(r io.Reader) *resizeQueue {
	q := &resizeQueue{sizes: make(chan clientremotecommand.TerminalSize, 1), done: make(chan struct{})}
	go func() {
		defer close(q.sizes)
		dec := json.NewDecoder(r)
		for {
			var size clientremotecommand.TerminalSize
			if err := dec.Decode(&size); err != nil {
				return
			}
			select {
			case q.sizes <- size:
			case <-q.done:
				return
			}
		}
	}()
	return q
}

// Next implements remotecommand.TerminalSizeQueue; nil ends the resizes.
func (q *resizeQueue) Next() *clientremotecommand.TerminalSize {
	select {
	case size, ok := <-q.sizes:
		if !ok {
			return nil
		}
		return &size
	case <-q.done:
		return nil
	}
}

func (q *resizeQueue) stop() { q.once.Do(func() { close(q.done) }) }

// tunnelPortForward serves kubectl's SPDY-over-WebSocket port-forward:
// it opens an SPDY upgrade to the kubelet, accepts the WebSocket, and
// relays the tunnel's binary messages to and from the kubelet connection
// byte for byte, so the client's SPDY session runs with the kubelet.
func (s *Server) tunnelPortForward(w http.ResponseWriter, r *http.Request, kc *kubeletClient, target *url.URL) {
	var protocols []string
	for _, p := range gwebsocket.Subprotocols(r) {
		if strings.HasPrefix(p, portforward.WebsocketsSPDYTunnelingPrefix) {
			protocols = append(protocols, p)
		}
	}
	if !slices.Contains(protocols, portforward.WebsocketsSPDYTunnelingPortForwardV1) {
		s.writeError(w, r, apierrors.NewBadRequest(fmt.Sprintf("unsupported port-forward tunneling protocols %v", protocols)))
		return
	}
	dialCtx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	backend, br, err := dialUpgrade(dialCtx, kc.tls, target, portforward.PortForwardV1Name)
	cancel()
	if err != nil {
		s.writeError(w, r, apierrors.NewServiceUnavailable(fmt.Sprintf("error dialing backend: %v", err)))
		return
	}
	defer backend.Close()
	up := gwebsocket.Upgrader{
		Subprotocols:    []string{portforward.WebsocketsSPDYTunnelingPortForwardV1},
		CheckOrigin:     func(*http.Request) bool { return true },
		ReadBufferSize:  32 << 10,
		WriteBufferSize: 32 << 10,
	}
	ws, err := up.Upgrade(w, r, nil)
	if err != nil {
		klog.V(2).InfoS("port-forward websocket upgrade failed", "path", r.URL.Path, "err", err)
		return
	}
	defer ws.Close()

	done := make(chan struct{}, 2)
	go func() { // kubelet → client
		defer func() { done <- struct{}{} }()
		buf := make([]byte, 32<<10)
		for {
			n, err := br.Read(buf)
			if n > 0 {
				if werr := ws.WriteMessage(gwebsocket.BinaryMessage, buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				_ = ws.WriteControl(gwebsocket.CloseMessage, gwebsocket.FormatCloseMessage(gwebsocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
				return
			}
		}
	}()
	go func() { // client → kubelet
		defer func() { done <- struct{}{} }()
		for {
			typ, msg, err := ws.NextReader()
			if err != nil {
				return
			}
			if typ != gwebsocket.BinaryMessage {
				continue
			}
			if _, err := io.Copy(backend, msg); err != nil {
				return
			}
		}
	}()
	<-done
	// One side ended: closing both ends the other copier.
	_ = backend.Close()
	_ = ws.Close()
	<-done
}

// dialUpgrade opens a TLS connection to target and upgrades it to SPDY/3.1
// with the given stream protocol, returning the connection and a reader of
// what follows the 101 response.
func dialUpgrade(ctx context.Context, cfg *tls.Config, target *url.URL, protocol string) (net.Conn, *bufio.Reader, error) {
	d := &tls.Dialer{Config: cfg}
	conn, err := d.DialContext(ctx, "tcp", target.Host)
	if err != nil {
		return nil, nil, fmt.Errorf("dial %s: %w", target.Host, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target.String(), nil)
	if err != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("upgrade request: %w", err)
	}
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", spdy.HeaderSpdy31)
	req.Header.Set("X-Stream-Protocol-Version", protocol)
	if err := req.Write(conn); err != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("writing upgrade request: %w", err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("reading upgrade response: %w", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
		resp.Body.Close()
		conn.Close()
		return nil, nil, fmt.Errorf("kubelet refused the upgrade: %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	_ = conn.SetDeadline(time.Time{})
	return conn, br, nil
}
