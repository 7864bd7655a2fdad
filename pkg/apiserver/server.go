// Package apiserver is Skiff's Kubernetes API server: the HTTP stack
// (authentication → authorization → routing → admission → registry) over
// the etcd-backed store of pkg/storage, wire-compatible with upstream so the
// real kubectl and client-go work unchanged.
package apiserver

import (
	"context"
	"crypto"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/util/managedfields"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/apimachinery/pkg/version"
	"k8s.io/client-go/applyconfigurations"
	"k8s.io/klog/v2"

	"github.com/skiff-project/skiff/pkg/apiserver/openapi"
	"github.com/skiff-project/skiff/pkg/registry"
	"github.com/skiff-project/skiff/pkg/storage"
)

// DefaultMaxRequestBodyBytes is the largest request body accepted (3 MiB,
// upstream's limit); larger bodies get 413.
const DefaultMaxRequestBodyBytes = 3 << 20

// Config is what New needs. Store and Authenticator are required.
type Config struct {
	// Store is the cluster store; the server never talks to etcd otherwise.
	Store *storage.Store
	// Authenticator maps a request to a user; nil refuses every request.
	Authenticator Authenticator
	// Authorizer decides; nil means AuthorizationMode's authorizer.
	Authorizer Authorizer
	// AuthorizationMode picks the built-in authorizer when Authorizer is
	// nil: AuthorizationModeRBAC (the default when empty),
	// AuthorizationModeAlwaysAllow or AuthorizationModeMastersOnly.
	AuthorizationMode string
	// ServiceAccountSigningKey signs ServiceAccount tokens (TokenRequest);
	// nil means the token subresource is not served.
	ServiceAccountSigningKey crypto.Signer
	// ServiceAccountPublicKeys verify ServiceAccount tokens besides the
	// signing key's own public half (key rotation).
	ServiceAccountPublicKeys []crypto.PublicKey
	// ServiceAccountIssuer is the "iss" of issued tokens; empty means
	// DefaultServiceAccountIssuer.
	ServiceAccountIssuer string
	// APIAudiences are the audiences tokens must carry to authenticate to
	// this server; empty means just the issuer.
	APIAudiences []string
	// DisabledAdmissionPlugins names built-in admission plugins that do
	// not run, as upstream's --disable-admission-plugins. Only
	// AdmissionServiceAccount can be disabled.
	DisabledAdmissionPlugins []string
	// ExternalAddress is host:port clients reach this server at (discovery's
	// serverAddressByClientCIDRs).
	ExternalAddress string
	// ServiceClusterIPRange is where Service ClusterIPs come from
	// (default 10.96.0.0/12).
	ServiceClusterIPRange *net.IPNet
	// ServiceNodePortRange is where Service node ports come from; the zero
	// value means upstream's default, 30000-32767.
	ServiceNodePortRange utilnet.PortRange
	// MaxRequestBodyBytes defaults to DefaultMaxRequestBodyBytes.
	MaxRequestBodyBytes int64
	// Version is served at /version.
	Version version.Info
	// HealthChecks are added to /readyz and /livez besides ping and etcd.
	HealthChecks []HealthCheck
	// DefaultNotReadyTolerationSeconds and DefaultUnreachableTolerationSeconds
	// are the tolerationSeconds the DefaultTolerationSeconds admission
	// plugin gives pods for the not-ready / unreachable taints (default 300).
	DefaultNotReadyTolerationSeconds    *int64
	DefaultUnreachableTolerationSeconds *int64
	// MetricsResolution is how often every kubelet's resource metrics are
	// scraped for metrics.k8s.io (metricsapi.go): DefaultMetricsResolution
	// (15 s) when zero; negative turns metrics.k8s.io off.
	MetricsResolution time.Duration
}

// HealthCheck is one named /readyz check.
type HealthCheck struct {
	Name  string
	Check func(ctx context.Context) error
}

