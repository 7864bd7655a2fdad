package agent

import (
	"os"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
)

func TestSkiffImageRefIsAValidReference(t *testing.T) {
	for version, want := range map[string]string{
		"v0.3.0":              "skiff.local/skiff:v0.3.0",
		"v0.3.0-4-gabc+dirty": "skiff.local/skiff:v0.3.0-4-gabc-dirty",
		"":                    "skiff.local/skiff:dev",
		".hidden":             "skiff.local/skiff:-hidden",
	} {
		got := SkiffImageRef(version)
		if got != want {
			t.Errorf("SkiffImageRef(%q) = %q, want %q", version, got, want)
		}
		if _, err := name.ParseReference(got, name.StrictValidation); err != nil {
			t.Errorf("SkiffImageRef(%q) = %q does not parse: %v", version, got, err)
		}
	}
}

func TestBinaryFilesOfADynamicBinaryIncludeItsLoader(t *testing.T) {
	// /bin/sh is dynamically linked on Debian: the image of such a binary
	// must carry the loader and libc, or it cannot start.
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("no /bin/sh")
	}
	files, err := binaryFiles("/bin/sh")
	if err != nil {
		t.Fatal(err)
	}
	if files[0].Path != SkiffBinaryPath {
		t.Errorf("first file %q, want the binary at %s", files[0].Path, SkiffBinaryPath)
	}
	var loader, libc bool
	for _, f := range files[1:] {
		switch {
		case f.Path == "/lib64/ld-linux-x86-64.so.2":
			loader = true
		case f.Path == "/lib/x86_64-linux-gnu/libc.so.6" || f.Path == "/usr/lib/x86_64-linux-gnu/libc.so.6":
			libc = true
		}
	}
	if !loader || !libc {
		t.Errorf("files %v lack the loader (%v) or libc (%v)", files, loader, libc)
	}
}
