package main

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/skiff-project/skiff/pkg/cluster"
)

const serverLong = `Runs the control plane of a Skiff cluster on this machine, all in one
process: an embedded etcd member (or a client of --etcd-servers), the API
server, the controller-manager and the scheduler, plus the node agent for this
machine unless --disable-agent is given.

On first start it creates the cluster CA, the certificates and an admin
kubeconfig in --data-dir; later starts reuse them. Use the cluster with
"skiff kubectl ..." or with KUBECONFIG=<data-dir>/admin.kubeconfig.

SIGINT or SIGTERM shuts down gracefully; a second signal exits at once.`

func newServerCommand(d deps) *cobra.Command {
	cfg := cluster.DefaultServerConfig()
	cfg.DataDir = dataDir(d.getenv)
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the control plane (and this machine's node agent)",
		Long:  serverLong,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cfg.Validate(); err != nil {
				return fmt.Errorf("invalid flags: %w", err)
			}
			ctx, stop := signalContext(cmd.Context(), d.stderr, os.Exit)
			defer stop()
			return d.runServer(ctx, cfg)
		},
	}
	addServerFlags(cmd.Flags(), &cfg)
	return cmd
}

// addServerFlags binds the server flags to cfg. Names, defaults and meaning
// follow the upstream component flags of the same name, so that upstream
// documentation applies.
func addServerFlags(fs *pflag.FlagSet, cfg *cluster.ServerConfig) {
	fs.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir,
		"Directory for the cluster state: etcd data (when embedded), the PKI and admin.kubeconfig. Defaults to $"+cluster.DataDirEnv+" when set.")
	fs.Var(addrValue{&cfg.BindAddress}, "bind-address",
		"The IP address on which to listen for the --secure-port port. Use 0.0.0.0 or :: to listen on all interfaces.")
	fs.IntVar(&cfg.SecurePort, "secure-port", cfg.SecurePort,
		"The port on which to serve HTTPS with authentication and authorization.")
	fs.Var(addrValue{&cfg.AdvertiseAddress}, "advertise-address",
		"The IP address on which to advertise the apiserver to members of the cluster (the endpoint of the kubernetes Service, which pods use). Default: --bind-address when it is a specific address, else this machine's primary IP.")

	fs.StringSliceVar(&cfg.EtcdServers, "etcd-servers", cfg.EtcdServers,
		"List of etcd servers to connect with (scheme://ip:port), comma separated. Empty runs an embedded etcd member in --data-dir.")
	fs.StringVar(&cfg.EtcdCAFile, "etcd-cafile", cfg.EtcdCAFile,
		"SSL Certificate Authority file used to secure etcd communication.")
	fs.StringVar(&cfg.EtcdCertFile, "etcd-certfile", cfg.EtcdCertFile,
		"SSL certification file used to secure etcd communication.")
	fs.StringVar(&cfg.EtcdKeyFile, "etcd-keyfile", cfg.EtcdKeyFile,
		"SSL key file used to secure etcd communication.")

	fs.StringVar(&cfg.TokenAuthFile, "token-auth-file", cfg.TokenAuthFile,
		"If set, the file that will be used to secure the secure port of the API server via token authentication (CSV: token,user,uid,\"group1,group2\").")
	fs.StringVar(&cfg.AuthorizationMode, "authorization-mode", cfg.AuthorizationMode,
		"The authorizer of the secure port: RBAC, AlwaysAllow (every authenticated request) or MastersOnly (only system:masters).")
	fs.StringVar(&cfg.ServiceAccountIssuer, "service-account-issuer", cfg.ServiceAccountIssuer,
		"Identifier of the service account token issuer: the \"iss\" claim of issued tokens, and their default audience (default https://kubernetes.default.svc.cluster.local).")

	fs.Var(prefixValue{&cfg.ServiceClusterIPRange}, "service-cluster-ip-range",
		"A CIDR notation IP range from which to assign service cluster IPs. Its first address is the kubernetes Service's ClusterIP. This must not overlap with any IP ranges assigned to nodes or pods.")
	fs.Var(prefixValue{&cfg.ClusterCIDR}, "cluster-cidr",
		"CIDR Range for Pods in cluster; each node gets a podCIDR from it.")
	fs.Var(&cfg.ServiceNodePortRange, "service-node-port-range",
		"A port range to reserve for services with NodePort visibility. This must not overlap with the ephemeral port range on nodes. Example: '30000-32767'. Inclusive at both ends of the range.")

	fs.StringVar(&cfg.ProxyMode, "proxy-mode", cfg.ProxyMode,
		"Mode of the kube-proxy add-on on every node: iptables (iptables-restore, as upstream's default) or nftables (one nft table with verdict maps; faster with many Services).")
	fs.StringSliceVar(&cfg.Disable, "disable", cfg.Disable,
		"Add-ons not to run, comma separated: "+strings.Join(cluster.Addons(), ", ")+". By default the server runs kube-proxy (a DaemonSet) and CoreDNS (a Deployment behind the kube-dns Service) in kube-system.")
	fs.BoolVar(&cfg.DisableAgent, "disable-agent", cfg.DisableAgent,
		"Do not run the node agent (kubelet and service proxy) for this machine: a control-plane-only server.")
	fs.StringVar(&cfg.StaticPodPath, "pod-manifest-path", cfg.StaticPodPath,
		"Directory of static pod manifests the node agent runs and mirrors into the API (default <data-dir>/agent/manifests).")
	fs.StringVar(&cfg.NodeName, "node-name", cfg.NodeName,
		"Name of this machine's Node. Defaults to the hostname.")
	fs.StringSliceVar(&cfg.InsecureRegistries, "insecure-registry", cfg.InsecureRegistries,
		"Registry (host or host:port) the node agent pulls from over plain HTTP, like docker's; loopback registries need none (repeatable).")

	fs.DurationVar(&cfg.NodeMonitorGracePeriod, "node-monitor-grace-period", cfg.NodeMonitorGracePeriod,
		"Amount of time which we allow running Node to be unresponsive before marking it unhealthy.")
	fs.Int64Var(&cfg.DefaultNotReadyTolerationSeconds, "default-not-ready-toleration-seconds", cfg.DefaultNotReadyTolerationSeconds,
		"Indicates the tolerationSeconds of the toleration for notReady:NoExecute that is added by default to every pod that does not already have such a toleration.")
	fs.Int64Var(&cfg.DefaultUnreachableTolerationSeconds, "default-unreachable-toleration-seconds", cfg.DefaultUnreachableTolerationSeconds,
		"Indicates the tolerationSeconds of the toleration for unreachable:NoExecute that is added by default to every pod that does not already have such a toleration.")

	fs.StringSliceVar(&cfg.TLSSANs, "tls-san", cfg.TLSSANs,
		"Additional hostname or IP as a Subject Alternative Name in the serving certificate (repeatable, or comma separated).")
	fs.IntVarP(&cfg.LogLevel, "log-level", "v", cfg.LogLevel,
		"Number for the log level verbosity (as upstream -v).")
}

