// Package images builds tiny container images from local files and imports
// image tarballs into containerd, so Skiff runs pods without a registry
// (air-gapped installs, tests).
//
// Build produces a linux/amd64 image of exactly one layer on top of
// go-containerregistry's empty image. Everything that could vary between
// runs (mtimes, owners, file order, the created time) is fixed, so the same
// inputs always give the same digests. WriteTarball writes the docker-save
// format ("manifest.json" with RepoTags) that `ctr images import` and
// `docker load` accept.
package images

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// References of the images Skiff builds itself.
const (
	// PauseRef is the sandbox image; it must equal containerd's
	// sandbox_image.
	PauseRef = "registry.k8s.io/pause:3.10"
	// BusyboxRef is the busybox test image.
	BusyboxRef = "docker.io/library/busybox:1.36"
)

// defaultPath is the PATH of every image built here.
const defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// File is one regular file of an image.
type File struct {
	// Path is the absolute path inside the image.
	Path string
	// Src is a host file to copy; when empty, Data is the content.
	Src string
	// Data is the content when Src is empty.
	Data []byte
	// Mode holds the permission bits; when zero, those of Src, or 0644.
	Mode fs.FileMode
}

// Symlink is one symbolic link of an image.
type Symlink struct {
	// Path is the absolute path of the link inside the image.
	Path string
	// Target is what the link points to, as written.
	Target string
}

// Spec describes a single-layer image.
type Spec struct {
	// Ref is the image's name, e.g. "docker.io/library/busybox:1.36";
	// required.
	Ref string
	// Files and Symlinks make up the layer, together with the standard
	// directories (/bin, /etc, /tmp, ...) and a minimal /etc/passwd and
	// /etc/group unless Files provides them.
	Files    []File
	Symlinks []Symlink
	// Entrypoint, Cmd and WorkingDir become the image config's; WorkingDir
	// defaults to "/".
	Entrypoint []string
	Cmd        []string
	WorkingDir string
	// Env is added after PATH, as "KEY=value".
	Env []string
}

// Info describes a written image tarball.
type Info struct {
	// Ref is the fully qualified reference written as RepoTag.
	Ref string
	// Digest is the manifest digest ("sha256:...").
	Digest string
	// ID is the config digest, the image ID the CRI reports.
	ID string
	// Path is the tarball's path.
	Path string
}

// epoch is every timestamp in the images: they must not depend on when or
// where they were built.
var epoch = time.Unix(0, 0).UTC()

// standardDirs are created in every image, with their modes.
var standardDirs = []struct {
	name string
	mode int64
}{
	{"bin", 0o755}, {"dev", 0o755}, {"etc", 0o755}, {"proc", 0o755}, {"root", 0o700},
	{"sys", 0o755}, {"tmp", 0o1777}, {"var", 0o755},
}

// Build returns the image spec describes and its parsed reference.
func Build(spec Spec) (v1.Image, name.Reference, error) {
	ref, err := name.ParseReference(spec.Ref)
	if err != nil {
		return nil, nil, fmt.Errorf("images: parsing reference %q: %w", spec.Ref, err)
	}
	entries, err := layerEntries(spec)
	if err != nil {
		return nil, nil, fmt.Errorf("images: building layer of %s: %w", spec.Ref, err)
	}
	// The opener streams the tar from the files each time the layer is
	// read (for its digests, then for the tarball): a 160 MB binary is
	// never held in memory. Closing the reader early stops the writer.
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(writeLayer(pw, entries)) }()
		return pr, nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("images: layer of %s: %w", spec.Ref, err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return nil, nil, fmt.Errorf("images: appending layer of %s: %w", spec.Ref, err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, nil, fmt.Errorf("images: config of %s: %w", spec.Ref, err)
	}
	cf = cf.DeepCopy()
	cf.Architecture, cf.OS = "amd64", "linux"
	cf.Created = v1.Time{Time: epoch}
	cf.Config.Env = append([]string{defaultPath}, spec.Env...)
	cf.Config.Entrypoint = spec.Entrypoint
	cf.Config.Cmd = spec.Cmd
	cf.Config.WorkingDir = spec.WorkingDir
	if cf.Config.WorkingDir == "" {
		cf.Config.WorkingDir = "/"
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, nil, fmt.Errorf("images: setting config of %s: %w", spec.Ref, err)
	}
	return img, ref, nil
}

