package criruntime

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/utils/clock"
)

// Image handling follows upstream's image manager
// (pkg/kubelet/images): the pull policy decides whether to look for the
// image or pull it; a failed pull puts the pod's image in an exponential
// back-off (10 s doubling to 5 min) during which the container waits in
// ImagePullBackOff; credentials come from the pod's imagePullSecrets
// (keyring.go).
//
// Like upstream with KubeletEnsureSecretPulledImages (on by default since
// 1.35), an image this runtime pulled with credentials is only reused
// without a pull by pods that present one of those credentials; other
// pods pull it again, with their own credentials, so a present image
// never lets a pod bypass the registry's authorization. Images the
// runtime did not pull (imported, preloaded) are free for every pod, like
// upstream's default NeverVerifyPreloadedImages policy. The records are
// kept in memory only: after a restart, every present image counts as
// preloaded (upstream keeps them on disk).

// Waiting and event reasons of image handling, as upstream spells them.
const (
	reasonImageInspectError = "ImageInspectError"
	reasonInvalidImageName  = "InvalidImageName"

	eventInspectFailed        = "InspectFailed"
	eventFailedToRetrieveAuth = "FailedToRetrieveImagePullSecret"
)

// pullState is the runtime's image-pull bookkeeping. Safe for concurrent
// use.
type pullState struct {
	backoff *backoff // keyed "<pod uid>/image/<image>"

	mu sync.Mutex
	// lastErr holds, per back-off key, the reason and message of the
	// last failed pull, shown while the image is in back-off; guarded by
	// mu.
	lastErr map[string]string
	// pulledWith maps the ID of each image this runtime pulled with
	// credentials to the hashes of the credentials that pulled it; an
	// image pulled anonymously has no entry; guarded by mu.
	pulledWith map[string]map[string]bool
}

func newPullState(c clock.PassiveClock) *pullState {
	return &pullState{
		backoff:    newBackoff(c, InitialBackoff, MaxBackoff),
		lastErr:    map[string]string{},
		pulledWith: map[string]map[string]bool{},
	}
}

// forget drops the back-off and errors of the pod with uid.
func (p *pullState) forget(uid types.UID) {
	p.backoff.forget(string(uid))
	p.mu.Lock()
	defer p.mu.Unlock()
	for k := range p.lastErr {
		if strings.HasPrefix(k, string(uid)+"/") {
			delete(p.lastErr, k)
		}
	}
}

// recordPull notes that imageID was pulled with cred (nil: anonymously,
// which makes it free for every pod).
func (p *pullState) recordPull(imageID string, cred *credential) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if cred == nil {
		delete(p.pulledWith, imageID)
		return
	}
	if p.pulledWith[imageID] == nil {
		p.pulledWith[imageID] = map[string]bool{}
	}
	p.pulledWith[imageID][cred.hash] = true
}

// needsCredentials reports whether imageID was pulled with credentials,
// and if so, whether one of creds is among them.
func (p *pullState) needsCredentials(imageID string, creds []credential) (needed, have bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	hashes, ok := p.pulledWith[imageID]
	if !ok {
		return false, false
	}
	for _, c := range creds {
		if hashes[c.hash] {
			return true, true
		}
	}
	return true, false
}

// pullCredentials reads a pod's pull secrets at most once per sync, and
// only when a pull or an access check needs them.
type pullCredentials struct {
	r    *Runtime
	s    *syncState
	ring *keyring
	err  error
	done bool
}

// lookup returns the credentials of the pod's secrets that apply to the
// normalized repository repo.
func (pc *pullCredentials) lookup(ctx context.Context, repo string) ([]credential, error) {
	if !pc.done {
		pc.done = true
		pc.ring, pc.err = pc.r.podKeyring(ctx, pc.s)
	}
	if pc.err != nil {
		return nil, pc.err
	}
	return pc.ring.lookup(repo), nil
}

