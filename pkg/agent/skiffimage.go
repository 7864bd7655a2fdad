package agent

import (
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	internalapi "k8s.io/cri-api/pkg/apis"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/skiff-project/skiff/pkg/images"
)

// SkiffBinaryPath is where the skiff binary sits in the image built from
// it; the add-on workloads (kube-proxy, CoreDNS) run it from there.
const SkiffBinaryPath = "/usr/local/bin/skiff"

// SkiffImageRef returns the reference of the image the agent builds from
// its own binary for the given version: no registry holds it, every node
// builds it at start. Characters a tag cannot carry become '-'.
func SkiffImageRef(version string) string {
	tag := []byte(strings.TrimSpace(version))
	for i, c := range tag {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-'
		if !ok || i == 0 && (c == '.' || c == '-') {
			tag[i] = '-'
		}
	}
	if len(tag) == 0 {
		tag = []byte("dev")
	}
	if len(tag) > 128 {
		tag = tag[:128]
	}
	return "skiff.local/skiff:" + string(tag)
}

// skiffImage builds the image of the skiff binary once per binary and
// lets the CRI image service wait for it (see pull).
type skiffImage struct {
	ref  string        // normalised reference; immutable
	done chan struct{} // closed when the build ended
	err  error         // the build's outcome; read only after done
}

// buildSkiffImage starts building ref from binary in a goroutine it owns
// until ctx is done or the build ends; wait for done before returning.
// A cache key (binary size and mtime) in paths.Cache skips the build when
// the runtime already holds the image of this very binary, so only the
// first start after an upgrade pays for it (~3 s for a 160 MB binary).
func buildSkiffImage(ctx context.Context, ref, binary, socket string, paths Paths, rt *nodeRuntime) *skiffImage {
	s := &skiffImage{ref: normalizeRef(ref), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		start := time.Now()
		built, err := ensureSkiffImage(ctx, ref, binary, socket, paths, rt)
		s.err = err
		logger := klog.FromContext(ctx)
		switch {
		case err != nil:
			logger.Error(err, "building the skiff image; the add-on pods (kube-proxy, coredns) cannot start on this node", "image", ref)
		case built:
			logger.V(1).Info("skiff image built", "image", ref, "after", time.Since(start).Round(time.Millisecond))
		}
	}()
	return s
}

// ensureSkiffImage builds and imports the image unless the runtime holds
// it for this binary already; built reports whether it did work.
func ensureSkiffImage(ctx context.Context, ref, binary, socket string, paths Paths, rt *nodeRuntime) (built bool, err error) {
	st, err := os.Stat(binary)
	if err != nil {
		return false, fmt.Errorf("skiff image: %w", err)
	}
	key := fmt.Sprintf("%s %d %d\n", ref, st.Size(), st.ModTime().UnixNano())
	keyFile := filepath.Join(paths.Cache, "skiff-image.key")
	if old, err := os.ReadFile(keyFile); err == nil && string(old) == key {
		if has, err := hasImage(ctx, rt, ref); err == nil && has {
			return false, nil
		}
	}
	files, err := binaryFiles(binary)
	if err != nil {
		return false, fmt.Errorf("skiff image: %w", err)
	}
	tar := filepath.Join(paths.Cache, "skiff.tar")
	_, err = images.WriteTarball(tar, images.Spec{Ref: ref, Files: files, Entrypoint: []string{SkiffBinaryPath}})
	// The build holds the binary several times in memory; give it back
	// now rather than carry it as the server's idle footprint.
	debug.FreeOSMemory()
	if err != nil {
		return false, fmt.Errorf("skiff image: %w", err)
	}
	if err := images.Import(ctx, "", socket, tar); err != nil {
		return false, fmt.Errorf("skiff image: %w", err)
	}
	// The tarball served its purpose: the runtime keeps the image.
	if err := os.Remove(tar); err != nil {
		return false, fmt.Errorf("skiff image: %w", err)
	}
	if err := os.WriteFile(keyFile, []byte(key), 0o644); err != nil {
		return false, fmt.Errorf("skiff image: %w", err)
	}
	return true, nil
}

// libDirs are where the dynamic loader finds the libraries of a binary
// linked against the C library (a cgo build) on Debian.
var libDirs = []string{"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib"}

// binaryFiles returns the image's files: the binary at SkiffBinaryPath
// and, when it is dynamically linked, its loader and libraries at the
// paths the loader looks for them, so a cgo build runs as well as the
// static one `make build` produces.
func binaryFiles(binary string) ([]images.File, error) {
	files := []images.File{{Path: SkiffBinaryPath, Src: binary, Mode: 0o755}}
	seen := map[string]bool{}
	queue := []string{binary}
	for len(queue) > 0 {
		path := queue[0]
		queue = queue[1:]
		f, err := elf.Open(path)
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", path, err)
		}
		libs, err := f.ImportedLibraries()
		var interp string
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				b := make([]byte, p.Filesz)
				if _, rerr := p.ReadAt(b, 0); rerr == nil {
					interp = strings.TrimRight(string(b), "\x00")
				}
			}
		}
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("reading the libraries of %s: %w", path, err)
		}
		if interp != "" && !seen[interp] {
			seen[interp] = true
			files = append(files, images.File{Path: interp, Src: interp, Mode: 0o755})
		}
		for _, lib := range libs {
			if seen[lib] {
				continue
			}
			seen[lib] = true
			found := ""
			for _, dir := range libDirs {
				if _, err := os.Stat(filepath.Join(dir, lib)); err == nil {
					found = filepath.Join(dir, lib)
					break
				}
			}
			if found == "" {
				return nil, fmt.Errorf("%s needs %s, which is in none of %v", path, lib, libDirs)
			}
			files = append(files, images.File{Path: found, Src: found, Mode: 0o755})
			queue = append(queue, found)
		}
	}
	return files, nil
}

// normalizeRef returns ref as the CRI names it ("nginx" →
// "index.docker.io/library/nginx:latest" in go-containerregistry's
// spelling); ref itself when it does not parse.
func normalizeRef(ref string) string {
	r, err := name.ParseReference(ref)
	if err != nil {
		return ref
	}
	return r.Name()
}

// localImages is the CRI image service as the kubelet sees it: a pull of
// the skiff image waits for the agent's own build instead of asking a
// registry that does not exist, so the add-on pods start as soon as the
// image is there rather than after an image pull back-off.
type localImages struct {
	internalapi.ImageManagerService
	skiff *skiffImage // nil when no skiff image is built; immutable
}

// PullImage implements internalapi.ImageManagerService.
func (l *localImages) PullImage(ctx context.Context, image *runtimeapi.ImageSpec, auth *runtimeapi.AuthConfig, sandbox *runtimeapi.PodSandboxConfig) (string, error) {
	if l.skiff == nil || normalizeRef(image.GetImage()) != l.skiff.ref {
		return l.ImageManagerService.PullImage(ctx, image, auth, sandbox)
	}
	select {
	case <-ctx.Done():
		return "", ctx.Err()
	case <-l.skiff.done:
	}
	if l.skiff.err != nil {
		return "", fmt.Errorf("the node could not build %s from its skiff binary: %w", image.GetImage(), l.skiff.err)
	}
	st, err := l.ImageManagerService.ImageStatus(ctx, image, false)
	if err != nil {
		return "", err
	}
	if st.GetImage() == nil {
		return "", errors.New("the skiff image was built but the runtime does not list it")
	}
	return st.GetImage().GetId(), nil
}
