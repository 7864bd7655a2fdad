package containerd

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Defaults of Config.
const (
	DefaultBridgeName   = "skiff0"
	DefaultNetworkName  = "skiff"
	DefaultCNIBinDir    = "/usr/lib/cni"
	DefaultSandboxImage = "registry.k8s.io/pause:3.10"
	DefaultReadyTimeout = 15 * time.Second
	DefaultStopTimeout  = 10 * time.Second
)

// maxUnixSocketPath is the longest path a unix socket address may have
// (sun_path is 108 bytes including the terminating NUL).
const maxUnixSocketPath = 107

// Config describes a private containerd for Skiff. Only Dir and PodCIDR are
// required; everything else has a default.
type Config struct {
	// Dir holds everything the instance creates: root, state, sockets,
	// runc root, CNI configuration and IPAM leases, the config file and the
	// log. It is created if missing; Stop leaves it (and the images in it)
	// in place. The socket path Dir/containerd.sock must fit a unix socket
	// address (at most 107 bytes).
	Dir string
	// PodCIDR is the node's pod range (node.spec.podCIDR), e.g.
	// "10.88.0.0/16"; the bridge gets its first host address.
	PodCIDR string
	// BridgeName names the CNI bridge; DefaultBridgeName when empty. Give
	// every instance on one host its own name (at most 15 bytes).
	BridgeName string
	// NetworkName names the CNI network; DefaultNetworkName when empty.
	NetworkName string
	// ContainerdPath is the containerd binary; "containerd" on PATH when
	// empty.
	ContainerdPath string
	// RuncPath is the runc binary; "runc" on PATH when empty.
	RuncPath string
	// CNIBinDir holds the CNI plugins; DefaultCNIBinDir when empty.
	CNIBinDir string
	// SandboxImage is the pause image; DefaultSandboxImage when empty. It
	// must be present (imported) before the first pod starts, unless a
	// registry serves it.
	SandboxImage string
	// NoIPMasq turns off the bridge plugin's masquerading of pod egress
	// (on by default so pods reach beyond the node).
	NoIPMasq bool
	// LogLevel is containerd's log level; "info" when empty.
	LogLevel string
	// ReadyTimeout bounds how long Start waits for the CRI to answer;
	// DefaultReadyTimeout when zero.
	ReadyTimeout time.Duration
	// StopTimeout bounds how long Stop waits for containerd to exit after
	// SIGTERM before it sends SIGKILL; DefaultStopTimeout when zero.
	StopTimeout time.Duration
	// RestoreIPForward makes Stop write back the value net.ipv4.ip_forward
	// had at Start (the bridge plugin sets it to 1). Leave it off when other
	// bridges on the host rely on forwarding.
	RestoreIPForward bool
}

// Paths are the files and directories of an instance, all under Config.Dir.
type Paths struct {
	Config     string // containerd's config.toml
	Root       string // persistent data: content, snapshots, metadata
	State      string // runtime state
	Socket     string // gRPC socket (CRI and containerd API)
	RuncRoot   string // runc's state directory
	CNIConfDir string // the CNI conflist directory
	IPAMDir    string // host-local IPAM leases
	Log        string // containerd's stdout and stderr
}

func pathsFor(dir string) Paths {
	return Paths{
		Config:     filepath.Join(dir, "config.toml"),
		Root:       filepath.Join(dir, "root"),
		State:      filepath.Join(dir, "state"),
		Socket:     filepath.Join(dir, "containerd.sock"),
		RuncRoot:   filepath.Join(dir, "runc"),
		CNIConfDir: filepath.Join(dir, "cni", "net.d"),
		IPAMDir:    filepath.Join(dir, "cni", "ipam"),
		Log:        filepath.Join(dir, "containerd.log"),
	}
}

// withDefaults validates cfg and fills in its defaults.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.Dir == "" {
		return cfg, fmt.Errorf("containerd: Config.Dir is required")
	}
	abs, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return cfg, fmt.Errorf("containerd: resolving %s: %w", cfg.Dir, err)
	}
	cfg.Dir = abs
	if n := len(pathsFor(cfg.Dir).Socket); n > maxUnixSocketPath {
		return cfg, fmt.Errorf("containerd: socket path under %s is %d bytes, longer than %d", cfg.Dir, n, maxUnixSocketPath)
	}
	if _, err := netip.ParsePrefix(cfg.PodCIDR); err != nil {
		return cfg, fmt.Errorf("containerd: Config.PodCIDR: %w", err)
	}
	setDefault(&cfg.BridgeName, DefaultBridgeName)
	if len(cfg.BridgeName) > 15 {
		return cfg, fmt.Errorf("containerd: bridge name %q is longer than 15 bytes", cfg.BridgeName)
	}
	setDefault(&cfg.NetworkName, DefaultNetworkName)
	setDefault(&cfg.CNIBinDir, DefaultCNIBinDir)
	setDefault(&cfg.SandboxImage, DefaultSandboxImage)
	setDefault(&cfg.LogLevel, "info")
	setDefault(&cfg.ContainerdPath, "containerd")
	setDefault(&cfg.RuncPath, "runc")
	if cfg.ReadyTimeout <= 0 {
		cfg.ReadyTimeout = DefaultReadyTimeout
	}
	if cfg.StopTimeout <= 0 {
		cfg.StopTimeout = DefaultStopTimeout
	}
	return cfg, nil
}

