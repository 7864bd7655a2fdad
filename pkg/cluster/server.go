package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"k8s.io/apimachinery/pkg/version"

	"github.com/skiff-project/skiff/pkg/agent"
	"github.com/skiff-project/skiff/pkg/apiserver"
	"github.com/skiff-project/skiff/pkg/storage"
)

// Version is Skiff's own version, set at build time with -ldflags -X.
var Version = "dev"

// KubernetesVersion is the upstream Kubernetes API version Skiff serves.
const KubernetesVersion = "v1.37.2"

// VersionInfo is what /version reports: the Kubernetes API version Skiff is
// compatible with, tagged with Skiff's own version.
func VersionInfo() version.Info {
	return version.Info{
		Major: "1", Minor: "37",
		GitVersion:   KubernetesVersion + "+skiff-" + strings.TrimPrefix(Version, "v"),
		GitCommit:    Version,
		GitTreeState: "clean",
		GoVersion:    runtime.Version(),
		Compiler:     runtime.Compiler,
		Platform:     runtime.GOOS + "/" + runtime.GOARCH,
	}
}

// shutdownGrace bounds how long in-flight requests may take to finish on
// SIGTERM before connections (long-running watches) are closed.
const shutdownGrace = 5 * time.Second

// RunServer runs the control plane described by cfg until ctx is cancelled:
// etcd (embedded unless cfg.EtcdServers), the API server, and the in-process
// components. It returns nil after a clean shutdown.
func RunServer(ctx context.Context, cfg ServerConfig) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	start := time.Now()
	ConfigureLogging(cfg.LogLevel)
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("create data dir %s: %w (run as root or pick a writable --data-dir)", cfg.DataDir, err)
	}
	// Pods reach the API server through the "kubernetes" Service, whose
	// endpoint must be an address routable from them, never loopback
	// unless the machine has nothing else.
	cfg.AdvertiseAddress = cfg.AdvertiseIP(agent.PrimaryIP)
	pki, err := EnsurePKI(cfg.DataDir, cfg.ServingSANs())
	if err != nil {
		return fmt.Errorf("prepare certificates in %s: %w", cfg.DataDir, err)
	}
	if len(pki.Generated) > 0 {
		fmt.Fprintf(os.Stderr, "Created the cluster CA and certificates in %s\n", pki.Dir)
	}

	client, closeEtcd, err := connectEtcd(ctx, cfg)
	if err != nil {
		return err
	}
	defer closeEtcd()

	store := storage.New(client, storage.Options{})
	defer store.Close()
	storeCtx, stopStore := context.WithCancel(context.Background())
	defer stopStore()
	go store.Run(storeCtx)

	authn := apiserver.Union{apiserver.X509Authenticator{}}
	if cfg.TokenAuthFile != "" {
		tokens, err := apiserver.LoadTokenFile(cfg.TokenAuthFile)
		if err != nil {
			return fmt.Errorf("--token-auth-file: %w", err)
		}
		authn = append(authn, tokens)
	}
	addr := net.JoinHostPort(cfg.BindAddress.String(), strconv.Itoa(cfg.SecurePort))
	advertise := net.JoinHostPort(cfg.AdvertiseAddress.String(), strconv.Itoa(cfg.SecurePort))
	serviceRange := &net.IPNet{IP: cfg.ServiceClusterIPRange.Masked().Addr().AsSlice(),
		Mask: net.CIDRMask(cfg.ServiceClusterIPRange.Bits(), cfg.ServiceClusterIPRange.Addr().BitLen())}
	srv, err := apiserver.New(apiserver.Config{
		Store:                 store,
		Authenticator:         authn,
		ExternalAddress:       advertise,
		ServiceClusterIPRange: serviceRange,
		ServiceNodePortRange:  cfg.ServiceNodePortRange,
		Version:               VersionInfo(),

		AuthorizationMode: cfg.AuthorizationMode,
		// The PKI's sa.key signs and verifies ServiceAccount tokens.
		ServiceAccountSigningKey: pki.ServiceAccountKey,
		ServiceAccountIssuer:     cfg.ServiceAccountIssuer,

		DefaultNotReadyTolerationSeconds:    &cfg.DefaultNotReadyTolerationSeconds,
		DefaultUnreachableTolerationSeconds: &cfg.DefaultUnreachableTolerationSeconds,
	})
	if err != nil {
		return fmt.Errorf("build API server: %w", err)
	}
	kubeletClient, err := kubeletClientTLS(pki)
	if err != nil {
		return err
	}
	srv.SetKubeletClient(kubeletClient)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w (is another server running? pick another --secure-port)", addr, err)
	}
	httpServer := &http.Server{
		Handler:           srv.Handler(),
		TLSConfig:         pki.ServerTLSConfig(),
		ReadHeaderTimeout: 30 * time.Second,
		ErrorLog:          nil,
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- httpServer.ServeTLS(ln, "", "") }()

	srvCtx, stopSrv := context.WithCancel(context.Background())
	defer stopSrv()
	if err := srv.Start(srvCtx); err != nil {
		_ = httpServer.Close()
		return fmt.Errorf("start API server: %w", err)
	}
	kubeconfig := AdminKubeconfigPath(cfg.DataDir)
	if err := pki.WriteAdminKubeconfig(kubeconfig, cfg.LocalURL()); err != nil {
		_ = httpServer.Close()
		return fmt.Errorf("write %s: %w", kubeconfig, err)
	}
	fmt.Fprintf(os.Stderr, "Skiff is ready at %s after %v. Use it with:\n  skiff kubectl get nodes\n  export KUBECONFIG=%s\n",
		cfg.LocalURL(), time.Since(start).Round(time.Millisecond), kubeconfig)

	components := startComponents(srvCtx, cfg, pki)
	components.wg.Go(func() { runControlPlanePods(srvCtx, cfg, pki, client, start) })

	select {
	case <-ctx.Done():
	case err := <-serveErr:
		if !errors.Is(err, http.ErrServerClosed) {
			stopSrv()
			components.wait()
			return fmt.Errorf("serve API: %w", err)
		}
	}
	fmt.Fprintln(os.Stderr, "Shutting down")
	stopSrv()
	components.wait()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := httpServer.Shutdown(shutdownCtx); err != nil {
		// Watches never go idle: close what is left after the grace period.
		_ = httpServer.Close()
	}
	return nil
}