// WriteTarball builds spec and writes it to path as a docker-save tarball
// tagged spec.Ref.
func WriteTarball(path string, spec Spec) (Info, error) {
	img, ref, err := Build(spec)
	if err != nil {
		return Info{}, err
	}
	if err := tarball.WriteToFile(path, ref, img); err != nil {
		return Info{}, fmt.Errorf("images: writing %s: %w", path, err)
	}
	digest, err := img.Digest()
	if err != nil {
		return Info{}, fmt.Errorf("images: digest of %s: %w", spec.Ref, err)
	}
	id, err := img.ConfigName()
	if err != nil {
		return Info{}, fmt.Errorf("images: config digest of %s: %w", spec.Ref, err)
	}
	return Info{Ref: ref.Name(), Digest: digest.String(), ID: id.String(), Path: path}, nil
}

// layerEntry is one tar entry of a layer: a header and the content,
// either in data or read from src when the layer is written, so that a
// large binary is streamed rather than held in memory.
type layerEntry struct {
	hdr  tar.Header
	data []byte
	src  string
}

// layerEntries returns the entries of spec's layer: directories first,
// then files and symlinks sorted by path. Files given by Src are only
// stat'ed here.
func layerEntries(spec Spec) ([]layerEntry, error) {
	var entries []layerEntry
	dirs := map[string]bool{}
	addDir := func(dir string, mode int64) {
		if dir == "" || dir == "." || dirs[dir] {
			return
		}
		dirs[dir] = true
		entries = append(entries, layerEntry{hdr: tar.Header{Typeflag: tar.TypeDir, Name: dir + "/", Mode: mode}})
	}
	addParents := func(p string) {
		parts := strings.Split(path.Dir(p), "/")
		for i := range parts {
			addDir(strings.Join(parts[:i+1], "/"), 0o755)
		}
	}
	for _, d := range standardDirs {
		addDir(d.name, d.mode)
	}
	files := append([]File(nil), spec.Files...)
	has := map[string]bool{}
	for _, f := range files {
		has[clean(f.Path)] = true
	}
	if !has["etc/passwd"] {
		files = append(files, File{Path: "/etc/passwd", Data: []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")})
	}
	if !has["etc/group"] {
		files = append(files, File{Path: "/etc/group", Data: []byte("root:x:0:\nnogroup:x:65534:\n")})
	}
	var leaves []layerEntry
	for _, f := range files {
		p := clean(f.Path)
		if p == "" {
			return nil, fmt.Errorf("file path %q is not a file", f.Path)
		}
		e := layerEntry{data: f.Data, hdr: tar.Header{Typeflag: tar.TypeReg, Name: p, Size: int64(len(f.Data))}}
		mode := f.Mode
		if f.Src != "" {
			st, err := os.Stat(f.Src)
			if err != nil {
				return nil, fmt.Errorf("reading %s: %w", f.Src, err)
			}
			if !st.Mode().IsRegular() {
				return nil, fmt.Errorf("reading %s: not a regular file", f.Src)
			}
			e.src, e.data, e.hdr.Size = f.Src, nil, st.Size()
			if mode == 0 {
				mode = st.Mode().Perm()
			}
		}
		if mode == 0 {
			mode = 0o644
		}
		e.hdr.Mode = int64(mode.Perm())
		addParents(p)
		leaves = append(leaves, e)
	}
	for _, s := range spec.Symlinks {
		p := clean(s.Path)
		if p == "" || s.Target == "" {
			return nil, fmt.Errorf("symlink %q -> %q is invalid", s.Path, s.Target)
		}
		addParents(p)
		leaves = append(leaves, layerEntry{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: p, Linkname: s.Target, Mode: 0o777}})
	}
	sort.SliceStable(leaves, func(i, j int) bool { return leaves[i].hdr.Name < leaves[j].hdr.Name })
	for i := 1; i < len(leaves); i++ {
		if leaves[i].hdr.Name == leaves[i-1].hdr.Name {
			return nil, fmt.Errorf("path /%s given twice", leaves[i].hdr.Name)
		}
	}
	return append(entries, leaves...), nil
}

// writeLayer writes the layer tar of entries to w, reading Src files as
// it goes. A file whose size changed since layerEntries fails the write
// rather than producing a layer that does not match its digest.
func writeLayer(w io.Writer, entries []layerEntry) error {
	tw := tar.NewWriter(w)
	for _, e := range entries {
		h := e.hdr
		h.ModTime, h.Format = epoch, tar.FormatPAX
		if err := tw.WriteHeader(&h); err != nil {
			return fmt.Errorf("writing tar header of %s: %w", h.Name, err)
		}
		if e.src == "" {
			if _, err := tw.Write(e.data); err != nil {
				return fmt.Errorf("writing %s: %w", h.Name, err)
			}
			continue
		}
		f, err := os.Open(e.src)
		if err != nil {
			return fmt.Errorf("reading %s: %w", e.src, err)
		}
		n, err := io.Copy(tw, f)
		f.Close()
		if err != nil {
			return fmt.Errorf("writing %s from %s: %w", h.Name, e.src, err)
		}
		if n != h.Size {
			return fmt.Errorf("%s changed while the image was built (%d bytes, then %d)", e.src, h.Size, n)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("closing layer tar: %w", err)
	}
	return nil
}

// clean turns an absolute image path into a tar entry name ("/bin/sh" →
// "bin/sh"); "" for the root.
func clean(p string) string {
	p = strings.TrimPrefix(path.Clean("/"+p), "/")
	return p
}

// BuildGoBinary compiles the main package in pkgDir into out, statically
// (CGO_ENABLED=0) and reproducibly (-trimpath, no VCS stamp, no build ID).
// The go tool is found on PATH, then in /usr/local/go/bin.
func BuildGoBinary(ctx context.Context, pkgDir, out string) error {
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = "/usr/local/go/bin/go"
		if _, statErr := os.Stat(goTool); statErr != nil {
			return fmt.Errorf("images: finding the go tool: %w", err)
		}
	}
	absOut, err := filepath.Abs(out)
	if err != nil {
		return fmt.Errorf("images: resolving %s: %w", out, err)
	}
	cmd := exec.CommandContext(ctx, goTool, "build", "-trimpath", "-buildvcs=false", "-ldflags=-s -w -buildid=", "-o", absOut, ".")
	cmd.Dir = pkgDir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("images: go build in %s: %w: %s", pkgDir, err, bytes.TrimSpace(b))
	}
	return nil
}

