// Package apiservertest starts a real Skiff API server over an embedded
// etcd for tests: no mocks, the same HTTP stack kubectl talks to.
package apiservertest

import (
	"context"
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
}

// Start runs an API server on a fresh embedded etcd in t.TempDir() and stops
// everything when the test ends.
func Start(t testing.TB) *Server {
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
	api, err := apiserver.New(apiserver.Config{Store: store, Authenticator: authn})
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
	cfg := &rest.Config{Host: hs.URL, BearerToken: AdminToken, TLSClientConfig: rest.TLSClientConfig{Insecure: true}, QPS: 1000, Burst: 1000, Timeout: 30 * time.Second}
	client, err := kubernetes.NewForConfig(cfg)
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
	return &Server{API: api, HTTP: hs, Store: store, Config: cfg, Client: client}
}
