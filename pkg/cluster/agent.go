package cluster

import (
	"context"
	"fmt"
	"net/netip"

	"k8s.io/client-go/rest"

	"github.com/skiff-project/skiff/pkg/agent"
)

// runAgent runs the node agent for this machine with the server's own
// loopback credentials, until ctx is done. RunServer starts it (unless
// cfg.DisableAgent) next to the other in-process components; its
// containerd lives in <data-dir>/agent and keeps running across server
// restarts (`skiff agent --cleanup --data-dir <data-dir>` tears it down).
func runAgent(ctx context.Context, cfg ServerConfig, loopback *rest.Config) error {
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
	return agent.Run(ctx, agent.Config{
		RestConfig: loopback,
		NodeName:   name,
		DataDir:    cfg.DataDir,
		ClusterDNS: []string{dns.String()},
	})
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
