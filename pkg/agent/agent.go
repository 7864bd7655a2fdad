// Package agent assembles Skiff's node agent: the kubelet (pkg/kubelet)
// over the CRI runtime (pkg/kubelet/criruntime) on a private containerd
// (pkg/containerd), with the images it needs imported without a registry
// (pkg/images). `skiff agent` runs it against a cluster, and `skiff server`
// runs it for its own machine.
//
// # Data directory
//
//	<data-dir>/agent/containerd/   the private containerd: root, state,
//	                               socket, CNI config, IPAM leases, log,
//	                               containerd.pid
//	<data-dir>/agent/images/       image tarballs imported at every start
//	                               (air-gapped installs); drop a pause
//	                               tarball here to avoid building it
//	<data-dir>/agent/pods-logs/    container logs, <ns>_<pod>_<uid>/<c>/<n>.log
//	<data-dir>/agent/cache/        images the agent built itself
//	<data-dir>/agent/pods/         pod volumes, <uid>/volumes/<plugin>/<name>
//	                               (pkg/kubelet/volume), removed with the pod
//	<data-dir>/agent/manifests/    static pod manifests (--pod-manifest-path):
//	                               run by the kubelet, mirrored into the API
//
// # Restarts keep containers
//
// Upstream's kubelet can be restarted without touching running containers,
// because containerd is a separate service. Skiff gets the same property by
// starting its private containerd in a session of its own (setsid) and
// leaving it running when the agent stops: its PID is kept in
// containerd.pid, and the next agent start reuses the live instance found
// behind the socket instead of starting another. The kubelet then re-adopts
// the pods from CRI state (they are found by their pod UID labels), so
// their containers keep their IDs and never restart.
//
// Tearing the node down is explicit: Cleanup (`skiff agent --cleanup`)
// removes every pod through the CRI (CNI DEL releases addresses and
// rules), stops containerd and its shims, unmounts leftovers, deletes the
// bridge and removes the pod cgroups.
package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

	"github.com/skiff-project/skiff/pkg/kubelet"
	"github.com/skiff-project/skiff/pkg/kubelet/criruntime"
	kserver "github.com/skiff-project/skiff/pkg/kubelet/server"
	"github.com/skiff-project/skiff/pkg/kubelet/volume"
)

// Defaults of Config.
const (
	// DefaultClusterDNS is the cluster DNS Service's address: the tenth
	// address of the default service range 10.96.0.0/12, as upstream's
	// tooling picks it.
	DefaultClusterDNS = "10.96.0.10"
	// DefaultPodCIDRTimeout is how long the agent waits for the control
	// plane to allocate the node's podCIDR before it falls back to
	// Config.FallbackPodCIDR (when set).
	DefaultPodCIDRTimeout = 30 * time.Second
	// DefaultMaxPods is the node's pod capacity, upstream's --max-pods.
	DefaultMaxPods = 110
	// DefaultKubeAPIQPS and DefaultKubeAPIBurst limit the agent's API
	// client when Config.RestConfig sets no QPS (upstream's kubelet
	// --kube-api-qps and --kube-api-burst, 50 and 100 there). Starting a
	// pod costs about five writes (two status updates, three events):
	// client-go's own default of 5/s held 100 pods back for 40 s, and even
	// 50/s would for 10 s.
	DefaultKubeAPIQPS   = 500
	DefaultKubeAPIBurst = 1000
	// DefaultBusybox is Debian's busybox-static, from which the agent
	// builds the busybox test image.
	DefaultBusybox = "/bin/busybox"
)

// podWorkers is the number of the kubelet's pod workers. Upstream's kubelet
// has a goroutine per pod; the kubelet's default of 4 made a burst of pod
// starts wait for each other's CRI calls (100 pods: 16 s with 4, 11 s with
// 16 on this 2-core machine), and a pod in its termination grace period
// holds a worker for that long.
const podWorkers = 16

// placeholderPodCIDR is written to the CNI configuration of a freshly
// started containerd until the real podCIDR is known: containerd reports
// its network ready only with a configuration present. No pod starts
// before the real range arrives (see podCIDRGate), so no address is ever
// taken from it.
const placeholderPodCIDR = "10.88.0.0/16"