// Server is the API server. Create with New, serve Handler(), and call
// Start once to bootstrap defaults and begin background work.
type Server struct {
	cfg Config
	// leaseRenew is how often the master lease is renewed and the
	// kubernetes endpoints reconciled: masterLeaseRenew, shorter in tests.
	leaseRenew    time.Duration
	scheme        *runtime.Scheme
	codecs        serializer.CodecFactory
	typeConverter managedfields.TypeConverter
	openapi       *openapi.Service
	metrics       *metrics
	admission     *admissionChain
	ips           *serviceAllocator
	handler       http.Handler

	// tokens issues and verifies ServiceAccount tokens; nil without keys.
	tokens *tokenService
	// rbac is the RBAC authorizer when it is the one in use, else nil.
	rbac *rbacAuthorizer

	// resourceMetrics serves metrics.k8s.io; immutable; nil when off.
	resourceMetrics *resourceMetrics

	// kubelet is the client for pods' log/exec/attach/portforward; nil
	// until SetKubeletClient.
	kubelet atomic.Pointer[kubeletClient]

	mu sync.RWMutex
	// endpoints maps served GVRs to their handlers; guarded by mu (custom
	// resources come and go with their CRDs).
	endpoints map[schema.GroupVersionResource]*endpoint
	// byGroupResource lists a group/resource's endpoints for cross-version
	// lookups; guarded by mu.
	discovery *discoveryDoc // guarded by mu; rebuilt when CRDs change
	crds      map[string]*crdState
	ready     bool // guarded by mu; bootstrap done
}

// New builds a Server from cfg.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil {
		return nil, fmt.Errorf("apiserver: a store is required")
	}
	if cfg.MaxRequestBodyBytes == 0 {
		cfg.MaxRequestBodyBytes = DefaultMaxRequestBodyBytes
	}
	if cfg.ServiceClusterIPRange == nil {
		_, n, _ := net.ParseCIDR("10.96.0.0/12")
		cfg.ServiceClusterIPRange = n
	}
	if cfg.ServiceNodePortRange.Size == 0 {
		cfg.ServiceNodePortRange = defaultServiceNodePortRange()
	}
	scheme, err := newScheme()
	if err != nil {
		return nil, err
	}
	s := &Server{
		leaseRenew:    masterLeaseRenew,
		cfg:           cfg,
		scheme:        scheme,
		codecs:        newCodecs(scheme),
		typeConverter: applyconfigurations.NewTypeConverter(scheme),
		metrics:       newMetrics(),
		endpoints:     map[schema.GroupVersionResource]*endpoint{},
		crds:          map[string]*crdState{},

		resourceMetrics: newResourceMetrics(cfg.MetricsResolution),
	}
	builtin := registry.Builtin()
	for _, r := range builtin {
		ep, err := s.newBuiltinEndpoint(r)
		if err != nil {
			return nil, err
		}
		s.endpoints[r.GroupVersionResource()] = ep
	}
	s.openapi, err = openapi.New(builtin)
	if err != nil {
		return nil, fmt.Errorf("build openapi: %w", err)
	}
	servicesEP, _ := s.lookup(coreServices)
	s.ips, err = newServiceAllocator(cfg.Store, scheme, servicesEP, cfg.ServiceClusterIPRange, cfg.ServiceNodePortRange)
	if err != nil {
		return nil, err
	}
	s.admission = newAdmissionChain(s)
	if err := s.setUpAuth(); err != nil {
		return nil, err
	}
	s.discovery = s.buildDiscovery()
	s.handler = s.buildHandler()
	return s, nil
}

// Handler returns the server's root HTTP handler.
func (s *Server) Handler() http.Handler { return s.handler }

