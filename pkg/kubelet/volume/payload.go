package volume

import (
	"context"
	"fmt"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// defaultMode is the mode of projected files when the volume does not say
// (upstream's ConfigMapVolumeSourceDefaultMode and friends).
const defaultMode = 0o644

// fileMode returns *mode, or def when mode is nil.
func fileMode(mode *int32, def int32) os.FileMode {
	if mode != nil {
		return os.FileMode(*mode) & os.ModePerm
	}
	return os.FileMode(def) & os.ModePerm
}

// keysToPayload maps data (a ConfigMap's or Secret's keys) to files:
// every key under its own name when items is empty, otherwise the listed
// keys under their paths. A listed key that is missing is an error unless
// optional. kind and name only make the errors readable.
func keysToPayload(kind, name string, data map[string][]byte, items []corev1.KeyToPath, mode int32, optional bool, out map[string]FileProjection) error {
	if len(items) == 0 {
		for k, v := range data {
			out[k] = FileProjection{Data: v, Mode: fileMode(nil, mode)}
		}
		return nil
	}
	for _, it := range items {
		v, ok := data[it.Key]
		if !ok {
			if optional {
				continue
			}
			return fmt.Errorf("configuration error: %s %q has no key %q", kind, name, it.Key)
		}
		out[it.Path] = FileProjection{Data: v, Mode: fileMode(it.Mode, mode)}
	}
	return nil
}

// configMapData reads the ConfigMap name of ns: its data and binaryData,
// or nil (without error) when it does not exist and optional is set.
func (m *Manager) configMapData(ctx context.Context, ns, name string, optional, fresh bool) (map[string][]byte, error) {
	found, data, err := m.cached(objectKey{"configmap", ns, name}, fresh, func() (map[string][]byte, error) {
		cm, err := m.client.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil, err
		}
		data := make(map[string][]byte, len(cm.Data)+len(cm.BinaryData))
		for k, v := range cm.Data {
			data[k] = []byte(v)
		}
		for k, v := range cm.BinaryData {
			data[k] = v
		}
		return data, nil
	})
	switch {
	case err != nil:
		return nil, fmt.Errorf("configmap %q: %w", name, err)
	case !found && !optional:
		return nil, fmt.Errorf("configmap %q not found", name)
	}
	return data, nil
}

// secretData reads the Secret name of ns, or nil (without error) when it
// does not exist and optional is set.
func (m *Manager) secretData(ctx context.Context, ns, name string, optional, fresh bool) (map[string][]byte, error) {
	found, data, err := m.cached(objectKey{"secret", ns, name}, fresh, func() (map[string][]byte, error) {
		s, err := m.client.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil, err
		}
		return s.Data, nil
	})
	switch {
	case err != nil:
		return nil, fmt.Errorf("secret %q: %w", name, err)
	case !found && !optional:
		return nil, fmt.Errorf("secret %q not found", name)
	}
	return data, nil
}

// objectKey names a ConfigMap or Secret in the cache.
type objectKey struct{ kind, namespace, name string }

// cachedObject is the data of a ConfigMap or Secret as last read.
type cachedObject struct {
	found   bool
	data    map[string][]byte // never modified
	fetched time.Time
}

