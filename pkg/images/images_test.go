package images

import (
	"archive/tar"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

func TestWriteTarballIsReproducible(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "tool")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\necho hi\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	spec := Spec{
		Ref:        "docker.io/library/tool:1.0",
		Files:      []File{{Path: "/usr/bin/tool", Src: bin}, {Path: "/etc/motd", Data: []byte("hello\n")}},
		Symlinks:   []Symlink{{Path: "/bin/t", Target: "/usr/bin/tool"}},
		Entrypoint: []string{"/usr/bin/tool"},
	}
	a, err := WriteTarball(filepath.Join(dir, "a.tar"), spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(bin, a0, a0); err != nil { // a new mtime must not matter
		t.Fatal(err)
	}
	b, err := WriteTarball(filepath.Join(dir, "b.tar"), spec)
	if err != nil {
		t.Fatal(err)
	}
	if a.Digest != b.Digest || a.ID != b.ID {
		t.Errorf("digests differ between builds: %+v vs %+v", a, b)
	}
	if a.Ref != "index.docker.io/library/tool:1.0" && a.Ref != "docker.io/library/tool:1.0" {
		t.Errorf("Ref = %q", a.Ref)
	}

	img, err := tarball.ImageFromPath(a.Path, nil)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.OS != "linux" || cf.Architecture != "amd64" || cf.Config.Entrypoint[0] != "/usr/bin/tool" || cf.Config.WorkingDir != "/" {
		t.Errorf("config %+v", cf.Config)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers %d, %v", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	got := map[string]*tar.Header{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got[h.Name] = h
	}
	for _, tc := range []struct {
		name string
		typ  byte
		mode int64
		link string
	}{
		{"usr/bin/tool", tar.TypeReg, 0o755, ""},
		{"etc/motd", tar.TypeReg, 0o644, ""},
		{"etc/passwd", tar.TypeReg, 0o644, ""},
		{"bin/t", tar.TypeSymlink, 0o777, "/usr/bin/tool"},
		{"usr/", tar.TypeDir, 0o755, ""},
		{"tmp/", tar.TypeDir, 0o1777, ""},
	} {
		h := got[tc.name]
		if h == nil {
			t.Errorf("%s missing from the layer", tc.name)
			continue
		}
		if h.Typeflag != tc.typ || h.Mode != tc.mode || h.Linkname != tc.link || !h.ModTime.Equal(epoch) {
			t.Errorf("%s: type %c mode %o link %q mtime %v", tc.name, h.Typeflag, h.Mode, h.Linkname, h.ModTime)
		}
	}
}

var a0 = epoch.AddDate(20, 0, 0)

func TestBuildRejectsBadSpecs(t *testing.T) {
	for _, tc := range []struct {
		name string
		spec Spec
	}{
		{"no reference", Spec{}},
		{"bad reference", Spec{Ref: "UPPER/case"}},
		{"duplicate path", Spec{Ref: "x:1", Files: []File{{Path: "/a"}, {Path: "/a"}}}},
		{"root as a file", Spec{Ref: "x:1", Files: []File{{Path: "/"}}}},
		{"missing source", Spec{Ref: "x:1", Files: []File{{Path: "/a", Src: "/nonexistent/file"}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, _, err := Build(tc.spec); err == nil {
				t.Error("Build succeeded")
			}
		})
	}
}

func TestBusyboxSpec(t *testing.T) {
	if _, err := os.Stat("/bin/busybox"); err != nil {
		t.Skip("busybox-static not installed (run hack/setup.sh)")
	}
	spec, err := BusyboxSpec(context.Background(), "/bin/busybox")
	if err != nil {
		t.Fatal(err)
	}
	links := map[string]bool{}
	for _, s := range spec.Symlinks {
		links[s.Path] = s.Target == "busybox"
	}
	for _, want := range []string{"/bin/sh", "/bin/httpd", "/bin/nc", "/bin/tail"} {
		if !links[want] {
			t.Errorf("no %s -> busybox link", want)
		}
	}
}
