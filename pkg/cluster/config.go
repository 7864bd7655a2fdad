package cluster

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/skiff-project/skiff/pkg/apiserver"
)

// DefaultDataDir is where a server keeps its state (etcd, PKI, kubeconfigs)
// unless --data-dir says otherwise.
const DefaultDataDir = "/var/lib/skiff"

// DataDirEnv names the environment variable that overrides DefaultDataDir
// for the command line (server flag default and `skiff kubectl`).
const DataDirEnv = "SKIFF_DATA_DIR"

// ServerConfig is the configuration of `skiff server`, filled from its flags.
// The zero value is not usable; start from DefaultServerConfig. RunServer
// must not modify it.
type ServerConfig struct {
	// DataDir holds etcd's data (when embedded), the PKI and admin.kubeconfig.
	DataDir string
	// BindAddress is the IP the API server listens on; the unspecified
	// address (0.0.0.0 or ::) means all interfaces.
	BindAddress netip.Addr
	// SecurePort is the HTTPS port of the API server (1-65535).
	SecurePort int
	// AdvertiseAddress is the IP other cluster members, pods included,
	// reach the API server at: the endpoint of the "kubernetes" Service.
	// The zero value means the bind address when it is a specific one,
	// else this machine's primary IP (see AdvertiseIP).
	AdvertiseAddress netip.Addr

	// EtcdServers are client URLs of an external etcd cluster; empty means
	// the server runs an embedded etcd member in DataDir.
	EtcdServers []string
	// EtcdCAFile, EtcdCertFile and EtcdKeyFile secure the connection to
	// EtcdServers; cert and key are given together or not at all.
	EtcdCAFile, EtcdCertFile, EtcdKeyFile string

	// TokenAuthFile is a static token file (CSV: token,user,uid[,"group1,group2"])
	// as in upstream --token-auth-file; empty disables it.
	TokenAuthFile string
	// AuthorizationMode is the API server's authorizer (--authorization-mode):
	// RBAC (the default), AlwaysAllow or MastersOnly.
	AuthorizationMode string
	// ServiceAccountIssuer is the "iss" (and default audience) of
	// ServiceAccount tokens (--service-account-issuer); empty means
	// https://kubernetes.default.svc.cluster.local.
	ServiceAccountIssuer string

	// ServiceClusterIPRange is where ClusterIPs are allocated from; its first
	// address is the "kubernetes" Service's ClusterIP.
	ServiceClusterIPRange netip.Prefix
	// ClusterCIDR is the pod network, split into per-node podCIDRs.
	ClusterCIDR netip.Prefix
	// ServiceNodePortRange is where NodePort and LoadBalancer Services get
	// their node ports (--service-node-port-range, both ends inclusive).
	ServiceNodePortRange utilnet.PortRange

	// DisableAgent stops the server from running the node agent (kubelet and
	// proxy) for this machine: a control-plane-only server.
	DisableAgent bool
	// Disable names add-ons (see Addons) the server does not run, like
	// k3s's --disable.
	Disable []string
	// ProxyMode is the kube-proxy add-on's --proxy-mode: "iptables" (the
	// default when empty) or "nftables".
	ProxyMode string
	// NodeName is the name of this machine's Node; empty means the hostname.
	NodeName string
	// InsecureRegistries are registries ("host" or "host:port") the node
	// agent pulls from over plain HTTP (agent.Config.InsecureRegistries).
	InsecureRegistries []string
	// StaticPodPath is the agent's static pod manifest directory
	// (--pod-manifest-path); empty means <data-dir>/agent/manifests.
	StaticPodPath string

	// NodeMonitorGracePeriod is how long a node may go without renewing its
	// Lease or status before it is marked NotReady/Unknown.
	NodeMonitorGracePeriod time.Duration
	// DefaultNotReadyTolerationSeconds and DefaultUnreachableTolerationSeconds
	// are the tolerationSeconds added to pods without their own toleration
	// for node.kubernetes.io/not-ready and node.kubernetes.io/unreachable.
	DefaultNotReadyTolerationSeconds    int64
	DefaultUnreachableTolerationSeconds int64

	// TLSSANs are extra IPs or DNS names for the serving certificate.
	TLSSANs []string
	// LogLevel is the klog verbosity (-v); 0 logs only important events.
	LogLevel int
}

