package kubelet

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
)

// ReasonCreateContainerConfigError is the waiting reason of a container
// whose configuration (here: its environment) cannot be built, as upstream
// spells it.
const ReasonCreateContainerConfigError = "CreateContainerConfigError"

// envResolver turns the ConfigMap and Secret references of a pod's
// environment (env[].valueFrom.configMapKeyRef/secretKeyRef and envFrom)
// into literal values before the pod reaches the Runtime, so that every
// runtime sees only literals and the downward API.
//
// A container's environment is resolved once, when all its references
// resolve, and kept for the life of the pod UID: upstream resolves at
// container start, and a re-read value that changed would alter the
// container's spec hash and make the runtime restart a healthy container.
// The price is that a restarted container sees the values of its first
// start. Failed resolutions are retried at every sync, so a ConfigMap
// created after the pod is picked up.
type envResolver struct {
	client kubernetes.Interface // immutable; never nil
	// services lists the Services whose variables every container gets
	// (see serviceEnv), servicesSynced tells whether its cache was filled;
	// both immutable, nil when the kubelet gives no service variables.
	services       corelisters.ServiceLister
	servicesSynced func() bool

	mu sync.Mutex
	// resolved maps a pod UID to the resolved env of each of its
	// containers that had references; guarded by mu.
	resolved map[types.UID]map[string][]corev1.EnvVar
}

func newEnvResolver(client kubernetes.Interface, services corelisters.ServiceLister, servicesSynced func() bool) *envResolver {
	return &envResolver{client: client, services: services, servicesSynced: servicesSynced,
		resolved: map[types.UID]map[string][]corev1.EnvVar{}}
}

// needsResolution reports whether c's environment refers to a ConfigMap or
// a Secret.
func needsResolution(c *corev1.Container) bool {
	if len(c.EnvFrom) > 0 {
		return true
	}
	for _, e := range c.Env {
		if e.ValueFrom != nil && (e.ValueFrom.ConfigMapKeyRef != nil || e.ValueFrom.SecretKeyRef != nil) {
			return true
		}
	}
	return false
}

// resolve returns pod itself when no container refers to a ConfigMap or
// Secret; otherwise a copy whose resolvable containers carry literal env
// (envFrom expanded into env) and whose unresolvable ones are left as they
// are, with the reason in errs (keyed by container name). pod is never
// modified.
func (r *envResolver) resolve(ctx context.Context, pod *corev1.Pod) (*corev1.Pod, map[string]error) {
	var out *corev1.Pod
	var errs map[string]error
	// The service variables are read at most once per call, and only for
	// a container whose environment is not cached yet.
	var svcEnv map[string]string
	var svcErr error
	svcRead := false
	serviceVars := func() (map[string]string, error) {
		if !svcRead {
			svcRead = true
			if !r.servicesSynced() {
				svcErr = errServicesNotSynced
			} else {
				svcEnv, svcErr = serviceEnv(r.services, pod)
			}
		}
		return svcEnv, svcErr
	}
	if r.services == nil {
		serviceVars = func() (map[string]string, error) { return nil, nil }
	}
	for _, list := range []*[]corev1.Container{&pod.Spec.InitContainers, &pod.Spec.Containers} {
		for i := range *list {
			c := &(*list)[i]
			if !needsResolution(c) && r.services == nil {
				continue
			}
			env, err := r.containerEnv(ctx, pod, c, serviceVars)
			if err != nil {
				if errs == nil {
					errs = map[string]error{}
				}
				errs[c.Name] = err
				continue
			}
			if out == nil {
				out = pod.DeepCopy()
			}
			var target *corev1.Container
			if list == &pod.Spec.InitContainers {
				target = &out.Spec.InitContainers[i]
			} else {
				target = &out.Spec.Containers[i]
			}
			target.Env, target.EnvFrom = env, nil
		}
	}
	if out == nil {
		return pod, errs
	}
	return out, errs
}

// containerEnv returns c's resolved env from the cache, or resolves it and
// caches the result.
func (r *envResolver) containerEnv(ctx context.Context, pod *corev1.Pod, c *corev1.Container, serviceVars func() (map[string]string, error)) ([]corev1.EnvVar, error) {
	r.mu.Lock()
	env, ok := r.resolved[pod.UID][c.Name]
	r.mu.Unlock()
	if ok {
		return env, nil
	}
	svcEnv, err := serviceVars()
	if err != nil {
		return nil, err
	}
	env, err = r.resolveContainer(ctx, pod.Namespace, c, svcEnv)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.resolved[pod.UID] == nil {
		r.resolved[pod.UID] = map[string][]corev1.EnvVar{}
	}
	r.resolved[pod.UID][c.Name] = env
	return env, nil
}

// forget drops what was resolved for the pod with uid.
func (r *envResolver) forget(uid types.UID) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.resolved, uid)
}

// escapeDollars protects a resolved value from the $(VAR) expansion the
// runtime applies to literal values: upstream expands only values written
// in the pod spec, never those read from a ConfigMap or Secret.
func escapeDollars(s string) string { return strings.ReplaceAll(s, "$", "$$") }