// Start bootstraps what a cluster needs from the first second (the default
// namespaces, custom resources of stored CRDs, the Service IP and node
// port allocation records repaired from the stored Services, the bootstrap
// RBAC policy and the RBAC authorizer's view of it) and then keeps custom
// resources in sync and those records repaired until ctx is done. It
// returns once bootstrap is complete.
func (s *Server) Start(ctx context.Context) error {
	if err := s.loadCRDs(ctx); err != nil {
		return fmt.Errorf("load custom resource definitions: %w", err)
	}
	if err := s.ips.start(ctx); err != nil {
		return fmt.Errorf("repair service IP and node port allocations: %w", err)
	}
	if err := s.bootstrap(ctx); err != nil {
		return fmt.Errorf("bootstrap: %w", err)
	}
	if err := s.startAuth(ctx); err != nil {
		return err
	}
	go s.watchCRDs(ctx)
	go s.runResourceMetrics(ctx)
	go s.runMasterLeases(ctx)
	s.mu.Lock()
	s.ready = true
	s.mu.Unlock()
	return nil
}

func (s *Server) buildHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", s.serveHealth("healthz"))
	mux.HandleFunc("/healthz/", s.serveHealth("healthz"))
	mux.HandleFunc("/livez", s.serveHealth("livez"))
	mux.HandleFunc("/livez/", s.serveHealth("livez"))
	mux.HandleFunc("/readyz", s.serveHealth("readyz"))
	mux.HandleFunc("/readyz/", s.serveHealth("readyz"))
	mux.HandleFunc("/version", s.serveVersion)
	mux.HandleFunc("/version/", s.serveVersion)
	mux.Handle("/metrics", s.metrics.handler())
	// Profiling, like upstream's --profiling (on by default; authorized
	// like any non-resource path, so only system:masters today).
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.Handle("/openapi/", s.openapi)
	mux.HandleFunc("/api", s.serveAPIVersions)
	mux.HandleFunc("/api/", s.serveAPI)
	mux.HandleFunc("/apis", s.serveAPIGroupList)
	mux.HandleFunc("/apis/", s.serveAPI)
	mux.HandleFunc("/apis/"+metricsGroup+"/", s.serveMetricsAPI)
	mux.HandleFunc("/", s.serveRoot)
	var h http.Handler = mux
	h = s.withAuthorization(h)
	h = s.withAuthentication(h)
	h = s.withMetrics(h)
	h = s.withRecovery(h)
	return h
}

// withRecovery turns a panic in any handler into a 500 instead of a dropped
// connection, and logs the stack: input must never take the server down.
func (s *Server) withRecovery(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				klog.ErrorS(nil, "panic serving request", "method", r.Method, "path", r.URL.Path, "panic", v, "stack", string(debug.Stack()))
				s.writeError(w, r, apierrors.NewInternalError(fmt.Errorf("panic: %v", v)))
			}
		}()
		if r.ContentLength > s.cfg.MaxRequestBodyBytes {
			s.writeError(w, r, apierrors.NewRequestEntityTooLargeError(fmt.Sprintf("limit is %d", s.cfg.MaxRequestBodyBytes)))
			return
		}
		if r.Body != nil {
			r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxRequestBodyBytes)
		}
		next.ServeHTTP(w, r)
	})
}

// serveRoot lists the server's paths like upstream's "/" and answers 404
// for anything unknown.
func (s *Server) serveRoot(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/" {
		s.writeError(w, r, notFoundPath())
		return
	}
	writeJSON(w, http.StatusOK, map[string][]string{"paths": s.rootPaths()})
}

func notFoundPath() error {
	return apierrors.NewGenericServerResponse(http.StatusNotFound, "", schema.GroupResource{}, "", "the server could not find the requested resource", 0, false)
}

// isReady reports whether Start completed.
func (s *Server) isReady() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.ready
}

// lookup finds the endpoint serving gvr.
func (s *Server) lookup(gvr schema.GroupVersionResource) (*endpoint, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	ep, ok := s.endpoints[gvr]
	return ep, ok
}

// withTimeout bounds non-watch requests, like upstream's 60 s default.
func withTimeout(ctx context.Context, r *http.Request) (context.Context, context.CancelFunc) {
	d := 60 * time.Second
	if v := r.URL.Query().Get("timeout"); v != "" {
		if parsed, err := time.ParseDuration(v); err == nil && parsed > 0 && parsed < d {
			d = parsed
		}
	}
	return context.WithTimeout(ctx, d)
}
