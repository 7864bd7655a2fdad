package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/skiff-project/skiff/pkg/images"
)

// pauseSourceDir and webSourceDir are where the Go sources of the pause
// image and of the "nginx:1.25" test web server live in the tree.
const (
	pauseSourceDir = "test/images/pause"
	webSourceDir   = "test/images/web"
	// webRef is the name the test web server is imported under, so the
	// seed's `kubectl create deployment web --image=nginx:1.25` runs
	// without a registry.
	webRef = "docker.io/library/nginx:1.25"
)

// EchoRef is the HTTP echo server test image: every request is answered
// with a JSON description of it, including the serving pod's hostname.
const EchoRef = "skiff.local/echo:1.0"

// ensureImages imports every tarball of the images directory, then builds
// and imports the pause and busybox images if the runtime still lacks
// them. Without a pause image no pod can start, so failing to provide it
// is an error for the private containerd; an external runtime may pull it.
func ensureImages(ctx context.Context, cfg Config, paths Paths, rt *nodeRuntime) error {
	logger := klog.FromContext(ctx)
	start := time.Now()
	// Images go in through containerd's API with ctr, so an external
	// runtime only gets them when it is a containerd too.
	socket := strings.TrimPrefix(cfg.ContainerRuntimeEndpoint, "unix://")
	if socket == "" {
		socket = paths.Socket()
	}
	imported, err := images.ImportDir(ctx, "", socket, paths.Images)
	if err != nil {
		return fmt.Errorf("agent: importing %s: %w", paths.Images, err)
	}

	havePause, err := hasImage(ctx, rt, images.PauseRef)
	if err != nil {
		return err
	}
	if !havePause {
		err := buildAndImport(ctx, socket, paths, "pause", func(tar string) error {
			src, err := findSource(cfg.SourceDir, pauseSourceDir)
			if err != nil {
				return err
			}
			bin := filepath.Join(paths.Cache, "pause")
			if err := images.BuildGoBinary(ctx, src, bin); err != nil {
				return err
			}
			_, err = images.WriteTarball(tar, images.PauseSpec(bin))
			return err
		})
		if err != nil {
			err = fmt.Errorf("agent: no %s image: put its tarball in %s, or run from Skiff's source tree: %w", images.PauseRef, paths.Images, err)
			if rt.private {
				return err
			}
			logger.Error(err, "continuing; the runtime must pull it")
		}
	}

	haveBusybox, err := hasImage(ctx, rt, images.BusyboxRef)
	if err != nil {
		return err
	}
	if !haveBusybox {
		if _, statErr := os.Stat(cfg.Busybox); statErr == nil {
			err := buildAndImport(ctx, socket, paths, "busybox", func(tar string) error {
				spec, err := images.BusyboxSpec(ctx, cfg.Busybox)
				if err != nil {
					return err
				}
				_, err = images.WriteTarball(tar, spec)
				return err
			})
			if err != nil {
				logger.Error(err, "building the busybox image; continuing without it")
			}
		}
	}
	// The web server and the echo server are one binary (see
	// test/images/web), built once for both images.
	haveWeb, err := hasImage(ctx, rt, webRef)
	if err != nil {
		return err
	}
	haveEcho, err := hasImage(ctx, rt, EchoRef)
	if err != nil {
		return err
	}
	if !haveWeb || !haveEcho {
		if src, srcErr := findSource(cfg.SourceDir, webSourceDir); srcErr == nil {
			bin := filepath.Join(paths.Cache, "web")
			if err := images.BuildGoBinary(ctx, src, bin); err != nil {
				logger.Error(err, "building the nginx:1.25 and echo test images; continuing without them")
			} else {
				for _, img := range []struct {
					have bool
					name string
					spec images.Spec
				}{
					{haveWeb, "web", images.Spec{Ref: webRef,
						Files: []images.File{{Path: "/usr/sbin/nginx", Src: bin, Mode: 0o755}}, Entrypoint: []string{"/usr/sbin/nginx"}}},
					{haveEcho, "echo", images.Spec{Ref: EchoRef,
						Files: []images.File{{Path: "/echo-server", Src: bin, Mode: 0o755}}, Entrypoint: []string{"/echo-server"}}},
				} {
					if img.have {
						continue
					}
					err := buildAndImport(ctx, socket, paths, img.name, func(tar string) error {
						_, err := images.WriteTarball(tar, img.spec)
						return err
					})
					if err != nil {
						logger.Error(err, "building a test image; continuing without it", "image", img.spec.Ref)
					}
				}
			}
		}
	}
	logger.V(1).Info("images ready", "imported", len(imported), "after", time.Since(start).Round(time.Millisecond))
	return nil
}

// buildAndImport writes an image tarball to the cache with build and
// imports it.
func buildAndImport(ctx context.Context, socket string, paths Paths, name string, build func(tar string) error) error {
	tar := filepath.Join(paths.Cache, name+".tar")
	if err := build(tar); err != nil {
		return fmt.Errorf("building the %s image: %w", name, err)
	}
	if err := images.Import(ctx, "", socket, tar); err != nil {
		return err
	}
	return nil
}

// hasImage reports whether the runtime holds ref.
func hasImage(ctx context.Context, rt *nodeRuntime, ref string) (bool, error) {
	st, err := rt.conn.Images.ImageStatus(ctx, &runtimeapi.ImageSpec{Image: ref}, false)
	if err != nil {
		return false, fmt.Errorf("agent: image status of %s: %w", ref, err)
	}
	return st.GetImage() != nil, nil
}

// findSource returns an image's source directory rel: under dir when
// given, else under the first ancestor of the working directory that holds
// it.
func findSource(dir, rel string) (string, error) {
	if dir != "" {
		p := filepath.Join(dir, rel)
		if _, err := os.Stat(filepath.Join(p, "main.go")); err != nil {
			return "", fmt.Errorf("image source in %s: %w", dir, err)
		}
		return p, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("working directory: %w", err)
	}
	for d := wd; ; d = filepath.Dir(d) {
		p := filepath.Join(d, rel)
		if _, err := os.Stat(filepath.Join(p, "main.go")); err == nil {
			return p, nil
		}
		if filepath.Dir(d) == d {
			return "", errors.New("no " + rel + " above the working directory")
		}
	}
}
