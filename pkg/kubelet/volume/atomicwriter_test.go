package volume

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// readTree returns the regular files reachable under dir through its
// user-visible names (not the ..-prefixed internals), with their modes.
func readTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "..") {
			continue
		}
		root := filepath.Join(dir, e.Name())
		err := filepath.Walk(root+"/", func(p string, info os.FileInfo, err error) error {
			if err != nil || info.IsDir() {
				return err
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(dir, p)
			out[rel] = info.Mode().Perm().String() + " " + string(b)
			return nil
		})
		if err != nil {
			// A file link: Walk of "name/" fails, read it directly.
			b, err := os.ReadFile(root)
			if err != nil {
				t.Fatal(err)
			}
			info, err := os.Stat(root)
			if err != nil {
				t.Fatal(err)
			}
			out[e.Name()] = info.Mode().Perm().String() + " " + string(b)
		}
	}
	return out
}

func dataDirs(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "..20*"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestWriteAtomicWritesFilesBehindDataLink(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "vol")
	err := WriteAtomic(dir, map[string]FileProjection{
		"a":     {Data: []byte("1"), Mode: 0o644},
		"sub/b": {Data: []byte("2"), Mode: 0o400},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"a": "-rw-r--r-- 1", "sub/b": "-r-------- 2"}
	if diff := cmp.Diff(want, readTree(t, dir)); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
	if got, _ := os.Readlink(filepath.Join(dir, "a")); got != "..data/a" {
		t.Errorf("a links to %q, want ..data/a", got)
	}
	if got, _ := os.Readlink(filepath.Join(dir, "sub")); got != "..data/sub" {
		t.Errorf("sub links to %q, want ..data/sub", got)
	}
}

func TestWriteAtomicUpdateSwapsDataDirAndRemovesStaleFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "vol")
	if err := WriteAtomic(dir, map[string]FileProjection{"a": {Data: []byte("1"), Mode: 0o644}, "old": {Data: []byte("x"), Mode: 0o644}}); err != nil {
		t.Fatal(err)
	}
	before, _ := os.Readlink(filepath.Join(dir, dataDirName))
	if err := WriteAtomic(dir, map[string]FileProjection{"a": {Data: []byte("2"), Mode: 0o644}}); err != nil {
		t.Fatal(err)
	}
	after, _ := os.Readlink(filepath.Join(dir, dataDirName))
	if before == after {
		t.Errorf("..data still points at %s after an update", before)
	}
	if diff := cmp.Diff(map[string]string{"a": "-rw-r--r-- 2"}, readTree(t, dir)); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
	if got := dataDirs(t, dir); len(got) != 1 {
		t.Errorf("data directories = %v, want only the current one", got)
	}
}

func TestWriteAtomicSamePayloadChangesNothing(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "vol")
	p := map[string]FileProjection{"a": {Data: []byte("1"), Mode: 0o644}}
	if err := WriteAtomic(dir, p); err != nil {
		t.Fatal(err)
	}
	before, _ := os.Readlink(filepath.Join(dir, dataDirName))
	if err := WriteAtomic(dir, p); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.Readlink(filepath.Join(dir, dataDirName)); after != before {
		t.Errorf("..data moved from %s to %s for an unchanged payload", before, after)
	}
	// A mode change alone is a change.
	if err := WriteAtomic(dir, map[string]FileProjection{"a": {Data: []byte("1"), Mode: 0o600}}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]string{"a": "-rw------- 1"}, readTree(t, dir)); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
}

func TestWriteAtomicRejectsEscapingPaths(t *testing.T) {
	for _, p := range []string{"/abs", "../x", "a/../../x", "..data", "a//b", ""} {
		dir := filepath.Join(t.TempDir(), "vol")
		if err := WriteAtomic(dir, map[string]FileProjection{p: {Data: []byte("x"), Mode: 0o644}}); err == nil {
			t.Errorf("WriteAtomic accepted path %q", p)
		}
	}
}

func TestWriteAtomicEmptyPayload(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "vol")
	if err := WriteAtomic(dir, nil); err != nil {
		t.Fatal(err)
	}
	if got := readTree(t, dir); len(got) != 0 {
		t.Errorf("files = %v, want none", got)
	}
}