// DefaultServerConfig returns the configuration `skiff server` uses without
// flags. Each call returns a new value the caller may modify.
func DefaultServerConfig() ServerConfig {
	return ServerConfig{
		DataDir:                             DefaultDataDir,
		BindAddress:                         netip.MustParseAddr("0.0.0.0"),
		SecurePort:                          6443,
		AuthorizationMode:                   apiserver.AuthorizationModeRBAC,
		ServiceClusterIPRange:               netip.MustParsePrefix("10.96.0.0/12"),
		ClusterCIDR:                         netip.MustParsePrefix("10.244.0.0/16"),
		ProxyMode:                           "iptables",
		ServiceNodePortRange:                utilnet.PortRange{Base: 30000, Size: 2768},
		NodeMonitorGracePeriod:              40 * time.Second,
		DefaultNotReadyTolerationSeconds:    300,
		DefaultUnreachableTolerationSeconds: 300,
	}
}

// Validate reports the first problem with c, phrased as what to change.
func (c *ServerConfig) Validate() error {
	switch {
	case c.DataDir == "":
		return errors.New("--data-dir must not be empty")
	case !c.BindAddress.IsValid():
		return errors.New("--bind-address must be an IP address, e.g. 127.0.0.1 or 0.0.0.0")
	case c.SecurePort < 1 || c.SecurePort > 65535:
		return fmt.Errorf("--secure-port %d must be between 1 and 65535", c.SecurePort)
	case (c.EtcdCertFile == "") != (c.EtcdKeyFile == ""):
		return errors.New("--etcd-certfile and --etcd-keyfile must be given together")
	case len(c.EtcdServers) == 0 && (c.EtcdCAFile != "" || c.EtcdCertFile != ""):
		return errors.New("--etcd-cafile/--etcd-certfile/--etcd-keyfile need --etcd-servers; the embedded etcd manages its own TLS")
	case !c.ServiceClusterIPRange.IsValid():
		return errors.New("--service-cluster-ip-range must be a CIDR, e.g. 10.96.0.0/12")
	case !c.ClusterCIDR.IsValid():
		return errors.New("--cluster-cidr must be a CIDR, e.g. 10.244.0.0/16")
	case c.ServiceClusterIPRange.Overlaps(c.ClusterCIDR):
		return fmt.Errorf("--service-cluster-ip-range %s overlaps --cluster-cidr %s; pick disjoint ranges", c.ServiceClusterIPRange, c.ClusterCIDR)
	case c.ServiceClusterIPRange.Addr().Is4() && c.ServiceClusterIPRange.Bits() < 12:
		return fmt.Errorf("--service-cluster-ip-range %s is too large; for 32-bit addresses, the mask must be >= 12", c.ServiceClusterIPRange)
	case c.ServiceClusterIPRange.Bits() >= c.ServiceClusterIPRange.Addr().BitLen()-1:
		return fmt.Errorf("--service-cluster-ip-range %s is too small; it needs room for the kubernetes Service and others", c.ServiceClusterIPRange)
	case c.ServiceNodePortRange.Size <= 0 || c.ServiceNodePortRange.Base <= 0:
		return errors.New("--service-node-port-range must be a port range, e.g. 30000-32767")
	case c.NodeMonitorGracePeriod <= 0:
		return fmt.Errorf("--node-monitor-grace-period %v must be positive", c.NodeMonitorGracePeriod)
	case c.DefaultNotReadyTolerationSeconds < 0:
		return fmt.Errorf("--default-not-ready-toleration-seconds %d must not be negative", c.DefaultNotReadyTolerationSeconds)
	case c.DefaultUnreachableTolerationSeconds < 0:
		return fmt.Errorf("--default-unreachable-toleration-seconds %d must not be negative", c.DefaultUnreachableTolerationSeconds)
	case c.LogLevel < 0:
		return fmt.Errorf("--log-level %d must not be negative", c.LogLevel)
	case c.AuthorizationMode != "" && !slices.Contains(apiserver.AuthorizationModes(), c.AuthorizationMode):
		return fmt.Errorf("--authorization-mode %q: use one of %s", c.AuthorizationMode, strings.Join(apiserver.AuthorizationModes(), ", "))
	}
	if c.ProxyMode != "" && c.ProxyMode != "iptables" && c.ProxyMode != "nftables" {
		return fmt.Errorf("--proxy-mode %q: want iptables or nftables", c.ProxyMode)
	}
	for _, d := range c.Disable {
		if !slices.Contains(Addons(), d) {
			return fmt.Errorf("--disable %q: unknown add-on; the add-ons are %s", d, strings.Join(Addons(), ", "))
		}
	}
	for _, san := range c.TLSSANs {
		if err := validateSAN(san); err != nil {
			return fmt.Errorf("--tls-san: %w", err)
		}
	}
	return nil
}

