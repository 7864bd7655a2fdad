// Package volume materialises the volumes of a pod on the host, as
// upstream's kubelet volume manager does, for a runtime that bind-mounts
// them into containers (criruntime). Each volume lives in
//
//	<pods-dir>/<pod-uid>/volumes/<plugin>/<volume-name>
//
// with upstream's plugin directory names (kubernetes.io~empty-dir,
// kubernetes.io~configmap, ...); hostPath volumes are the host path itself.
//
// Supported: emptyDir (medium Memory is a tmpfs of sizeLimit), configMap,
// secret, downwardAPI and projected (configMap, secret, downwardAPI and
// serviceAccountToken sources) written with WriteAtomic, and hostPath with
// its type checks.
// Secret, downwardAPI and projected volumes are tmpfs mounts like
// upstream's, so secrets never reach the disk. SetUp re-writes the
// configMap, secret, downwardAPI and projected volumes at every call, so
// the kubelet's periodic pod syncs carry updates into the mounted files
// (subPath mounts excepted, as upstream: they pin the file they resolved
// to when the container started). ServiceAccount tokens come from a
// TokenRequest bound to the pod and are renewed by those same syncs once
// 80% of their lifetime has passed (or after 24 hours).
//
// Not supported: persistent volume claims and network or cloud volumes
// (SetUp fails with an error naming the type), the clusterTrustBundle and
// podCertificate projected sources (skipped), fsGroup ownership and
// SELinux labels.
package volume

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"
)

// Plugin directory names under <pods-dir>/<uid>/volumes, as upstream's.
const (
	PluginEmptyDir    = "kubernetes.io~empty-dir"
	PluginConfigMap   = "kubernetes.io~configmap"
	PluginSecret      = "kubernetes.io~secret"
	PluginDownwardAPI = "kubernetes.io~downward-api"
	PluginProjected   = "kubernetes.io~projected"
)

// Config configures a Manager.
type Config struct {
	// PodsDir holds one directory per pod UID; required. It must not be
	// shared with anything else: TearDown removes <PodsDir>/<uid>.
	PodsDir string
	// Client reads the ConfigMaps and Secrets that volumes project and
	// requests ServiceAccount tokens; required.
	Client kubernetes.Interface
	// NodeAllocatable is what a downward API limits.* item reports for a
	// container without that limit (upstream's behaviour).
	NodeAllocatable corev1.ResourceList
	// CacheTTL is how long a ConfigMap or Secret read for a volume is
	// reused before SetUp reads it again, which bounds both the API load
	// of frequent pod syncs and how late an update reaches the files;
	// DefaultCacheTTL when zero. The first set-up of a volume always
	// reads afresh.
	CacheTTL time.Duration
	// Clock times the cache; clock.RealClock{} when nil.
	Clock clock.PassiveClock
}

// DefaultCacheTTL is the default of Config.CacheTTL.
const DefaultCacheTTL = 10 * time.Second

// Manager sets up and tears down pod volumes. It keeps no state besides
// the files under PodsDir, so a restarted kubelet finds its volumes again.
// It is safe for concurrent use for different pods; calls for one pod
// must not overlap (the kubelet serialises them).
type Manager struct {
	podsDir     string               // immutable
	client      kubernetes.Interface // immutable; never nil
	allocatable corev1.ResourceList  // immutable
	ttl         time.Duration        // immutable; positive
	clock       clock.PassiveClock   // immutable; never nil

	mu     sync.Mutex
	cache  map[objectKey]cachedObject // guarded by mu
	tokens map[tokenKey]cachedToken   // guarded by mu
}

