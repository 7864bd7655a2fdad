package cluster

import (
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// whoamiServer serves p.ServerTLSConfig and answers every request with the
// verified client identity ("CN groups") or "anonymous", which is what the
// authentication layer will later see.
func whoamiServer(t *testing.T, p *PKI) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.TLS.VerifiedChains) == 0 {
			fmt.Fprint(w, "anonymous")
			return
		}
		leaf := r.TLS.VerifiedChains[0][0]
		fmt.Fprintf(w, "%s %s", leaf.Subject.CommonName, strings.Join(leaf.Subject.Organization, ","))
	}))
	srv.TLS = p.ServerTLSConfig()
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, cfg *rest.Config) (string, error) {
	t.Helper()
	rt, err := rest.TransportFor(cfg)
	if err != nil {
		t.Fatalf("transport: %v", err)
	}
	resp, err := (&http.Client{Transport: rt}).Get(cfg.Host + "/")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return string(body), err
}

func TestServerTLSConfigAuthenticatesClients(t *testing.T) {
	p := mustEnsure(t, t.TempDir(), nil, testOpts())
	foreign := mustEnsure(t, t.TempDir(), nil, testOpts())
	srv := whoamiServer(t, p)

	tests := []struct {
		name    string
		cfg     *rest.Config
		want    string
		wantErr bool
	}{
		{
			name: "loopback identity",
			cfg:  p.LoopbackConfig(srv.URL),
			want: "system:skiff-loopback system:masters",
		},
		{
			name: "no client certificate reaches the handler as anonymous",
			cfg:  &rest.Config{Host: srv.URL, TLSClientConfig: rest.TLSClientConfig{CAData: p.CACertPEM}},
			want: "anonymous",
		},
		{
			name: "certificate from another CA is rejected in the handshake",
			cfg: &rest.Config{Host: srv.URL, TLSClientConfig: rest.TLSClientConfig{
				CAData: p.CACertPEM, CertData: foreign.AdminCertPEM, KeyData: foreign.AdminKeyPEM,
			}},
			wantErr: true,
		},
		{
			name:    "client that trusts another CA rejects the server",
			cfg:     foreign.LoopbackConfig(srv.URL),
			wantErr: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := get(t, tc.cfg)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("request succeeded with %q, want a TLS error", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("request: %v", err)
			}
			if got != tc.want {
				t.Errorf("server saw %q, want %q", got, tc.want)
			}
		})
	}

	cfg := p.ServerTLSConfig()
	if cfg.ClientAuth != tls.VerifyClientCertIfGiven {
		t.Errorf("ClientAuth = %v, want VerifyClientCertIfGiven", cfg.ClientAuth)
	}
	if cfg == p.ServerTLSConfig() {
		t.Errorf("ServerTLSConfig returned a shared config; callers may modify theirs")
	}
}

func TestWriteAdminKubeconfigLoadsWithClientcmd(t *testing.T) {
	dataDir := t.TempDir()
	p := mustEnsure(t, dataDir, nil, testOpts())
	srv := whoamiServer(t, p)
	path := AdminKubeconfigPath(dataDir)
	if want := filepath.Join(dataDir, "admin.kubeconfig"); path != want {
		t.Errorf("AdminKubeconfigPath = %q, want %q", path, want)
	}

	// Written twice: the second write (as on a restart) must replace the first.
	if err := p.WriteAdminKubeconfig(path, "https://127.0.0.1:1"); err != nil {
		t.Fatalf("WriteAdminKubeconfig: %v", err)
	}
	if err := p.WriteAdminKubeconfig(path, srv.URL); err != nil {
		t.Fatalf("WriteAdminKubeconfig: %v", err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v, want 0600 (it holds the admin key)", info.Mode().Perm())
	}

	kc, err := clientcmd.LoadFromFile(path)
	if err != nil {
		t.Fatalf("clientcmd.LoadFromFile: %v", err)
	}
	type entry struct{ Context, Cluster, User, Server string }
	ctx := kc.Contexts[kc.CurrentContext]
	if ctx == nil {
		t.Fatalf("current context %q missing", kc.CurrentContext)
	}
	got := entry{kc.CurrentContext, ctx.Cluster, ctx.AuthInfo, kc.Clusters[ctx.Cluster].Server}
	want := entry{"skiff", "skiff", AdminUser, srv.URL}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("kubeconfig (-want +got):\n%s", diff)
	}

	// The file works as a client would use it: kubectl's loading rules.
	restCfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		t.Fatalf("BuildConfigFromFlags: %v", err)
	}
	who, err := get(t, restCfg)
	if err != nil {
		t.Fatalf("request with admin kubeconfig: %v", err)
	}
	if who != "kubernetes-admin system:masters" {
		t.Errorf("server saw %q, want the admin in system:masters", who)
	}
}

