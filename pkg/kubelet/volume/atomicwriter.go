package volume

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// dataDirName is the symlink naming the current timestamped data directory
// of an atomically written volume, as upstream spells it.
const (
	dataDirName    = "..data"
	newDataDirName = "..data_tmp"
)

// FileProjection is the content and mode of one file of a payload.
type FileProjection struct {
	Data []byte
	Mode os.FileMode
}

// WriteAtomic makes dir hold exactly payload (relative paths to files),
// the way upstream's AtomicWriter does, so that a container sees either
// the old or the new set of files, never a mix:
//
//	dir/..2006_01_02_15_04_05.NNNN/<path>   the files, in a fresh directory
//	dir/..data -> ..2006_01_02_15_04_05.NNNN
//	dir/<first path element> -> ..data/<first path element>
//
// The ..data symlink is swapped with a rename, which is atomic, and the
// previous data directory is removed afterwards. A payload equal to the
// current content changes nothing. Paths must be relative, clean and must
// not start with "..". dir is created (0755) if missing.
func WriteAtomic(dir string, payload map[string]FileProjection) error {
	for p := range payload {
		if err := validatePath(p); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	oldTS, err := os.Readlink(filepath.Join(dir, dataDirName))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("reading %s: %w", dataDirName, err)
	}
	if oldTS != "" {
		same, err := sameContent(filepath.Join(dir, oldTS), payload)
		if err != nil {
			return err
		}
		if same {
			return nil
		}
	}

	tsDir, err := os.MkdirTemp(dir, time.Now().UTC().Format("..2006_01_02_15_04_05."))
	if err != nil {
		return fmt.Errorf("creating data directory in %s: %w", dir, err)
	}
	if err := os.Chmod(tsDir, 0o755); err != nil {
		return errors.Join(fmt.Errorf("setting mode of %s: %w", tsDir, err), os.RemoveAll(tsDir))
	}
	if err := writePayload(tsDir, payload); err != nil {
		return errors.Join(err, os.RemoveAll(tsDir))
	}
	tmpLink := filepath.Join(dir, newDataDirName)
	if err := os.Remove(tmpLink); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return errors.Join(fmt.Errorf("removing %s: %w", tmpLink, err), os.RemoveAll(tsDir))
	}
	if err := os.Symlink(filepath.Base(tsDir), tmpLink); err != nil {
		return errors.Join(fmt.Errorf("linking %s: %w", tmpLink, err), os.RemoveAll(tsDir))
	}
	if err := os.Rename(tmpLink, filepath.Join(dir, dataDirName)); err != nil {
		return errors.Join(fmt.Errorf("swapping %s: %w", dataDirName, err), os.Remove(tmpLink), os.RemoveAll(tsDir))
	}
	if err := syncUserLinks(dir, payload); err != nil {
		return err
	}
	if oldTS != "" {
		if err := os.RemoveAll(filepath.Join(dir, oldTS)); err != nil {
			return fmt.Errorf("removing old data directory: %w", err)
		}
	}
	return nil
}

// validatePath rejects payload paths that could escape the volume, as
// upstream's validatePath does.
func validatePath(p string) error {
	switch {
	case p == "":
		return errors.New("invalid path: empty")
	case filepath.IsAbs(p):
		return fmt.Errorf("invalid path %q: must be relative", p)
	case strings.HasPrefix(p, ".."):
		return fmt.Errorf("invalid path %q: must not start with '..'", p)
	}
	for _, e := range strings.Split(p, "/") {
		if e == ".." || e == "" || e == "." {
			return fmt.Errorf("invalid path %q: must be clean and not contain '..'", p)
		}
	}
	return nil
}

// sameContent reports whether tsDir holds exactly payload, modes included.
func sameContent(tsDir string, payload map[string]FileProjection) (bool, error) {
	n := 0
	err := filepath.WalkDir(tsDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		n++
		rel, err := filepath.Rel(tsDir, path)
		if err != nil {
			return err
		}
		want, ok := payload[rel]
		if !ok {
			return errStop
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		got, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if info.Mode().Perm() != want.Mode.Perm() || !bytes.Equal(got, want.Data) {
			return errStop
		}
		return nil
	})
	switch {
	case errors.Is(err, errStop):
		return false, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("comparing %s: %w", tsDir, err)
	}
	return n == len(payload), nil
}

var errStop = errors.New("stop walking")

// writePayload writes every file of payload under tsDir.
func writePayload(tsDir string, payload map[string]FileProjection) error {
	for p, f := range payload {
		full := filepath.Join(tsDir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return fmt.Errorf("creating directory of %s: %w", p, err)
		}
		if err := os.WriteFile(full, f.Data, f.Mode.Perm()); err != nil {
			return fmt.Errorf("writing %s: %w", p, err)
		}
		// WriteFile's mode is subject to the umask.
		if err := os.Chmod(full, f.Mode.Perm()); err != nil {
			return fmt.Errorf("setting mode of %s: %w", p, err)
		}
	}
	return nil
}

// syncUserLinks points dir/<first element> at ..data/<first element> for
// every path of payload and removes the links no path needs any more.
func syncUserLinks(dir string, payload map[string]FileProjection) error {
	want := map[string]bool{}
	for p := range payload {
		want[strings.SplitN(p, "/", 2)[0]] = true
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("reading %s: %w", dir, err)
	}
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, "..") || want[name] || e.Type()&fs.ModeSymlink == 0 {
			continue
		}
		if err := os.Remove(filepath.Join(dir, name)); err != nil {
			return fmt.Errorf("removing stale link %s: %w", name, err)
		}
	}
	for name := range want {
		link := filepath.Join(dir, name)
		target := filepath.Join(dataDirName, name)
		if got, err := os.Readlink(link); err == nil && got == target {
			continue
		}
		if err := os.Symlink(target, link); err != nil {
			return fmt.Errorf("linking %s: %w", name, err)
		}
	}
	return nil
}