// New returns a Manager for cfg.
func New(cfg Config) (*Manager, error) {
	if cfg.PodsDir == "" || cfg.Client == nil {
		return nil, errors.New("volume: Config.PodsDir and Config.Client are required")
	}
	abs, err := filepath.Abs(cfg.PodsDir)
	if err != nil {
		return nil, fmt.Errorf("volume: %w", err)
	}
	if cfg.CacheTTL <= 0 {
		cfg.CacheTTL = DefaultCacheTTL
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	return &Manager{podsDir: abs, client: cfg.Client, allocatable: cfg.NodeAllocatable,
		ttl: cfg.CacheTTL, clock: cfg.Clock, cache: map[objectKey]cachedObject{}, tokens: map[tokenKey]cachedToken{}}, nil
}

// PodDir returns the directory of the pod with uid.
func (m *Manager) PodDir(uid types.UID) string { return filepath.Join(m.podsDir, string(uid)) }

// plugin returns the plugin directory name of v, "" for hostPath, and an
// error for unsupported types.
func plugin(v *corev1.Volume) (string, error) {
	switch {
	case v.EmptyDir != nil:
		return PluginEmptyDir, nil
	case v.ConfigMap != nil:
		return PluginConfigMap, nil
	case v.Secret != nil:
		return PluginSecret, nil
	case v.DownwardAPI != nil:
		return PluginDownwardAPI, nil
	case v.Projected != nil:
		return PluginProjected, nil
	case v.HostPath != nil:
		return "", nil
	}
	return "", fmt.Errorf("volume %q: unsupported volume type", v.Name)
}

// volumeDir returns where volume v of pod lives on the host.
func (m *Manager) volumeDir(pod *corev1.Pod, v *corev1.Volume) (string, error) {
	p, err := plugin(v)
	if err != nil {
		return "", err
	}
	if v.HostPath != nil {
		return filepath.Clean(v.HostPath.Path), nil
	}
	return filepath.Join(m.PodDir(pod.UID), "volumes", p, v.Name), nil
}

// SetUpError is a failure to set up one volume.
type SetUpError struct {
	Volume string
	Err    error
}

func (e *SetUpError) Error() string {
	return fmt.Sprintf("MountVolume.SetUp failed for volume %q : %v", e.Volume, e.Err)
}

func (e *SetUpError) Unwrap() error { return e.Err }

// SetUp creates (or refreshes) every volume of pod and returns one
// *SetUpError per volume that failed, joined. ready reports whether every
// volume exists on the host, so that the containers can start: it stays
// true when only the refresh of a volume set up earlier failed (that
// volume keeps its previous content).
func (m *Manager) SetUp(ctx context.Context, pod *corev1.Pod) (ready bool, err error) {
	ready = true
	var errs []error
	for i := range pod.Spec.Volumes {
		v := &pod.Spec.Volumes[i]
		if err := m.setUpVolume(ctx, pod, v); err != nil {
			errs = append(errs, &SetUpError{Volume: v.Name, Err: err})
			if !m.exists(pod, v) {
				ready = false
			}
		}
	}
	return ready, errors.Join(errs...)
}

// exists reports whether v was set up before: an atomically written
// volume has its ..data link, others their directory.
func (m *Manager) exists(pod *corev1.Pod, v *corev1.Volume) bool {
	dir, err := m.volumeDir(pod, v)
	if err != nil || v.HostPath != nil {
		return false
	}
	if v.EmptyDir == nil {
		dir = filepath.Join(dir, dataDirName)
	}
	_, err = os.Lstat(dir)
	return err == nil
}

func (m *Manager) setUpVolume(ctx context.Context, pod *corev1.Pod, v *corev1.Volume) error {
	dir, err := m.volumeDir(pod, v)
	if err != nil {
		return err
	}
	var payload map[string]FileProjection
	fresh := !m.exists(pod, v)
	switch {
	case v.HostPath != nil:
		return checkHostPath(v.HostPath)
	case v.EmptyDir != nil:
		return setUpEmptyDir(dir, v.EmptyDir)
	case v.ConfigMap != nil:
		payload, err = m.configMapPayload(ctx, pod, v.ConfigMap, fresh)
	case v.Secret != nil:
		if err = ensureTmpfs(dir, nil); err == nil {
			payload, err = m.secretPayload(ctx, pod, v.Secret, fresh)
		}
	case v.DownwardAPI != nil:
		if err = ensureTmpfs(dir, nil); err == nil {
			mode := int32(defaultMode)
			if v.DownwardAPI.DefaultMode != nil {
				mode = *v.DownwardAPI.DefaultMode
			}
			payload = map[string]FileProjection{}
			err = m.downwardAPIPayload(pod, v.DownwardAPI.Items, mode, payload)
		}
	case v.Projected != nil:
		if err = ensureTmpfs(dir, nil); err == nil {
			payload, err = m.projectedPayload(ctx, pod, v.Projected, fresh)
		}
	}
	if err != nil {
		return err
	}
	return WriteAtomic(dir, payload)
}

// setUpEmptyDir creates an emptyDir: a 0777 directory, or a tmpfs limited
// to sizeLimit for medium Memory.
func setUpEmptyDir(dir string, src *corev1.EmptyDirVolumeSource) error {
	switch src.Medium {
	case corev1.StorageMediumDefault:
		if err := os.MkdirAll(dir, 0o777); err != nil {
			return fmt.Errorf("creating %s: %w", dir, err)
		}
		return os.Chmod(dir, 0o777)
	case corev1.StorageMediumMemory:
		var size *int64
		if src.SizeLimit != nil && !src.SizeLimit.IsZero() {
			size = new(src.SizeLimit.Value())
		}
		if err := ensureTmpfs(dir, size); err != nil {
			return err
		}
		return os.Chmod(dir, 0o777)
	}
	return fmt.Errorf("unsupported emptyDir medium %q", src.Medium)
}

// ensureTmpfs makes dir a tmpfs mount point (of size bytes when size is
// set), unless it already is one.
func ensureTmpfs(dir string, size *int64) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	mounted, err := isMountPoint(dir)
	if err != nil || mounted {
		return err
	}
	opts := "mode=0755"
	if size != nil {
		opts += fmt.Sprintf(",size=%d", *size)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, opts); err != nil {
		return fmt.Errorf("mounting tmpfs on %s: %w", dir, err)
	}
	return nil
}