// Config configures the node agent. RestConfig, NodeName and DataDir are
// required; every other zero field takes its documented default.
type Config struct {
	// RestConfig reaches the API server with the node's credentials.
	RestConfig *rest.Config
	// NodeName names this machine's Node.
	NodeName string
	// DataDir is the data directory; the agent keeps everything under
	// DataDir/agent (see the package documentation).
	DataDir string

	// ContainerRuntimeEndpoint, when set, is an existing CRI endpoint
	// (upstream's --container-runtime-endpoint) used instead of the
	// private containerd. Its CNI configuration is then its owner's.
	ContainerRuntimeEndpoint string
	// BridgeName and NetworkName name the private containerd's CNI bridge
	// and network; containerd's defaults ("skiff0", "skiff") when empty.
	BridgeName, NetworkName string
	// CgroupRoot is the cgroup under which the pods' "kubepods" tree
	// lives; "/" when empty.
	CgroupRoot string

	// FallbackPodCIDR, when set, is used as the pod range if the Node has
	// no spec.podCIDR after PodCIDRTimeout (a control plane without the
	// nodeipam controller). A podCIDR allocated later still takes over for
	// new pods.
	FallbackPodCIDR string
	// PodCIDRTimeout is DefaultPodCIDRTimeout when zero.
	PodCIDRTimeout time.Duration

	// ClusterDNS are the DNS servers of pods with dnsPolicy ClusterFirst;
	// [DefaultClusterDNS] when nil.
	ClusterDNS []string
	// ClusterDomain is the cluster's DNS domain; "cluster.local" when
	// empty.
	ClusterDomain string
	// Labels are extra node labels.
	Labels map[string]string
	// MaxPods is the pod capacity; DefaultMaxPods when zero.
	MaxPods int

	// SourceDir is the root of Skiff's source tree, where the pause image
	// is built from (test/images/pause) when no pause image is imported;
	// when empty, the agent looks for it upwards from the working
	// directory.
	SourceDir string
	// SkiffImage, when set, is the reference of the image the agent
	// builds from its own binary (see SkiffImageRef) for the add-on
	// workloads; pods that use it wait for the build instead of pulling.
	SkiffImage string
	// SkiffBinary is the binary that image is built from; this process's
	// executable when empty.
	SkiffBinary string
	// Busybox is the static busybox binary the busybox test image is
	// built from when missing; DefaultBusybox when empty. A missing binary
	// only skips the image.
	Busybox string
	// PollInterval is how often the CRI runtime re-reads live pods;
	// criruntime.DefaultPollInterval when zero.
	PollInterval time.Duration
	// NodeStatusUpdateFrequency is the kubelet's node status period; the
	// kubelet default when zero.
	NodeStatusUpdateFrequency time.Duration

	// InsecureRegistries are registries ("host" or "host:port") the
	// private containerd pulls from over plain HTTP (docker's
	// --insecure-registry); loopback registries need no entry (see
	// registry.go).
	InsecureRegistries []string

	// KubeletTLS, when set, makes the agent serve the kubelet's HTTPS API
	// (logs, exec, attach, port-forward) on KubeletPort for the API server.
	KubeletTLS *KubeletTLS

	// StaticPodPath is the directory of static pod manifests the kubelet
	// runs and mirrors into the API (upstream's --pod-manifest-path);
	// Paths.Manifests when empty.
	StaticPodPath string
}

// KubeletTLS is the kubelet API server's TLS material.
type KubeletTLS struct {
	// Certificate is the kubelet's serving certificate.
	Certificate tls.Certificate
	// ClientCAs verify callers' client certificates (the API server's).
	ClientCAs *x509.CertPool
}

// KubeletPort is the kubelet API's port, upstream's 10250.
const KubeletPort = 10250

// Paths are the agent's directories under a data directory.
type Paths struct {
	Dir        string // DataDir/agent
	Containerd string // the private containerd's directory
	Images     string // tarballs imported at start
	PodLogs    string // pod log directories
	Cache      string // images the agent built
	Pods       string // pod directories (volumes)
	Manifests  string // the default static pod directory
}

// PathsFor returns the agent's paths under dataDir.
func PathsFor(dataDir string) Paths {
	dir := filepath.Join(dataDir, "agent")
	return Paths{
		Dir:        dir,
		Containerd: filepath.Join(dir, "containerd"),
		Images:     filepath.Join(dir, "images"),
		PodLogs:    filepath.Join(dir, "pods-logs"),
		Cache:      filepath.Join(dir, "cache"),
		Pods:       filepath.Join(dir, "pods"),
		Manifests:  filepath.Join(dir, "manifests"),
	}
}

// Socket returns the private containerd's socket path; `skiff image import`
// and ctr use it.
func (p Paths) Socket() string { return filepath.Join(p.Containerd, "containerd.sock") }

// pidFile holds the PID of the private containerd.
func (p Paths) pidFile() string { return filepath.Join(p.Containerd, "containerd.pid") }

