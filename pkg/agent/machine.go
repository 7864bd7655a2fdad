package agent

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	goruntime "runtime"
	"strconv"
	"strings"
	"syscall"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// machineCapacity is the node's capacity: the CPUs this process may use,
// MemTotal from /proc/meminfo, maxPods, and the size of the file system
// holding dataDir as ephemeral-storage.
func machineCapacity(dataDir string, maxPods int) (corev1.ResourceList, error) {
	mem, err := memTotal("/proc/meminfo")
	if err != nil {
		return nil, err
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(dataDir, &st); err != nil {
		return nil, fmt.Errorf("agent: statfs %s: %w", dataDir, err)
	}
	return corev1.ResourceList{
		corev1.ResourceCPU:              *resource.NewQuantity(int64(goruntime.NumCPU()), resource.DecimalSI),
		corev1.ResourceMemory:           *resource.NewQuantity(mem, resource.BinarySI),
		corev1.ResourcePods:             *resource.NewQuantity(int64(maxPods), resource.DecimalSI),
		corev1.ResourceEphemeralStorage: *resource.NewQuantity(int64(st.Blocks)*int64(st.Bsize), resource.BinarySI),
	}, nil
}

// memTotal returns MemTotal of a meminfo file in bytes.
func memTotal(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("agent: reading %s: %w", path, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			f := strings.Fields(rest)
			if len(f) == 0 {
				break
			}
			kb, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("agent: parsing %q: %w", line, err)
			}
			return kb * 1024, nil
		}
	}
	return 0, fmt.Errorf("agent: no MemTotal in %s", path)
}

// nodeAddresses are the node's InternalIP (the first non-loopback IPv4
// address of the default route's interface, 127.0.0.1 without one) and
// its Hostname.
func nodeAddresses(nodeName string) []corev1.NodeAddress {
	return []corev1.NodeAddress{
		{Type: corev1.NodeInternalIP, Address: PrimaryIP()},
		{Type: corev1.NodeHostName, Address: nodeName},
	}
}

// PrimaryIP returns this machine's address for other cluster members: the
// first non-loopback IPv4 address of the default route's interface, or
// 127.0.0.1 when there is none (a machine without a network is a cluster
// of one). It is the node's InternalIP and the API server's default
// advertise address.
func PrimaryIP() string {
	if iface, err := defaultRouteInterface("/proc/net/route"); err == nil {
		if a := firstIPv4(iface); a != "" {
			return a
		}
	}
	return "127.0.0.1"
}

// defaultRouteInterface returns the interface of the IPv4 default route
// with the lowest metric, from a /proc/net/route table.
func defaultRouteInterface(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("agent: reading routes: %w", err)
	}
	defer f.Close()
	best, bestMetric := "", -1
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// Iface Destination Gateway Flags RefCnt Use Metric Mask ...
		fields := strings.Fields(sc.Text())
		if len(fields) < 8 || fields[1] != "00000000" || fields[7] != "00000000" {
			continue
		}
		metric, err := strconv.Atoi(fields[6])
		if err != nil {
			continue
		}
		if bestMetric < 0 || metric < bestMetric {
			best, bestMetric = fields[0], metric
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("agent: reading routes: %w", err)
	}
	if best == "" {
		return "", errors.New("agent: no default route")
	}
	return best, nil
}

// firstIPv4 returns the first non-loopback IPv4 address of the named
// interface, or "".
func firstIPv4(name string) string {
	iface, err := net.InterfaceByName(name)
	if err != nil {
		return ""
	}
	addrs, err := iface.Addrs()
	if err != nil {
		return ""
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() {
			return n.IP.String()
		}
	}
	return ""
}

// systemInfo is what the node reports about the machine: IDs, kernel
// release and OS image. The kubelet adds its own and the runtime's
// versions.
func systemInfo() corev1.NodeSystemInfo {
	info := corev1.NodeSystemInfo{
		MachineID:  readTrimmed("/etc/machine-id"),
		SystemUUID: strings.ToLower(readTrimmed("/sys/class/dmi/id/product_uuid")),
		BootID:     readTrimmed("/proc/sys/kernel/random/boot_id"),
		OSImage:    osImage("/etc/os-release"),
	}
	var u syscall.Utsname
	if err := syscall.Uname(&u); err == nil {
		info.KernelVersion = utsString(u.Release[:])
	}
	if info.SystemUUID == "" {
		info.SystemUUID = info.MachineID
	}
	return info
}

func readTrimmed(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// utsString converts a NUL-terminated utsname field.
func utsString(field []int8) string {
	b := make([]byte, 0, len(field))
	for _, c := range field {
		if c == 0 {
			break
		}
		b = append(b, byte(c))
	}
	return string(b)
}

// osImage returns PRETTY_NAME from an os-release file ("Debian GNU/Linux
// 12 (bookworm)"), or "Unknown" as upstream reports it.
func osImage(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "Unknown"
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		if v, ok := bytes.CutPrefix(line, []byte("PRETTY_NAME=")); ok {
			s := string(bytes.TrimSpace(v))
			if u, err := strconv.Unquote(s); err == nil {
				return u
			}
			return strings.Trim(s, `'"`)
		}
	}
	return "Unknown"
}