// isMountPoint reports whether dir is on another device than its parent.
// That misses bind mounts of the same file system, which this package
// never makes.
func isMountPoint(dir string) (bool, error) {
	var st, parent syscall.Stat_t
	if err := syscall.Lstat(dir, &st); err != nil {
		return false, fmt.Errorf("stat %s: %w", dir, err)
	}
	if err := syscall.Lstat(filepath.Dir(dir), &parent); err != nil {
		return false, fmt.Errorf("stat %s: %w", filepath.Dir(dir), err)
	}
	return st.Dev != parent.Dev, nil
}

// checkHostPath checks (and for the *OrCreate types creates) what a
// hostPath volume names.
func checkHostPath(src *corev1.HostPathVolumeSource) error {
	p := src.Path
	typ := corev1.HostPathUnset
	if src.Type != nil {
		typ = *src.Type
	}
	if typ == corev1.HostPathUnset {
		return nil
	}
	info, err := os.Stat(p)
	switch {
	case errors.Is(err, fs.ErrNotExist) && typ == corev1.HostPathDirectoryOrCreate:
		return os.MkdirAll(p, 0o755)
	case errors.Is(err, fs.ErrNotExist) && typ == corev1.HostPathFileOrCreate:
		f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			return fmt.Errorf("creating hostPath file %s: %w", p, err)
		}
		return f.Close()
	case err != nil:
		return fmt.Errorf("hostPath type check failed: %s: %w", p, err)
	}
	mode := info.Mode()
	ok := true
	switch typ {
	case corev1.HostPathDirectory, corev1.HostPathDirectoryOrCreate:
		ok = mode.IsDir()
	case corev1.HostPathFile, corev1.HostPathFileOrCreate:
		ok = mode.IsRegular()
	case corev1.HostPathSocket:
		ok = mode&fs.ModeSocket != 0
	case corev1.HostPathCharDev:
		ok = mode&fs.ModeDevice != 0 && mode&fs.ModeCharDevice != 0
	case corev1.HostPathBlockDev:
		ok = mode&fs.ModeDevice != 0 && mode&fs.ModeCharDevice == 0
	default:
		return fmt.Errorf("unknown hostPath type %q", typ)
	}
	if !ok {
		return fmt.Errorf("hostPath type check failed: %s is not a %s", p, typ)
	}
	return nil
}

