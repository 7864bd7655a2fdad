// Package apiservertest starts a real Skiff API server over an embedded
// etcd for tests: no mocks, the same HTTP stack kubectl talks to.
package apiservertest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"net/http/httptest"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/skiff-project/skiff/pkg/apiserver"
	"github.com/skiff-project/skiff/pkg/storage"
)

// AdminToken is the bearer token of the test server's system:masters user.
const AdminToken = "test-admin-token"

// Server is a running test API server.
type Server struct {
	API    *apiserver.Server
	HTTP   *httptest.Server
	Store  *storage.Store
	Config *rest.Config // admin client config
	Client kubernetes.Interface
	// ServiceAccountKey signs the server's ServiceAccount tokens.
	ServiceAccountKey *ecdsa.PrivateKey
}

// Options change what Start sets up; the zero value is Start's default.
type Options struct {
	// ServiceAccountAdmission runs the ServiceAccount admission plugin.
	// Off by default, as in upstream's integration tests: no controller
	// manager creates the "default" ServiceAccounts here, and the plugin
	// refuses pods whose ServiceAccount is missing.
	ServiceAccountAdmission bool
	// MetricsResolution is the API server's Config.MetricsResolution
	// (how often kubelets are scraped for metrics.k8s.io). Zero turns
	// metrics.k8s.io off, so the scraper never calls a test's fake
	// kubelet unless the test asks for it.
	MetricsResolution time.Duration
}

// Start runs an API server on a fresh embedded etcd in t.TempDir() and stops
// everything when the test ends. It authenticates AdminToken as a
// system:masters user and "nobody" as a user without permissions, and it
// signs ServiceAccount tokens with a key of its own (ServiceAccountKey).
func Start(t testing.TB) *Server { return StartWith(t, Options{}) }

// StartWith is Start with opts.
func StartWith(t testing.TB, opts Options) *Server {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	emb, err := storage.StartEmbedded(ctx, storage.EmbeddedConfig{DataDir: t.TempDir()})
	if err != nil {
		cancel()
		t.Fatalf("start etcd: %v", err)
	}
	store := storage.New(emb.Client(), storage.Options{})
	authn := apiserver.NewTokenAuthenticator(map[string]*apiserver.UserInfo{
		AdminToken: {Name: "admin", Groups: []string{"system:masters", "system:authenticated"}},
		"nobody":   {Name: "nobody", Groups: []string{"system:authenticated"}},
	})
	saKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		cancel()
		t.Fatalf("service account key: %v", err)
	}
	cfg := apiserver.Config{Store: store, Authenticator: authn, ServiceAccountSigningKey: saKey, MetricsResolution: opts.MetricsResolution}
	if cfg.MetricsResolution == 0 {
		cfg.MetricsResolution = -1
	}
	if !opts.ServiceAccountAdmission {
		cfg.DisabledAdmissionPlugins = []string{apiserver.AdmissionServiceAccount}
	}
	api, err := apiserver.New(cfg)
	if err != nil {
		cancel()
		t.Fatalf("new apiserver: %v", err)
	}
	hs := httptest.NewUnstartedServer(api.Handler())
	hs.EnableHTTP2 = true
	hs.StartTLS()
	if err := api.Start(ctx); err != nil {
		cancel()
		t.Fatalf("start apiserver: %v", err)
	}
	restCfg := &rest.Config{Host: hs.URL, BearerToken: AdminToken, TLSClientConfig: rest.TLSClientConfig{Insecure: true}, QPS: 1000, Burst: 1000, Timeout: 30 * time.Second}
	client, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		hs.CloseClientConnections()
		hs.Close()
		store.Close()
		_ = emb.Close()
	})
	return &Server{API: api, HTTP: hs, Store: store, Config: restCfg, Client: client, ServiceAccountKey: saKey}
}