func (cfg Config) withDefaults() (Config, error) {
	switch {
	case cfg.RestConfig == nil:
		return cfg, errors.New("agent: Config.RestConfig is required")
	case cfg.NodeName == "":
		return cfg, errors.New("agent: Config.NodeName is required")
	case cfg.DataDir == "":
		return cfg, errors.New("agent: Config.DataDir is required")
	}
	if cfg.FallbackPodCIDR != "" {
		if _, err := netip.ParsePrefix(cfg.FallbackPodCIDR); err != nil {
			return cfg, fmt.Errorf("agent: fallback pod CIDR: %w", err)
		}
	}
	if cfg.ClusterDNS == nil {
		cfg.ClusterDNS = []string{DefaultClusterDNS}
	}
	if cfg.PodCIDRTimeout <= 0 {
		cfg.PodCIDRTimeout = DefaultPodCIDRTimeout
	}
	if cfg.MaxPods <= 0 {
		cfg.MaxPods = DefaultMaxPods
	}
	if cfg.SkiffImage != "" && cfg.SkiffBinary == "" {
		exe, err := os.Executable()
		if err != nil {
			return cfg, fmt.Errorf("agent: locating the skiff binary for its image: %w", err)
		}
		cfg.SkiffBinary = exe
	}
	if cfg.Busybox == "" {
		cfg.Busybox = DefaultBusybox
	}
	if cfg.CgroupRoot == "" {
		cfg.CgroupRoot = "/"
	}
	abs, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return cfg, fmt.Errorf("agent: resolving data dir: %w", err)
	}
	cfg.DataDir = abs
	if cfg.StaticPodPath == "" {
		cfg.StaticPodPath = PathsFor(abs).Manifests
	}
	return cfg, nil
}