// TearDown unmounts and removes every volume of the pod with uid (its
// whole pod directory). Removing a pod that has none is not an error.
// Nothing is removed while a mount under the pod directory remains.
func (m *Manager) TearDown(uid types.UID) error {
	m.forgetTokens(uid)
	podDir := m.PodDir(uid)
	plugins, err := os.ReadDir(filepath.Join(podDir, "volumes"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("reading volumes of pod %s: %w", uid, err)
	}
	var errs []error
	for _, p := range plugins {
		vols, err := os.ReadDir(filepath.Join(podDir, "volumes", p.Name()))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, v := range vols {
			dir := filepath.Join(podDir, "volumes", p.Name(), v.Name())
			mounted, err := isMountPoint(dir)
			if err == nil && mounted {
				err = syscall.Unmount(dir, syscall.MNT_DETACH)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("unmounting %s: %w", dir, err))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if err := os.RemoveAll(podDir); err != nil {
		return fmt.Errorf("removing %s: %w", podDir, err)
	}
	return nil
}

// Mount is where a container's volume mount comes from on the host.
type Mount struct {
	// HostPath is the file or directory to bind-mount.
	HostPath string
	// ReadOnly is set for read-only mounts and for the configMap,
	// secret, downwardAPI and projected volumes, which upstream always
	// mounts read-only.
	ReadOnly bool
}

// HostMount resolves vm, a volume mount of a container of pod (with any
// subPathExpr already expanded into SubPath), to its host source. A
// subPath must be relative without "..", must not leave the volume through
// symlinks, and is created as a directory if missing, like upstream.
func (m *Manager) HostMount(pod *corev1.Pod, vm corev1.VolumeMount) (Mount, error) {
	var v *corev1.Volume
	for i := range pod.Spec.Volumes {
		if pod.Spec.Volumes[i].Name == vm.Name {
			v = &pod.Spec.Volumes[i]
		}
	}
	if v == nil {
		return Mount{}, fmt.Errorf("volume mount %q: no such volume", vm.Name)
	}
	dir, err := m.volumeDir(pod, v)
	if err != nil {
		return Mount{}, err
	}
	out := Mount{HostPath: dir, ReadOnly: vm.ReadOnly || v.ConfigMap != nil || v.Secret != nil || v.DownwardAPI != nil || v.Projected != nil}
	if vm.SubPath == "" {
		return out, nil
	}
	out.HostPath, err = subPath(dir, vm.SubPath, !out.ReadOnly)
	if err != nil {
		return Mount{}, fmt.Errorf("volume mount %q: %w", vm.Name, err)
	}
	return out, nil
}

// subPath resolves sub inside dir, following symlinks, and refuses any
// result outside dir. A missing sub is created (0755) when create is set.
func subPath(dir, sub string, create bool) (string, error) {
	if filepath.IsAbs(sub) || strings.Contains("/"+filepath.ToSlash(sub)+"/", "/../") {
		return "", fmt.Errorf("invalid subPath %q: must be relative and not contain '..'", sub)
	}
	p := filepath.Join(dir, sub)
	if _, err := os.Lstat(p); errors.Is(err, fs.ErrNotExist) && create {
		if err := os.MkdirAll(p, 0o755); err != nil {
			return "", fmt.Errorf("creating subPath %q: %w", sub, err)
		}
	}
	root, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return "", fmt.Errorf("resolving volume directory: %w", err)
	}
	resolved, err := filepath.EvalSymlinks(p)
	if err != nil {
		return "", fmt.Errorf("resolving subPath %q: %w", sub, err)
	}
	if resolved != root && !strings.HasPrefix(resolved, root+string(filepath.Separator)) {
		return "", fmt.Errorf("subPath %q leaves the volume", sub)
	}
	return resolved, nil
}