func setDefault(s *string, def string) {
	if *s == "" {
		*s = def
	}
}

// tomlString quotes s as a TOML basic string (the same escapes as JSON for
// the characters paths contain).
func tomlString(s string) string { return strconv.Quote(s) }

// renderConfig returns containerd 1.6's config.toml (version 2) for cfg.
// runc is the resolved runc binary path.
func renderConfig(cfg Config, p Paths, runc string) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("# Written by skiff; every path is private to this instance.")
	w("version = 2")
	w("root = %s", tomlString(p.Root))
	w("state = %s", tomlString(p.State))
	w("[grpc]")
	w("  address = %s", tomlString(p.Socket))
	w("[ttrpc]")
	w("  address = %s", tomlString(p.Socket+".ttrpc"))
	w("[metrics]")
	w("  address = \"\"")
	w("[debug]")
	w("  level = %s", tomlString(cfg.LogLevel))
	w("[plugins]")
	w("  [plugins.\"io.containerd.internal.v1.opt\"]")
	w("    path = %s", tomlString(filepath.Join(cfg.Dir, "opt")))
	w("  [plugins.\"io.containerd.grpc.v1.cri\"]")
	w("    sandbox_image = %s", tomlString(cfg.SandboxImage))
	w("    stream_server_address = \"127.0.0.1\"")
	w("    stream_server_port = \"0\"")
	w("    max_container_log_line_size = 16384")
	// Root on some hosts lacks CAP_SYS_RESOURCE and cannot lower
	// oom_score_adj below containerd's own; without this every sandbox
	// fails to start.
	w("    restrict_oom_score_adj = true")
	w("    [plugins.\"io.containerd.grpc.v1.cri\".containerd]")
	w("      snapshotter = \"overlayfs\"")
	w("      default_runtime_name = \"runc\"")
	w("      [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc]")
	w("        runtime_type = \"io.containerd.runc.v2\"")
	w("        [plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.runc.options]")
	w("          BinaryName = %s", tomlString(runc))
	w("          Root = %s", tomlString(p.RuncRoot))
	w("          SystemdCgroup = false")
	w("    [plugins.\"io.containerd.grpc.v1.cri\".cni]")
	w("      bin_dir = %s", tomlString(cfg.CNIBinDir))
	w("      conf_dir = %s", tomlString(p.CNIConfDir))
	w("      max_conf_num = 1")
	w("    [plugins.\"io.containerd.grpc.v1.cri\".registry]")
	w("      config_path = %s", tomlString(filepath.Join(cfg.Dir, "certs.d")))
	return b.String()
}

// CNIConfig describes the CNI network of a node: a bridge with host-local
// IPAM over the pod CIDR, plus portmap for hostPorts.
type CNIConfig struct {
	// NetworkName names the network (the conflist's "name").
	NetworkName string
	// BridgeName is the Linux bridge the plugin creates.
	BridgeName string
	// PodCIDR is the range pods get addresses from; the gateway (the
	// bridge's address) is its first host address.
	PodCIDR string
	// IPAMDir holds host-local's leases.
	IPAMDir string
	// IPMasq masquerades pod traffic leaving the pod CIDR.
	IPMasq bool
}

// RenderCNIConfig returns the conflist JSON for c.
func RenderCNIConfig(c CNIConfig) ([]byte, error) {
	prefix, err := netip.ParsePrefix(c.PodCIDR)
	if err != nil {
		return nil, fmt.Errorf("parsing pod CIDR: %w", err)
	}
	prefix = prefix.Masked()
	gw := prefix.Addr().Next()
	defaultRoute := "0.0.0.0/0"
	if prefix.Addr().Is6() {
		defaultRoute = "::/0"
	}
	type obj = map[string]any
	conf := obj{
		"cniVersion": "1.0.0",
		"name":       c.NetworkName,
		"plugins": []obj{
			{
				"type":        "bridge",
				"bridge":      c.BridgeName,
				"isGateway":   true,
				"ipMasq":      c.IPMasq,
				"hairpinMode": true,
				"ipam": obj{
					"type":    "host-local",
					"ranges":  [][]obj{{{"subnet": prefix.String(), "gateway": gw.String()}}},
					"routes":  []obj{{"dst": defaultRoute}},
					"dataDir": c.IPAMDir,
				},
			},
			{"type": "portmap", "capabilities": obj{"portMappings": true}},
		},
	}
	out, err := json.MarshalIndent(conf, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encoding CNI config: %w", err)
	}
	return append(out, '\n'), nil
}

// writeFileAtomic writes data to path through a temporary file and a
// rename, so a watcher (containerd's CNI conf syncer) never reads half a
// file.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("creating temporary file for %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", tmp.Name(), err)
	}
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return fmt.Errorf("setting mode of %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("closing %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("renaming into %s: %w", path, err)
	}
	return nil
}