// Run runs the node agent until ctx is done: it starts (or reuses) the
// private containerd, imports and builds the images, runs the kubelet and
// feeds the node's podCIDR to the CNI configuration. It returns nil after
// a clean stop; the containers and containerd keep running (see the
// package documentation), so a restarted agent re-adopts them.
func Run(ctx context.Context, cfg Config) error {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return err
	}
	logger := klog.FromContext(ctx).WithName("agent").WithValues("node", cfg.NodeName)
	ctx = klog.NewContext(ctx, logger)
	start := time.Now()
	paths := PathsFor(cfg.DataDir)
	for _, d := range []string{paths.Dir, paths.Images, paths.PodLogs, paths.Cache, paths.Pods, paths.Manifests} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("agent: creating %s: %w", d, err)
		}
	}

	rt, err := openRuntime(ctx, cfg, paths)
	if err != nil {
		return err
	}
	defer rt.close()
	// A containerd started by this run that never ran the kubelet holds
	// nothing of value: a failed start stops it rather than leaving it
	// behind.
	kubeletStarted := false
	defer func() {
		if !kubeletStarted && rt.proc != nil {
			if stopErr := rt.proc.Stop(); stopErr != nil {
				logger.Error(stopErr, "stopping containerd after a failed start")
			}
			_ = os.Remove(paths.pidFile())
		}
	}()
	if err := configureRegistries(ctx, cfg, paths, rt); err != nil {
		return err
	}
	if err := ensureImages(ctx, cfg, paths, rt); err != nil {
		return err
	}
	var skiff *skiffImage
	if cfg.SkiffImage != "" {
		buildCtx, stopBuild := context.WithCancel(ctx)
		socket := strings.TrimPrefix(cfg.ContainerRuntimeEndpoint, "unix://")
		if socket == "" {
			socket = paths.Socket()
		}
		skiff = buildSkiffImage(buildCtx, cfg.SkiffImage, cfg.SkiffBinary, socket, paths, rt)
		defer func() { stopBuild(); <-skiff.done }()
	}

	restCfg := rest.CopyConfig(cfg.RestConfig)
	if restCfg.UserAgent == "" {
		restCfg.UserAgent = "skiff-agent/" + cfg.NodeName
	}
	if restCfg.QPS == 0 {
		restCfg.QPS, restCfg.Burst = DefaultKubeAPIQPS, DefaultKubeAPIBurst
	}
	client, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		return fmt.Errorf("agent: creating client: %w", err)
	}

	addrs := nodeAddresses(cfg.NodeName)
	var nodeIPs []string
	for _, a := range addrs {
		if a.Type == corev1.NodeInternalIP {
			nodeIPs = append(nodeIPs, a.Address)
		}
	}
	capacity, err := machineCapacity(cfg.DataDir, cfg.MaxPods)
	if err != nil {
		return err
	}
	volumes, err := volume.New(volume.Config{PodsDir: paths.Pods, Client: client, NodeAllocatable: capacity})
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	var kubeletRef atomic.Pointer[kubelet.Kubelet]
	cri, err := criruntime.New(criruntime.Config{
		Runtime:        rt.conn.Runtime,
		Images:         &localImages{ImageManagerService: rt.conn.Images, skiff: skiff},
		PodLogsRoot:    paths.PodLogs,
		CgroupRoot:     cfg.CgroupRoot,
		NodeIPs:        nodeIPs,
		ClusterDNS:     cfg.ClusterDNS,
		ClusterDomain:  cfg.ClusterDomain,
		PollInterval:   cfg.PollInterval,
		PodCIDRChanged: rt.setPodCIDR,
		// The kubelet is built below; events of pod kills (a failed
		// preStop hook) go to it once it exists.
		Events: func(pod *corev1.Pod, e kubelet.Event) {
			if kl := kubeletRef.Load(); kl != nil {
				kl.RecordPodEvent(pod, e)
			}
		},
		Volumes: volumes,
		Secrets: func(ctx context.Context, namespace, name string) (*corev1.Secret, error) {
			return client.CoreV1().Secrets(namespace).Get(ctx, name, metav1.GetOptions{})
		},
	})
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	gate := newPodCIDRGate(cri)
	// Containers get the service variables (KUBERNETES_SERVICE_HOST, ...)
	// in-cluster clients need, from a service informer of the agent's own.
	svcInformer := coreinformers.NewServiceInformer(client, metav1.NamespaceAll, 0, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	k, err := kubelet.New(kubelet.Config{
		Services:                  corelisters.NewServiceLister(svcInformer.GetIndexer()),
		ServicesSynced:            svcInformer.HasSynced,
		NodeName:                  cfg.NodeName,
		Client:                    client,
		Runtime:                   gate,
		Capacity:                  capacity,
		Labels:                    cfg.Labels,
		Addresses:                 addrs,
		SystemInfo:                systemInfo(),
		NodeStatusUpdateFrequency: cfg.NodeStatusUpdateFrequency,
		StaticPodPath:             cfg.StaticPodPath,
		Volumes:                   volumes,
		Workers:                   podWorkers,
	})
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	kubeletRef.Store(k)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() { watchPodCIDR(ctx, client, cfg, gate) })
	wg.Go(func() { svcInformer.RunWithContext(ctx) })
	wg.Go(func() {
		select {
		case <-ctx.Done():
		case <-k.Registered():
			logger.Info("node registered", "after", time.Since(start).Round(time.Millisecond))
		}
	})
	if rt.proc != nil {
		// A containerd that dies under us would leave the kubelet
		// reporting Ready over a dead runtime: stop and let the caller
		// restart the agent (which starts a new containerd).
		wg.Go(func() {
			select {
			case <-ctx.Done():
			case <-rt.proc.Exited():
				logger.Error(nil, "containerd exited; stopping the agent")
				cancel()
			}
		})
	}
	if cfg.KubeletTLS != nil {
		srv, err := kserver.New(kserver.Config{Runtime: kserver.CRI{Runtime: rt.conn.Runtime},
			Stats: cri, NodeName: cfg.NodeName,
			Certificate: &cfg.KubeletTLS.Certificate, ClientCAs: cfg.KubeletTLS.ClientCAs})
		if err != nil {
			return fmt.Errorf("agent: kubelet API: %w", err)
		}
		ln, err := net.Listen("tcp", fmt.Sprintf(":%d", KubeletPort))
		if err != nil {
			return fmt.Errorf("agent: kubelet API: listen on :%d: %w (is another kubelet running?)", KubeletPort, err)
		}
		wg.Go(func() {
			if err := srv.Serve(ctx, ln); err != nil && ctx.Err() == nil {
				logger.Error(err, "kubelet API stopped")
			}
		})
	}
	kubeletStarted = true
	runErr := k.Run(ctx)
	cancel()
	wg.Wait()
	if rt.proc != nil {
		select {
		case <-rt.proc.Exited():
			return fmt.Errorf("agent: containerd exited unexpectedly (log: %s)", rt.proc.Paths().Log)
		default:
		}
	}
	if runErr != nil && ctx.Err() != nil && errors.Is(runErr, context.Canceled) {
		return nil
	}
	return runErr
}

// hostname returns the machine's hostname in the form a Node name takes.
func hostname() (string, error) {
	h, err := os.Hostname()
	if err != nil {
		return "", fmt.Errorf("agent: reading hostname: %w", err)
	}
	return strings.ToLower(h), nil
}

// DefaultNodeName is the node name of this machine: its hostname,
// lowercased.
func DefaultNodeName() (string, error) { return hostname() }
