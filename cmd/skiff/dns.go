package main

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/skiff-project/skiff/pkg/cluster"
	"github.com/skiff-project/skiff/pkg/dns"
)

const dnsLong = `Runs the cluster DNS server alone: it answers the names of the Kubernetes DNS
specification from the cluster's Services, EndpointSlices and Namespaces and
forwards every other name to upstream resolvers, like CoreDNS with its stock
kube-system Corefile. UDP and TCP on --address.

Records of the zone (--cluster-domain, "cluster.local" below), TTL --ttl:
  <svc>.<ns>.svc.cluster.local            A/AAAA: the ClusterIP(s) of a Service;
                                          for a headless Service, the addresses
                                          of its ready endpoints (NXDOMAIN when
                                          there are none); for an ExternalName
                                          Service a CNAME to the external name
                                          (A/AAAA questions also get the
                                          target's addresses)
  <host>.<svc>.<ns>.svc.cluster.local     A/AAAA of a ready endpoint whose
                                          hostname is <host> (StatefulSet pods),
                                          or whose address is <host> with dashes
                                          (10-1-2-3)
  _<port>._<proto>.<svc>.<ns>.svc.cluster.local
                                          SRV per named port: to the Service name,
                                          or, headless, one per ready endpoint to
                                          its <host> name; targets' addresses in
                                          the additional section
  <a-b-c-d>.<ns>.pod.cluster.local        A a.b.c.d, unchecked ("pods insecure");
                                          IPv6 with dashes for colons
  <d>.<c>.<b>.<a>.in-addr.arpa (ip6.arpa) PTR of a Service ClusterIP or ready
                                          endpoint address; other addresses go
                                          upstream
  dns-version.cluster.local               TXT "1.1.0"
  cluster.local                           SOA ns.dns.cluster.local.
                                          hostmaster.cluster.local., NS
Names are case-insensitive. <ns>.svc.cluster.local and other names that exist
but hold no record of the asked type answer NOERROR with no records; names
that do not exist answer NXDOMAIN; both carry the SOA in the authority
section. Until the informers have synced, questions in the zone get SERVFAIL.

Other names go to the nameservers of --resolv-conf (or --upstream), never to
this server itself: over UDP, again over TCP when truncated, SERVFAIL after
--forward-timeout. Their answers are cached up to 30 s.

GET /health on --health-address answers 200 "OK" while the server runs (and
/metrics has request counters); GET /ready on --ready-address answers 200 once
the informers have synced, 503 before: probes for a Deployment.

The cluster is the one of --kubeconfig; without it, the in-cluster service
account when running in a pod, else $KUBECONFIG, else the local server's
admin kubeconfig.`

func newDNSCommand(d deps) *cobra.Command {
	var (
		kubeconfig string
		ttl        int
		logLevel   int
		cfg        = dns.Config{
			Address:       dns.DefaultAddress,
			ClusterDomain: dns.DefaultClusterDomain,
			ResolvConf:    dns.DefaultResolvConf,
			HealthAddress: dns.DefaultHealthAddress,
			ReadyAddress:  dns.DefaultReadyAddress,
		}
	)
	cmd := &cobra.Command{
		Use:   "dns",
		Short: "Run the cluster DNS server (<svc>.<ns>.svc.cluster.local) alone",
		Long:  dnsLong,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if ttl < 1 || ttl > 3600 {
				return fmt.Errorf("--ttl %d: must be 1 to 3600 seconds", ttl)
			}
			cluster.ConfigureLogging(logLevel)
			restCfg, err := dnsRestConfig(d, kubeconfig)
			if err != nil {
				return err
			}
			restCfg.UserAgent = "skiff-dns"
			restCfg.ContentType = "application/vnd.kubernetes.protobuf"
			restCfg.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
			client, err := kubernetes.NewForConfig(restCfg)
			if err != nil {
				return fmt.Errorf("kubernetes client: %w", err)
			}
			cfg.Client = client
			cfg.TTL = time.Duration(ttl) * time.Second
			if !cmd.Flags().Changed("upstream") {
				cfg.Upstreams = nil
			}
			srv, err := dns.New(cfg)
			if err != nil {
				return err
			}
			ctx, stop := signalContext(cmd.Context(), d.stderr, os.Exit)
			defer stop()
			return srv.Run(ctx)
		},
	}
	f := cmd.Flags()
	f.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig of the cluster (default: in-cluster config in a pod, else $KUBECONFIG, else <data-dir>/admin.kubeconfig)")
	f.StringVar(&cfg.Address, "address", cfg.Address, "host:port to serve DNS on, UDP and TCP")
	f.StringVar(&cfg.ClusterDomain, "cluster-domain", cfg.ClusterDomain, "the zone answered from the cluster")
	f.IntVar(&ttl, "ttl", int(dns.DefaultTTL/time.Second), "TTL in seconds of the zone's records (1-3600)")
	f.StringSliceVar(&cfg.Upstreams, "upstream", nil, "resolvers (IP or IP:port, comma separated) for names outside the zone, instead of --resolv-conf's")
	f.StringVar(&cfg.ResolvConf, "resolv-conf", cfg.ResolvConf, "resolv.conf whose nameservers are the upstreams")
	f.DurationVar(&cfg.ForwardTimeout, "forward-timeout", dns.DefaultForwardTimeout, "how long a forwarded query may take over all upstreams before SERVFAIL")
	f.IntVar(&cfg.CacheSize, "cache-size", dns.DefaultCacheSize, "forwarded answers kept in the cache; negative disables it")
	f.StringVar(&cfg.HealthAddress, "health-address", cfg.HealthAddress, `host:port of GET /health and /metrics ("" disables)`)
	f.StringVar(&cfg.ReadyAddress, "ready-address", cfg.ReadyAddress, `host:port of GET /ready ("" disables)`)
	f.IntVarP(&logLevel, "log-level", "v", 0, "log verbosity (as upstream -v); 0 logs only warnings and errors")
	return cmd
}

// dnsRestConfig finds the cluster: --kubeconfig, else the pod's service
// account when running in a pod (as CoreDNS does), else the kubeconfig the
// other components use.
func dnsRestConfig(d deps, flag string) (*rest.Config, error) {
	if flag == "" && d.getenv("KUBERNETES_SERVICE_HOST") != "" && d.getenv("KUBERNETES_SERVICE_PORT") != "" {
		cfg, err := rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("in-cluster config: %w (pass --kubeconfig)", err)
		}
		return cfg, nil
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfigPath(d, flag))
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig: %w (pass --kubeconfig)", err)
	}
	return cfg, nil
}