// validateSAN accepts what a serving certificate can carry and a client can
// match: an IP address, or a DNS name (lowercase RFC 1123, optionally with a
// leading "*." wildcard). Checking up front turns a confusing x509 error at
// certificate creation into a flag error.
func validateSAN(san string) error {
	// net.ParseIP, not netip: it is what servingSANs uses, and it rejects
	// zoned addresses (fe80::1%eth0), which a certificate cannot carry.
	if net.ParseIP(san) != nil {
		return nil
	}
	name := strings.ToLower(san)
	errs := validation.IsDNS1123Subdomain(name)
	if strings.HasPrefix(name, "*.") {
		errs = validation.IsWildcardDNS1123Subdomain(name)
	}
	if len(errs) > 0 {
		return fmt.Errorf("%q is neither an IP address nor a DNS name: %s", san, strings.Join(errs, "; "))
	}
	return nil
}

// APIServerServiceIP returns the ClusterIP of the "kubernetes" Service: the
// first address after the network address of ServiceClusterIPRange
// (10.96.0.1 for the default range).
func (c *ServerConfig) APIServerServiceIP() netip.Addr {
	return c.ServiceClusterIPRange.Masked().Addr().Next()
}

// AdvertiseIP returns the address the API server is advertised at (the
// "kubernetes" Service's endpoint): AdvertiseAddress when set, else the
// bind address when it is a specific one, else primaryIP() — upstream's
// rule, where pods must reach the API server through a routable address.
func (c *ServerConfig) AdvertiseIP(primaryIP func() string) netip.Addr {
	switch {
	case c.AdvertiseAddress.IsValid():
		return c.AdvertiseAddress
	case c.BindAddress.IsValid() && !c.BindAddress.IsUnspecified():
		return c.BindAddress
	}
	if ip, err := netip.ParseAddr(primaryIP()); err == nil {
		return ip
	}
	return netip.MustParseAddr("127.0.0.1")
}

// ServingSANs returns the SANs the serving certificate needs beyond those
// EnsurePKI always adds: the --tls-san values, the bind address when it is a
// specific address, the advertise address, and the "kubernetes" Service IP.
func (c *ServerConfig) ServingSANs() []string {
	sans := append([]string(nil), c.TLSSANs...)
	if c.BindAddress.IsValid() && !c.BindAddress.IsUnspecified() {
		sans = append(sans, c.BindAddress.String())
	}
	if c.AdvertiseAddress.IsValid() && c.AdvertiseAddress != c.BindAddress {
		sans = append(sans, c.AdvertiseAddress.String())
	}
	if ip := c.APIServerServiceIP(); ip.IsValid() {
		sans = append(sans, ip.String())
	}
	return sans
}

// LocalURL returns the URL local clients (admin.kubeconfig, in-process
// components) use to reach the API server: the bind address, or loopback
// when the server listens on all interfaces.
func (c *ServerConfig) LocalURL() string {
	host := c.BindAddress
	if !host.IsValid() || host.IsUnspecified() {
		host = netip.MustParseAddr("127.0.0.1")
	}
	return "https://" + net.JoinHostPort(host.String(), strconv.Itoa(c.SecurePort))
}