// PauseSpec is the pause image around binary, a build of
// test/images/pause.
func PauseSpec(binary string) Spec {
	return Spec{
		Ref:        PauseRef,
		Files:      []File{{Path: "/pause", Src: binary, Mode: 0o755}},
		Entrypoint: []string{"/pause"},
	}
}

// BusyboxSpec is the busybox image: the static binary at busybox (Debian's
// busybox-static is /bin/busybox) plus a /bin/<applet> symlink for every
// applet it lists. The default command is "sh".
func BusyboxSpec(ctx context.Context, busybox string) (Spec, error) {
	out, err := exec.CommandContext(ctx, busybox, "--list").Output()
	if err != nil {
		return Spec{}, fmt.Errorf("images: listing applets of %s: %w", busybox, err)
	}
	spec := Spec{
		Ref:   BusyboxRef,
		Files: []File{{Path: "/bin/busybox", Src: busybox, Mode: 0o755}},
		Cmd:   []string{"sh"},
	}
	seen := map[string]bool{"busybox": true}
	for _, applet := range strings.Fields(string(out)) {
		if seen[applet] || strings.Contains(applet, "/") {
			continue
		}
		seen[applet] = true
		spec.Symlinks = append(spec.Symlinks, Symlink{Path: "/bin/" + applet, Target: "busybox"})
	}
	if len(spec.Symlinks) == 0 {
		return Spec{}, errors.New("images: busybox lists no applets")
	}
	return spec, nil
}

// Namespace is the containerd namespace the CRI uses.
const Namespace = "k8s.io"

// Import loads the docker-save or OCI tarball at file into the containerd
// serving socket, in the CRI's namespace, unpacked for the default
// snapshotter. It uses containerd's `ctr` tool (ctrPath, "ctr" on PATH
// when empty).
func Import(ctx context.Context, ctrPath, socket, file string) error {
	if ctrPath == "" {
		ctrPath = "ctr"
	}
	socket = strings.TrimPrefix(socket, "unix://")
	cmd := exec.CommandContext(ctx, ctrPath, "--address", socket, "--namespace", Namespace, "images", "import", file)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("images: importing %s: %w: %s", file, err, bytes.TrimSpace(b))
	}
	return nil
}

// ImportDir imports every *.tar file of dir (an air-gapped images
// directory), in name order, and returns the files imported. A missing
// directory imports nothing.
func ImportDir(ctx context.Context, ctrPath, socket, dir string) ([]string, error) {
	matches, err := filepath.Glob(filepath.Join(dir, "*.tar"))
	if err != nil {
		return nil, fmt.Errorf("images: listing %s: %w", dir, err)
	}
	sort.Strings(matches)
	for i, f := range matches {
		if err := Import(ctx, ctrPath, socket, f); err != nil {
			return matches[:i], err
		}
	}
	return matches, nil
}
