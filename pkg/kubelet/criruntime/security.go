package criruntime

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// podSupplementalGroups are the groups the pod's security context adds to
// its processes: fsGroup first, then supplementalGroups, as upstream.
func podSupplementalGroups(sc *corev1.PodSecurityContext) []int64 {
	var out []int64
	if sc.FSGroup != nil {
		out = append(out, *sc.FSGroup)
	}
	return append(out, sc.SupplementalGroups...)
}

// hasPrivilegedContainer reports whether any container of the pod is
// privileged; the sandbox must then be privileged too (containerd refuses
// privileged containers in unprivileged sandboxes).
func hasPrivilegedContainer(pod *corev1.Pod) bool {
	for _, c := range allContainers(pod) {
		if c.SecurityContext != nil && c.SecurityContext.Privileged != nil && *c.SecurityContext.Privileged {
			return true
		}
	}
	return false
}

// effectiveRunAsNonRoot returns the container's runAsNonRoot and runAsUser,
// the container's security context overriding the pod's.
func effectiveRunAsNonRoot(pod *corev1.Pod, c *corev1.Container) (nonRoot bool, runAsUser *int64) {
	if psc := pod.Spec.SecurityContext; psc != nil {
		if psc.RunAsNonRoot != nil {
			nonRoot = *psc.RunAsNonRoot
		}
		runAsUser = psc.RunAsUser
	}
	if csc := c.SecurityContext; csc != nil {
		if csc.RunAsNonRoot != nil {
			nonRoot = *csc.RunAsNonRoot
		}
		if csc.RunAsUser != nil {
			runAsUser = csc.RunAsUser
		}
	}
	return nonRoot, runAsUser
}

// verifyRunAsNonRoot is upstream's check of runAsNonRoot against the
// effective runAsUser or else the image's user (uid, or a user name
// that cannot be verified).
func verifyRunAsNonRoot(pod *corev1.Pod, c *corev1.Container, imageUID *int64, imageUser string) error {
	nonRoot, runAsUser := effectiveRunAsNonRoot(pod, c)
	if !nonRoot {
		return nil
	}
	if runAsUser != nil {
		if *runAsUser == 0 {
			return fmt.Errorf("container's runAsUser breaks non-root policy (pod: %s, container: %s)", podDesc(pod), c.Name)
		}
		return nil
	}
	switch {
	case imageUID != nil && *imageUID == 0:
		return fmt.Errorf("container has runAsNonRoot and image will run as root (pod: %s, container: %s)", podDesc(pod), c.Name)
	case imageUID == nil && imageUser != "":
		return fmt.Errorf("container has runAsNonRoot and image has non-numeric user (%s), cannot verify user is non-root (pod: %s, container: %s)", imageUser, podDesc(pod), c.Name)
	}
	return nil
}

// applyImageUser completes cfg with the image's user where the pod's
// security contexts need it, like upstream's
// determineEffectiveSecurityContext: runAsNonRoot without runAsUser is
// checked against the image's user (an image naming none runs as root),
// and a runAsGroup without runAsUser gets the image's user spelled out
// (containerd refuses a group without a user).
func (r *Runtime) applyImageUser(ctx context.Context, pod *corev1.Pod, c *corev1.Container, cfg *runtimeapi.ContainerConfig, imageRef string) error {
	nonRoot, runAsUser := effectiveRunAsNonRoot(pod, c)
	sc := cfg.GetLinux().GetSecurityContext()
	if runAsUser != nil || (!nonRoot && sc.GetRunAsGroup() == nil) {
		return verifyRunAsNonRoot(pod, c, nil, "")
	}
	st, err := r.is.ImageStatus(ctx, &runtimeapi.ImageSpec{Image: imageRef}, false)
	if err != nil {
		return fmt.Errorf("reading the user of image %s: %w", c.Image, err)
	}
	root := int64(0)
	uid, user := &root, ""
	if img := st.GetImage(); img != nil {
		switch {
		case img.Uid != nil:
			v := img.Uid.Value
			uid = &v
		case img.Username != "":
			uid, user = nil, img.Username
		}
	}
	if err := verifyRunAsNonRoot(pod, c, uid, user); err != nil {
		return err
	}
	if sc != nil && sc.RunAsGroup != nil && sc.RunAsUser == nil {
		if uid != nil {
			sc.RunAsUser = &runtimeapi.Int64Value{Value: *uid}
		} else {
			sc.RunAsUsername = user
		}
	}
	return nil
}