// connectEtcd starts the embedded etcd or connects to the external cluster.
func connectEtcd(ctx context.Context, cfg ServerConfig) (*clientv3.Client, func(), error) {
	if len(cfg.EtcdServers) == 0 {
		emb, err := storage.StartEmbedded(ctx, storage.EmbeddedConfig{DataDir: filepath.Join(cfg.DataDir, "etcd")})
		if err != nil {
			return nil, nil, fmt.Errorf("start embedded etcd in %s: %w", filepath.Join(cfg.DataDir, "etcd"), err)
		}
		return emb.Client(), func() { _ = emb.Close() }, nil
	}
	var tlsConfig *tls.Config
	if cfg.EtcdCAFile != "" || cfg.EtcdCertFile != "" {
		tlsConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		if cfg.EtcdCAFile != "" {
			ca, err := os.ReadFile(cfg.EtcdCAFile)
			if err != nil {
				return nil, nil, fmt.Errorf("--etcd-cafile: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(ca) {
				return nil, nil, fmt.Errorf("--etcd-cafile %s holds no PEM certificate", cfg.EtcdCAFile)
			}
			tlsConfig.RootCAs = pool
		}
		if cfg.EtcdCertFile != "" {
			pair, err := tls.LoadX509KeyPair(cfg.EtcdCertFile, cfg.EtcdKeyFile)
			if err != nil {
				return nil, nil, fmt.Errorf("--etcd-certfile/--etcd-keyfile: %w", err)
			}
			tlsConfig.Certificates = []tls.Certificate{pair}
		}
	}
	client, err := clientv3.New(clientv3.Config{Endpoints: cfg.EtcdServers, DialTimeout: 5 * time.Second, TLS: tlsConfig, Context: ctx})
	if err != nil {
		return nil, nil, fmt.Errorf("connect to etcd %s: %w", strings.Join(cfg.EtcdServers, ","), err)
	}
	statusCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := client.Status(statusCtx, cfg.EtcdServers[0]); err != nil {
		_ = client.Close()
		return nil, nil, fmt.Errorf("etcd at %s is not answering: %w (check --etcd-servers and the TLS flags)", cfg.EtcdServers[0], err)
	}
	return client, func() { _ = client.Close() }, nil
}
