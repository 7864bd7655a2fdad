package cluster

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestServerConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		modify  func(*ServerConfig)
		wantErr string // empty: valid
	}{
		{name: "defaults", modify: func(*ServerConfig) {}},
		{name: "external etcd with TLS", modify: func(c *ServerConfig) {
			c.EtcdServers = []string{"https://10.0.0.2:2379"}
			c.EtcdCAFile, c.EtcdCertFile, c.EtcdKeyFile = "ca.crt", "etcd.crt", "etcd.key"
		}},
		{name: "IPv6 service range", modify: func(c *ServerConfig) { c.ServiceClusterIPRange = netip.MustParsePrefix("fd00:10:96::/112") }},
		{name: "empty data dir", modify: func(c *ServerConfig) { c.DataDir = "" }, wantErr: "--data-dir"},
		{name: "no bind address", modify: func(c *ServerConfig) { c.BindAddress = netip.Addr{} }, wantErr: "--bind-address"},
		{name: "port 0", modify: func(c *ServerConfig) { c.SecurePort = 0 }, wantErr: "--secure-port"},
		{name: "port too high", modify: func(c *ServerConfig) { c.SecurePort = 70000 }, wantErr: "--secure-port"},
		{name: "etcd cert without key", modify: func(c *ServerConfig) {
			c.EtcdServers = []string{"https://10.0.0.2:2379"}
			c.EtcdCertFile = "etcd.crt"
		}, wantErr: "together"},
		{name: "etcd TLS without servers", modify: func(c *ServerConfig) { c.EtcdCAFile = "ca.crt" }, wantErr: "need --etcd-servers"},
		{name: "no service range", modify: func(c *ServerConfig) { c.ServiceClusterIPRange = netip.Prefix{} }, wantErr: "--service-cluster-ip-range"},
		{name: "no cluster cidr", modify: func(c *ServerConfig) { c.ClusterCIDR = netip.Prefix{} }, wantErr: "--cluster-cidr"},
		{name: "overlapping ranges", modify: func(c *ServerConfig) { c.ClusterCIDR = netip.MustParsePrefix("10.96.0.0/16") }, wantErr: "overlaps"},
		{name: "service range /8", modify: func(c *ServerConfig) { c.ServiceClusterIPRange = netip.MustParsePrefix("172.0.0.0/8") }, wantErr: "too large"},
		{name: "no node port range", modify: func(c *ServerConfig) { c.ServiceNodePortRange.Size = 0 }, wantErr: "--service-node-port-range"},
		{name: "service range /32", modify: func(c *ServerConfig) { c.ServiceClusterIPRange = netip.MustParsePrefix("10.96.0.1/32") }, wantErr: "too small"},
		{name: "zero grace period", modify: func(c *ServerConfig) { c.NodeMonitorGracePeriod = 0 }, wantErr: "--node-monitor-grace-period"},
		{name: "negative not-ready toleration", modify: func(c *ServerConfig) { c.DefaultNotReadyTolerationSeconds = -1 }, wantErr: "not-ready"},
		{name: "negative unreachable toleration", modify: func(c *ServerConfig) { c.DefaultUnreachableTolerationSeconds = -1 }, wantErr: "unreachable"},
		{name: "tls-san names and IPs", modify: func(c *ServerConfig) {
			c.TLSSANs = []string{"API.example.com", "*.example.com", "10.0.0.1", "fd00::1", "node-1"}
		}},
		{name: "tls-san with space", modify: func(c *ServerConfig) { c.TLSSANs = []string{"my host"} }, wantErr: "--tls-san"},
		{name: "tls-san URL", modify: func(c *ServerConfig) { c.TLSSANs = []string{"https://api"} }, wantErr: "--tls-san"},
		{name: "tls-san empty", modify: func(c *ServerConfig) { c.TLSSANs = []string{""} }, wantErr: "--tls-san"},
		{name: "negative log level", modify: func(c *ServerConfig) { c.LogLevel = -1 }, wantErr: "--log-level"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultServerConfig()
			tc.modify(&cfg)
			err := cfg.Validate()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("Validate: %v, want nil", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("Validate = %v, want an error mentioning %q", err, tc.wantErr)
			}
		})
	}
}

func TestServerConfigDerivedValues(t *testing.T) {
	tests := []struct {
		name       string
		bind       string
		port       int
		svcRange   string
		sans       []string
		wantURL    string
		wantSvcIP  string
		wantServed []string
	}{
		{
			name: "defaults", bind: "127.0.0.1", port: 6443, svcRange: "10.96.0.0/12",
			wantURL: "https://127.0.0.1:6443", wantSvcIP: "10.96.0.1", wantServed: []string{"127.0.0.1", "10.96.0.1"},
		},
		{
			name: "all interfaces", bind: "0.0.0.0", port: 7443, svcRange: "10.43.0.0/16", sans: []string{"api.example.com"},
			wantURL: "https://127.0.0.1:7443", wantSvcIP: "10.43.0.1", wantServed: []string{"api.example.com", "10.43.0.1"},
		},
		{
			name: "specific IPv6 address", bind: "fd00::5", port: 6443, svcRange: "fd00:96::/112",
			wantURL: "https://[fd00::5]:6443", wantSvcIP: "fd00:96::1", wantServed: []string{"fd00::5", "fd00:96::1"},
		},
		{
			name: "unmasked range", bind: "::", port: 6443, svcRange: "10.96.7.7/12",
			wantURL: "https://127.0.0.1:6443", wantSvcIP: "10.96.0.1", wantServed: []string{"10.96.0.1"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultServerConfig()
			cfg.BindAddress = netip.MustParseAddr(tc.bind)
			cfg.SecurePort = tc.port
			cfg.ServiceClusterIPRange = netip.MustParsePrefix(tc.svcRange)
			cfg.TLSSANs = tc.sans
			if got := cfg.LocalURL(); got != tc.wantURL {
				t.Errorf("LocalURL = %q, want %q", got, tc.wantURL)
			}
			if got := cfg.APIServerServiceIP().String(); got != tc.wantSvcIP {
				t.Errorf("APIServerServiceIP = %s, want %s", got, tc.wantSvcIP)
			}
			if diff := cmp.Diff(tc.wantServed, cfg.ServingSANs()); diff != "" {
				t.Errorf("ServingSANs (-want +got):\n%s", diff)
			}
		})
	}
}
