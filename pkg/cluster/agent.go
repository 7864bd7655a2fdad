package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"

	"k8s.io/client-go/rest"

	"github.com/skiff-project/skiff/pkg/agent"
)

// runAgent runs the node agent for this machine with the server's own
// loopback credentials, until ctx is done. RunServer starts it (unless
// cfg.DisableAgent) next to the other in-process components; its
// containerd lives in <data-dir>/agent and keeps running across server
// restarts (`skiff agent --cleanup --data-dir <data-dir>` tears it down).
func runAgent(ctx context.Context, cfg ServerConfig, loopback *rest.Config, pki *PKI) error {
	name := cfg.NodeName
	if name == "" {
		h, err := agent.DefaultNodeName()
		if err != nil {
			return err
		}
		name = h
	}
	dns, err := ClusterDNSIP(cfg.ServiceClusterIPRange)
	if err != nil {
		return err
	}
	kubeletTLS, err := kubeletServing(pki, name)
	if err != nil {
		return err
	}
	return agent.Run(ctx, agent.Config{
		RestConfig: loopback,
		NodeName:   name,
		DataDir:    cfg.DataDir,
		ClusterDNS: []string{dns.String()},
		KubeletTLS: kubeletTLS,
		SkiffImage: SkiffImage(),

		InsecureRegistries: cfg.InsecureRegistries,

		StaticPodPath: cfg.StaticPodPath,
	})
}

// SkiffImage is the image every node builds from its own skiff binary
// and the add-on workloads (kube-proxy, CoreDNS) run.
func SkiffImage() string { return agent.SkiffImageRef(Version) }

// kubeletAPIClientCN is the user the API server presents to kubelets.
const kubeletAPIClientCN = "kube-apiserver-kubelet-client"

// kubeletServing issues the kubelet API's serving certificate for this
// machine: its hostname and every address of its interfaces, so the API
// server can reach it at whichever InternalIP the node reports.
func kubeletServing(pki *PKI, nodeName string) (*agent.KubeletTLS, error) {
	var ips []net.IP
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok {
				ips = append(ips, n.IP)
			}
		}
	}
	dns := []string{nodeName, "localhost"}
	if h, err := os.Hostname(); err == nil && h != nodeName {
		dns = append(dns, h)
	}
	certPEM, keyPEM, err := pki.IssueServingCert(nodeName, ips, dns, 365*24*time.Hour)
	if err != nil {
		return nil, fmt.Errorf("kubelet serving certificate: %w", err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("kubelet serving certificate: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(pki.CA)
	return &agent.KubeletTLS{Certificate: cert, ClientCAs: pool}, nil
}

// kubeletClientTLS is how the API server calls kubelets: a client
// certificate kubelets accept, and the cluster CA to verify them.
func kubeletClientTLS(pki *PKI) (*tls.Config, error) {
	certPEM, keyPEM, err := pki.IssueClientCert(kubeletAPIClientCN, []string{MastersGroup}, 365*24*time.Hour)
	if err != nil {
		return nil, fmt.Errorf("kubelet client certificate: %w", err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("kubelet client certificate: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(pki.CA)
	return &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

// ClusterDNSIP is the cluster DNS Service's address in serviceRange: its
// tenth address (10.96.0.10 in 10.96.0.0/12), upstream's convention.
func ClusterDNSIP(serviceRange netip.Prefix) (netip.Addr, error) {
	a := serviceRange.Masked().Addr()
	for range 10 {
		a = a.Next()
	}
	if !serviceRange.Contains(a) {
		return netip.Addr{}, fmt.Errorf("service range %s is too small for a cluster DNS address", serviceRange)
	}
	return a, nil
}