// cached returns the data of the object key, from the cache when it was
// read less than the cache TTL ago and fresh is not set, otherwise from
// get (whose NotFound error means found is false). Expired entries are
// dropped whenever an object is read.
func (m *Manager) cached(key objectKey, fresh bool, get func() (map[string][]byte, error)) (found bool, data map[string][]byte, err error) {
	now := m.clock.Now()
	m.mu.Lock()
	c, ok := m.cache[key]
	m.mu.Unlock()
	if ok && !fresh && now.Sub(c.fetched) < m.ttl {
		return c.found, c.data, nil
	}
	data, err = get()
	switch {
	case apierrors.IsNotFound(err):
		c = cachedObject{fetched: now}
	case err != nil:
		return false, nil, err
	default:
		c = cachedObject{found: true, data: data, fetched: now}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, e := range m.cache {
		if now.Sub(e.fetched) >= m.ttl {
			delete(m.cache, k)
		}
	}
	m.cache[key] = c
	return c.found, c.data, nil
}

// configMapPayload is the content of a configMap volume.
func (m *Manager) configMapPayload(ctx context.Context, pod *corev1.Pod, src *corev1.ConfigMapVolumeSource, fresh bool) (map[string]FileProjection, error) {
	optional := src.Optional != nil && *src.Optional
	data, err := m.configMapData(ctx, pod.Namespace, src.Name, optional, fresh)
	if err != nil {
		return nil, err
	}
	out := map[string]FileProjection{}
	mode := int32(defaultMode)
	if src.DefaultMode != nil {
		mode = *src.DefaultMode
	}
	return out, keysToPayload("configmap", src.Name, data, src.Items, mode, optional, out)
}

// secretPayload is the content of a secret volume.
func (m *Manager) secretPayload(ctx context.Context, pod *corev1.Pod, src *corev1.SecretVolumeSource, fresh bool) (map[string]FileProjection, error) {
	optional := src.Optional != nil && *src.Optional
	data, err := m.secretData(ctx, pod.Namespace, src.SecretName, optional, fresh)
	if err != nil {
		return nil, err
	}
	out := map[string]FileProjection{}
	mode := int32(defaultMode)
	if src.DefaultMode != nil {
		mode = *src.DefaultMode
	}
	return out, keysToPayload("secret", src.SecretName, data, src.Items, mode, optional, out)
}

// downwardAPIPayload adds the files of a downwardAPI volume (or projected
// source) to out.
func (m *Manager) downwardAPIPayload(pod *corev1.Pod, items []corev1.DownwardAPIVolumeFile, mode int32, out map[string]FileProjection) error {
	for _, it := range items {
		var v string
		var err error
		switch {
		case it.FieldRef != nil:
			v, err = fieldValue(pod, it.FieldRef.FieldPath)
		case it.ResourceFieldRef != nil:
			v, err = m.resourceValue(pod, it.ResourceFieldRef)
		default:
			err = fmt.Errorf("downward API item %q selects nothing", it.Path)
		}
		if err != nil {
			return err
		}
		out[it.Path] = FileProjection{Data: []byte(v), Mode: fileMode(it.Mode, mode)}
	}
	return nil
}

// projectedPayload is the content of a projected volume. Sources of kinds
// other than configMap, secret, downwardAPI and serviceAccountToken
// (clusterTrustBundle, podCertificate) are skipped: Skiff's kubelet does
// not fetch bundles or certificates yet.
func (m *Manager) projectedPayload(ctx context.Context, pod *corev1.Pod, src *corev1.ProjectedVolumeSource, fresh bool) (map[string]FileProjection, error) {
	mode := int32(defaultMode)
	if src.DefaultMode != nil {
		mode = *src.DefaultMode
	}
	out := map[string]FileProjection{}
	for _, s := range src.Sources {
		switch {
		case s.ConfigMap != nil:
			optional := s.ConfigMap.Optional != nil && *s.ConfigMap.Optional
			data, err := m.configMapData(ctx, pod.Namespace, s.ConfigMap.Name, optional, fresh)
			if err != nil {
				return nil, err
			}
			if err := keysToPayload("configmap", s.ConfigMap.Name, data, s.ConfigMap.Items, mode, optional, out); err != nil {
				return nil, err
			}
		case s.Secret != nil:
			optional := s.Secret.Optional != nil && *s.Secret.Optional
			data, err := m.secretData(ctx, pod.Namespace, s.Secret.Name, optional, fresh)
			if err != nil {
				return nil, err
			}
			if err := keysToPayload("secret", s.Secret.Name, data, s.Secret.Items, mode, optional, out); err != nil {
				return nil, err
			}
		case s.DownwardAPI != nil:
			if err := m.downwardAPIPayload(pod, s.DownwardAPI.Items, mode, out); err != nil {
				return nil, err
			}
		case s.ServiceAccountToken != nil:
			token, err := m.serviceAccountToken(ctx, pod, s.ServiceAccountToken)
			if err != nil {
				return nil, err
			}
			out[s.ServiceAccountToken.Path] = FileProjection{Data: token, Mode: fileMode(nil, mode)}
		}
	}
	return out, nil
}

// fieldValue is the downward API's value of a metadata field path.
// Labels and annotations are written one `key="value"` line each, sorted,
// values quoted like Go strings (upstream's FormatMap).
func fieldValue(pod *corev1.Pod, path string) (string, error) {
	switch path {
	case "metadata.name":
		return pod.Name, nil
	case "metadata.namespace":
		return pod.Namespace, nil
	case "metadata.uid":
		return string(pod.UID), nil
	case "metadata.labels":
		return formatMap(pod.Labels), nil
	case "metadata.annotations":
		return formatMap(pod.Annotations), nil
	}
	for prefix, m := range map[string]map[string]string{"metadata.labels": pod.Labels, "metadata.annotations": pod.Annotations} {
		if strings.HasPrefix(path, prefix+"['") && strings.HasSuffix(path, "']") {
			return m[path[len(prefix)+2:len(path)-2]], nil
		}
	}
	return "", fmt.Errorf("unsupported downward API field path %q", path)
}

func formatMap(m map[string]string) string {
	lines := make([]string, 0, len(m))
	for k, v := range m {
		lines = append(lines, k+"="+strconv.Quote(v))
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// resourceValue is the downward API's value of a container resource: the
// limit (node allocatable when unset) or request, divided by the divisor
// (1 by default) and rounded up, as upstream's ExtractContainerResourceValue.
func (m *Manager) resourceValue(pod *corev1.Pod, ref *corev1.ResourceFieldSelector) (string, error) {
	var c *corev1.Container
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == ref.ContainerName {
			c = &pod.Spec.Containers[i]
		}
	}
	if c == nil {
		return "", fmt.Errorf("resource field %s: container %q not found", ref.Resource, ref.ContainerName)
	}
	kind, name, ok := strings.Cut(ref.Resource, ".")
	if !ok || (kind != "limits" && kind != "requests") {
		return "", fmt.Errorf("unsupported resource field %q", ref.Resource)
	}
	rn := corev1.ResourceName(name)
	var q resource.Quantity
	if kind == "limits" {
		q, ok = c.Resources.Limits[rn]
		if !ok {
			q = m.allocatable[rn]
		}
	} else {
		q = c.Resources.Requests[rn]
	}
	divisor := ref.Divisor
	if divisor.IsZero() {
		divisor = *resource.NewQuantity(1, resource.DecimalSI)
	}
	if rn == corev1.ResourceCPU {
		return strconv.FormatInt(int64(math.Ceil(float64(q.MilliValue())/float64(divisor.MilliValue()))), 10), nil
	}
	return strconv.FormatInt(int64(math.Ceil(float64(q.Value())/float64(divisor.Value()))), 10), nil
}