// signalContext returns a context that is cancelled on the first SIGINT or
// SIGTERM, so the server can shut down gracefully. A second signal means the
// user does not want to wait: exit is called with 128+signal, the shell
// convention. stop releases the signal handler and its goroutine; it is
// idempotent and must be called.
func signalContext(parent context.Context, stderr io.Writer, exit func(code int)) (ctx context.Context, stop func()) {
	ctx, cancel := context.WithCancel(parent)
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	stopped := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		select {
		case sig := <-sigs:
			fmt.Fprintf(stderr, "skiff: received %v, shutting down (send it again to exit immediately)\n", sig)
			cancel()
		case <-stopped:
			return
		}
		select {
		case sig := <-sigs:
			fmt.Fprintf(stderr, "skiff: received %v again, exiting immediately\n", sig)
			code := 1
			if s, ok := sig.(syscall.Signal); ok {
				code = 128 + int(s)
			}
			exit(code)
		case <-stopped:
		}
	})
	var once sync.Once
	return ctx, func() {
		once.Do(func() {
			signal.Stop(sigs)
			close(stopped)
			wg.Wait()
			cancel()
		})
	}
}

// addrValue is a pflag.Value for a netip.Addr.
type addrValue struct{ addr *netip.Addr }

func (v addrValue) String() string {
	if v.addr == nil || !v.addr.IsValid() {
		return ""
	}
	return v.addr.String()
}

func (v addrValue) Set(s string) error {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return fmt.Errorf("want an IP address such as 127.0.0.1 or 0.0.0.0: %w", err)
	}
	*v.addr = a
	return nil
}

func (addrValue) Type() string { return "ip" }

// prefixValue is a pflag.Value for a netip.Prefix in CIDR notation.
type prefixValue struct{ prefix *netip.Prefix }

func (v prefixValue) String() string {
	if v.prefix == nil || !v.prefix.IsValid() {
		return ""
	}
	return v.prefix.String()
}

func (v prefixValue) Set(s string) error {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return fmt.Errorf("want a CIDR such as 10.96.0.0/12: %w", err)
	}
	// Like net.ParseCIDR upstream: 10.96.7.7/12 means the network 10.96.0.0/12.
	*v.prefix = p.Masked()
	return nil
}

func (prefixValue) Type() string { return "cidr" }