// resolveContainer follows upstream's makeEnvironmentVariables: envFrom
// sources first (in order, later sources winning, keys that are not valid
// variable names skipped), then env, whose entries win over envFrom.
// Optional sources and keys that are missing are skipped; a missing
// required one is an error with upstream's message. The service variables
// svcEnv come before all of them and lose to any of them, as upstream's.
func (r *envResolver) resolveContainer(ctx context.Context, ns string, c *corev1.Container, svcEnv map[string]string) ([]corev1.EnvVar, error) {
	cms := map[string]*corev1.ConfigMap{}
	secrets := map[string]*corev1.Secret{}
	getCM := func(name string, optional bool) (*corev1.ConfigMap, error) {
		if cm, ok := cms[name]; ok {
			return cm, nil
		}
		cm, err := r.client.CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err) && optional:
			cm = nil
		case apierrors.IsNotFound(err):
			return nil, &refNotFoundError{kind: "configmap", name: name, err: err}
		case err != nil:
			return nil, fmt.Errorf("getting configmap %s/%s: %w", ns, name, err)
		}
		cms[name] = cm
		return cm, nil
	}
	getSecret := func(name string, optional bool) (*corev1.Secret, error) {
		if s, ok := secrets[name]; ok {
			return s, nil
		}
		s, err := r.client.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err) && optional:
			s = nil
		case apierrors.IsNotFound(err):
			return nil, &refNotFoundError{kind: "secret", name: name, err: err}
		case err != nil:
			return nil, fmt.Errorf("getting secret %s/%s: %w", ns, name, err)
		}
		secrets[name] = s
		return s, nil
	}

	fromSources := make(map[string]string, len(svcEnv))
	for k, v := range svcEnv {
		fromSources[k] = v
	}
	for _, src := range c.EnvFrom {
		switch {
		case src.ConfigMapRef != nil:
			cm, err := getCM(src.ConfigMapRef.Name, optional(src.ConfigMapRef.Optional))
			if err != nil {
				return nil, err
			}
			if cm != nil {
				for k, v := range cm.Data {
					addEnvFrom(fromSources, src.Prefix+k, v)
				}
			}
		case src.SecretRef != nil:
			s, err := getSecret(src.SecretRef.Name, optional(src.SecretRef.Optional))
			if err != nil {
				return nil, err
			}
			if s != nil {
				for k, v := range s.Data {
					addEnvFrom(fromSources, src.Prefix+k, string(v))
				}
			}
		}
	}

	var env []corev1.EnvVar
	overridden := map[string]bool{}
	for _, e := range c.Env {
		overridden[e.Name] = true
		switch {
		case e.ValueFrom != nil && e.ValueFrom.ConfigMapKeyRef != nil:
			ref := e.ValueFrom.ConfigMapKeyRef
			cm, err := getCM(ref.Name, optional(ref.Optional))
			if err != nil {
				return nil, err
			}
			if cm == nil {
				continue
			}
			v, ok := cm.Data[ref.Key]
			if !ok {
				if optional(ref.Optional) {
					continue
				}
				return nil, fmt.Errorf("couldn't find key %s in ConfigMap %s/%s", ref.Key, ns, ref.Name)
			}
			env = append(env, corev1.EnvVar{Name: e.Name, Value: escapeDollars(v)})
		case e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil:
			ref := e.ValueFrom.SecretKeyRef
			s, err := getSecret(ref.Name, optional(ref.Optional))
			if err != nil {
				return nil, err
			}
			if s == nil {
				continue
			}
			v, ok := s.Data[ref.Key]
			if !ok {
				if optional(ref.Optional) {
					continue
				}
				return nil, fmt.Errorf("couldn't find key %s in Secret %s/%s", ref.Key, ns, ref.Name)
			}
			env = append(env, corev1.EnvVar{Name: e.Name, Value: escapeDollars(string(v))})
		default:
			env = append(env, e)
		}
	}
	// The envFrom variables go first, in name order (upstream's order is
	// a map's), so $(VAR) in env can refer to them; names env redefines
	// are left out, since a duplicate would reach the process twice.
	names := make([]string, 0, len(fromSources))
	for k := range fromSources {
		if !overridden[k] {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	out := make([]corev1.EnvVar, 0, len(names)+len(env))
	for _, k := range names {
		out = append(out, corev1.EnvVar{Name: k, Value: escapeDollars(fromSources[k])})
	}
	return append(out, env...), nil
}

// addEnvFrom adds an envFrom variable unless its name is not a valid
// environment variable name (upstream skips those too).
func addEnvFrom(vars map[string]string, name, value string) {
	if len(validation.IsEnvVarName(name)) == 0 {
		vars[name] = value
	}
}

// refNotFoundError is a missing required ConfigMap or Secret, worded as
// upstream's kubelet reports it (`configmap "app" not found`).
type refNotFoundError struct {
	kind, name string
	err        error // the API server's NotFound
}

func (e *refNotFoundError) Error() string { return fmt.Sprintf("%s %q not found", e.kind, e.name) }
func (e *refNotFoundError) Unwrap() error { return e.err }

func optional(b *bool) bool { return b != nil && *b }

// explainEnvErrors replaces the runtime's account of containers whose
// environment could not be resolved (it was handed the unresolved
// references, which it rejects as CreateContainerConfigError) with the
// actual reason, as upstream reports it: the waiting message and the
// "Error: ..." of the Failed event.
func explainEnvErrors(rs *PodRuntimeStatus, errs map[string]error) {
	if len(errs) == 0 {
		return
	}
	for _, list := range [][]ContainerStatus{rs.InitContainers, rs.Containers} {
		for i := range list {
			err, ok := errs[list[i].Name]
			if w := list[i].State.Waiting; ok && w != nil && w.Reason == ReasonCreateContainerConfigError {
				w.Message = err.Error()
			}
		}
	}
	for i := range rs.Events {
		e := &rs.Events[i]
		for name, err := range errs {
			if e.Reason == "Failed" && (e.FieldPath == ContainerFieldPath(false, name) || e.FieldPath == ContainerFieldPath(true, name)) {
				e.Message = "Error: " + err.Error()
			}
		}
	}
}