func TestWriteKubeconfig(t *testing.T) {
	p := mustEnsure(t, t.TempDir(), nil, testOpts())
	nodeCert, nodeKey, err := p.IssueClientCert("system:node:worker-1", []string{"system:nodes"}, 3600e9)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name        string
		server      string
		ca          []byte
		cert, key   []byte
		contextName string
		wantErr     string
		wantContext string
		wantUser    string
	}{
		{name: "node kubeconfig", server: "https://10.0.0.1:6443", ca: p.CACertPEM, cert: nodeCert, key: nodeKey,
			contextName: "worker", wantContext: "worker", wantUser: "system:node:worker-1"},
		{name: "default context name", server: "https://[::1]:6443", ca: p.CACertPEM, cert: p.AdminCertPEM, key: p.AdminKeyPEM,
			wantContext: "skiff", wantUser: AdminUser},
		{name: "http URL", server: "http://127.0.0.1:6443", ca: p.CACertPEM, cert: nodeCert, key: nodeKey, wantErr: "https://host:port"},
		{name: "no host", server: "https://", ca: p.CACertPEM, cert: nodeCert, key: nodeKey, wantErr: "https://host:port"},
		{name: "no CA", server: "https://127.0.0.1:6443", cert: nodeCert, key: nodeKey, wantErr: "empty CA"},
		{name: "key of another cert", server: "https://127.0.0.1:6443", ca: p.CACertPEM, cert: nodeCert, key: p.AdminKeyPEM, wantErr: "client certificate and key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "kubeconfig")
			err := WriteKubeconfig(path, tc.server, tc.ca, tc.cert, tc.key, tc.contextName)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want it to mention %q", err, tc.wantErr)
				}
				if _, statErr := os.Stat(path); statErr == nil {
					t.Errorf("file written despite the error")
				}
				return
			}
			if err != nil {
				t.Fatalf("WriteKubeconfig: %v", err)
			}
			kc, err := clientcmd.LoadFromFile(path)
			if err != nil {
				t.Fatalf("load: %v", err)
			}
			if kc.CurrentContext != tc.wantContext {
				t.Errorf("current context = %q, want %q", kc.CurrentContext, tc.wantContext)
			}
			ctx := kc.Contexts[tc.wantContext]
			if ctx == nil || ctx.AuthInfo != tc.wantUser {
				t.Fatalf("context %q = %+v, want user %q", tc.wantContext, ctx, tc.wantUser)
			}
			ai := kc.AuthInfos[tc.wantUser]
			if string(ai.ClientCertificateData) != string(tc.cert) || string(ai.ClientKeyData) != string(tc.key) {
				t.Errorf("credentials are not embedded verbatim")
			}
			if cl := kc.Clusters[ctx.Cluster]; cl.Server != tc.server || string(cl.CertificateAuthorityData) != string(tc.ca) {
				t.Errorf("cluster = %s %q, want server %s and the embedded CA", ctx.Cluster, cl.Server, tc.server)
			}
		})
	}
}