// podKeyring builds the keyring of the pod's imagePullSecrets. Secrets
// that cannot be read are left out with a FailedToRetrieveImagePullSecret
// event, like upstream.
func (r *Runtime) podKeyring(ctx context.Context, s *syncState) (*keyring, error) {
	pod := s.pod
	if r.cfg.Secrets == nil || len(pod.Spec.ImagePullSecrets) == 0 {
		return nil, nil
	}
	var secrets []*corev1.Secret
	var failed []string
	for _, ref := range pod.Spec.ImagePullSecrets {
		if ref.Name == "" {
			continue
		}
		secret, err := r.cfg.Secrets(ctx, pod.Namespace, ref.Name)
		if err != nil {
			failed = append(failed, ref.Name)
			continue
		}
		secrets = append(secrets, secret)
	}
	if len(failed) > 0 {
		s.event(corev1.EventTypeWarning, eventFailedToRetrieveAuth, "",
			"Unable to retrieve some image pull secrets (%s); attempting to pull the image may not succeed.", strings.Join(failed, ", "))
	}
	return keyringFromSecrets(secrets)
}

// pullPolicy is c's pull policy; the API server defaults it, and an empty
// one gets the same default here (Always for ":latest" or no tag).
func pullPolicy(c *corev1.Container) corev1.PullPolicy {
	if c.ImagePullPolicy != "" {
		return c.ImagePullPolicy
	}
	if strings.Contains(c.Image, "@") {
		return corev1.PullIfNotPresent
	}
	last := c.Image[strings.LastIndexByte(c.Image, '/')+1:]
	if _, tag, ok := strings.Cut(last, ":"); !ok || tag == "latest" {
		return corev1.PullAlways
	}
	return corev1.PullIfNotPresent
}

