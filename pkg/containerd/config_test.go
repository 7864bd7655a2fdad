package containerd

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestRenderCNIConfig(t *testing.T) {
	b, err := RenderCNIConfig(CNIConfig{NetworkName: "skiff", BridgeName: "skiff0", PodCIDR: "10.244.1.7/24", IPAMDir: "/x/ipam", IPMasq: true})
	if err != nil {
		t.Fatal(err)
	}
	var conf struct {
		Name    string
		Plugins []map[string]any
	}
	if err := json.Unmarshal(b, &conf); err != nil {
		t.Fatal(err)
	}
	if conf.Name != "skiff" || len(conf.Plugins) != 2 {
		t.Fatalf("conf %s", b)
	}
	br, pm := conf.Plugins[0], conf.Plugins[1]
	for k, want := range map[string]any{"type": "bridge", "bridge": "skiff0", "isGateway": true, "ipMasq": true, "hairpinMode": true} {
		if br[k] != want {
			t.Errorf("bridge %s = %v, want %v", k, br[k], want)
		}
	}
	ipam := br["ipam"].(map[string]any)
	r := ipam["ranges"].([]any)[0].([]any)[0].(map[string]any)
	if r["subnet"] != "10.244.1.0/24" || r["gateway"] != "10.244.1.1" || ipam["dataDir"] != "/x/ipam" {
		t.Errorf("ipam %v", ipam)
	}
	if pm["type"] != "portmap" {
		t.Errorf("second plugin %v", pm)
	}
	if _, err := RenderCNIConfig(CNIConfig{PodCIDR: "nonsense"}); err == nil {
		t.Error("bad CIDR accepted")
	}
}

func TestConfigDefaultsAndValidation(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"no dir", Config{PodCIDR: "10.0.0.0/24"}, "Dir is required"},
		{"no cidr", Config{Dir: "/tmp/x"}, "PodCIDR"},
		{"long bridge", Config{Dir: "/tmp/x", PodCIDR: "10.0.0.0/24", BridgeName: "a-very-long-bridge"}, "longer than 15"},
		{"long socket", Config{Dir: "/tmp/" + strings.Repeat("d", 100), PodCIDR: "10.0.0.0/24"}, "socket path"},
		{"ok", Config{Dir: "/tmp/x", PodCIDR: "10.0.0.0/24"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.cfg.withDefaults()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatal(err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("err %v, want it to mention %q", err, tc.wantErr)
			case tc.wantErr == "" && (got.BridgeName != DefaultBridgeName || got.SandboxImage != DefaultSandboxImage || got.CNIBinDir != DefaultCNIBinDir):
				t.Errorf("defaults not applied: %+v", got)
			}
		})
	}
}

func TestRenderConfig(t *testing.T) {
	cfg, err := Config{Dir: "/tmp/x", PodCIDR: "10.0.0.0/24"}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	out := renderConfig(cfg, pathsFor(cfg.Dir), "/usr/sbin/runc")
	for _, want := range []string{
		"version = 2", `root = "/tmp/x/root"`, `state = "/tmp/x/state"`, `address = "/tmp/x/containerd.sock"`,
		"restrict_oom_score_adj = true", `sandbox_image = "registry.k8s.io/pause:3.10"`, `snapshotter = "overlayfs"`,
		"SystemdCgroup = false", `Root = "/tmp/x/runc"`, `bin_dir = "/usr/lib/cni"`, `conf_dir = "/tmp/x/cni/net.d"`, "max_conf_num = 1",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("config lacks %q:\n%s", want, out)
		}
	}
}

func TestHasNFTRules(t *testing.T) {
	empty := "table ip nat {\n\tchain PREROUTING {\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n\t}\n}\n"
	withRule := "table ip nat {\n\tchain POSTROUTING {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n\t\tip saddr 10.0.0.0/24 masquerade\n\t}\n}\n"
	if hasNFTRules(empty) {
		t.Error("empty table reported as holding rules")
	}
	if !hasNFTRules(withRule) {
		t.Error("rule not seen")
	}
}