// ensureImage makes c's image present as its pull policy says and returns
// its image ID, or a waiting reason and message when it is not available.
// It records upstream's events: Pulling, Pulled, Failed, BackOff,
// ErrImageNeverPull.
func (r *Runtime) ensureImage(ctx context.Context, s *syncState, c *corev1.Container, fp string) (ref, reason, msg string) {
	// Every failure is also reported as "Error: <reason>", which is what
	// upstream's container start records after the image manager's own
	// event.
	fail := func(reason, msg string) (string, string, string) {
		s.event(corev1.EventTypeWarning, eventFailed, fp, "Error: %s", reason)
		return "", reason, msg
	}
	repo, image, err := normalizeImage(c.Image)
	if err != nil {
		msg := fmt.Sprintf("Failed to apply default image tag %q: %v", c.Image, err)
		s.event(corev1.EventTypeWarning, eventInspectFailed, fp, "%s", msg)
		return fail(reasonInvalidImageName, msg)
	}
	policy := pullPolicy(c)
	spec := &runtimeapi.ImageSpec{Image: image, UserSpecifiedImage: c.Image, Annotations: s.pod.Annotations}
	creds := &pullCredentials{r: r, s: s}

	if policy != corev1.PullAlways {
		st, err := r.is.ImageStatus(ctx, spec, false)
		if err != nil {
			msg := fmt.Sprintf("Failed to inspect image %q: %v", c.Image, err)
			s.event(corev1.EventTypeWarning, eventInspectFailed, fp, "%s", msg)
			return fail(reasonImageInspectError, msg)
		}
		if id := st.GetImage().GetId(); id != "" {
			accessible := true
			if needed, _ := r.pulls.needsCredentials(id, nil); needed {
				podCreds, err := creds.lookup(ctx, repo)
				if err != nil {
					return fail(reasonErrImagePull, err.Error())
				}
				_, accessible = r.pulls.needsCredentials(id, podCreds)
			}
			if accessible {
				s.event(corev1.EventTypeNormal, eventPulled, fp, "Container image %q already present on machine and can be accessed by the pod", c.Image)
				return id, "", ""
			}
			// Present, but pulled with credentials this pod lacks: it
			// must pull with its own, as if the image were absent.
		}
		if policy == corev1.PullNever {
			msg := fmt.Sprintf("Container image %q is not present with pull policy of Never", c.Image)
			s.event(corev1.EventTypeWarning, reasonErrImageNeverPull, fp, "%s", msg)
			return fail(reasonErrImageNeverPull, msg)
		}
	}

	key := string(s.pod.UID) + "/image/" + c.Image
	if left := r.pulls.backoff.sinceUpdate(key); left > 0 {
		s.event(corev1.EventTypeNormal, eventBackOff, fp, "Back-off pulling image %q", c.Image)
		s.requeue(left)
		msg := fmt.Sprintf("Back-off pulling image %q", c.Image)
		r.pulls.mu.Lock()
		if prev, ok := r.pulls.lastErr[key]; ok {
			msg += ": " + prev
		}
		r.pulls.mu.Unlock()
		return fail(reasonImagePullBackOff, msg)
	}
	podCreds, err := creds.lookup(ctx, repo)
	if err != nil {
		return fail(reasonErrImagePull, err.Error())
	}
	s.event(corev1.EventTypeNormal, eventPulling, fp, "Pulling image %q", c.Image)
	start := time.Now()
	imageRef, used, err := r.pull(ctx, spec, podCreds, s.sbConfig)
	took := time.Since(start).Truncate(time.Millisecond)
	if err != nil {
		s.event(corev1.EventTypeWarning, eventFailed, fp, "Failed to pull image %q: %v", c.Image, err)
		r.pulls.backoff.next(key, r.cfg.Clock.Now())
		r.pulls.mu.Lock()
		r.pulls.lastErr[key] = reasonErrImagePull + ": " + err.Error()
		r.pulls.mu.Unlock()
		s.requeue(r.pulls.backoff.sinceUpdate(key))
		return fail(reasonErrImagePull, err.Error())
	}
	r.pulls.mu.Lock()
	delete(r.pulls.lastErr, key)
	r.pulls.mu.Unlock()
	r.pulls.recordPull(imageRef, used)
	var size uint64
	if st, err := r.is.ImageStatus(ctx, &runtimeapi.ImageSpec{Image: imageRef}, false); err == nil && st.GetImage() != nil {
		size = st.Image.Size
	}
	// Pulls are not queued here, so the time including waiting is the
	// pull's own.
	s.event(corev1.EventTypeNormal, eventPulled, fp, "Successfully pulled image %q in %v (%v including waiting). Image size: %v bytes.",
		c.Image, took, took, size)
	return imageRef, "", ""
}

// pull pulls spec with each credential in turn until one succeeds, or
// anonymously when there are none (upstream's PullImage: a pod whose
// secrets match the registry does not fall back to an anonymous pull). It
// returns the image ID and the credential that worked (nil: anonymous).
func (r *Runtime) pull(ctx context.Context, spec *runtimeapi.ImageSpec, creds []credential, sb *runtimeapi.PodSandboxConfig) (string, *credential, error) {
	if len(creds) == 0 {
		ref, err := r.is.PullImage(ctx, spec, nil, sb)
		return ref, nil, err
	}
	var errs []string
	for i := range creds {
		ref, err := r.is.PullImage(ctx, spec, creds[i].authConfig(), sb)
		if err == nil {
			return ref, &creds[i], nil
		}
		errs = append(errs, err.Error())
	}
	return "", nil, aggregateError(errs)
}

// aggregateError joins messages as upstream's utilerrors.Aggregate prints
// them: one message alone, several as "[a, b]", duplicates dropped.
type aggregateError []string

func (a aggregateError) Error() string {
	seen := map[string]bool{}
	var uniq []string
	for _, m := range a {
		if !seen[m] {
			seen[m] = true
			uniq = append(uniq, m)
		}
	}
	if len(uniq) == 1 {
		return uniq[0]
	}
	return "[" + strings.Join(uniq, ", ") + "]"
}
