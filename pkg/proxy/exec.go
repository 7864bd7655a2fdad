package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// ErrToolMissing is wrapped by Executor.Run when the program to run is not
// installed (on the host root, when one is set).
var ErrToolMissing = errors.New("program not installed")

// Executor runs the network tools the proxy drives: iptables-save,
// iptables-restore, iptables, nft, ip and conntrack. It is the seam that
// lets tests replace the kernel with a fake. Implementations must be safe
// for concurrent use.
type Executor interface {
	// Run runs the program name (a bare name such as "nft", looked up in
	// the usual sbin and bin directories) with args, feeding it stdin
	// when stdin is not nil, and returns its standard output. A program
	// that is not installed yields an error wrapping ErrToolMissing; a
	// non-zero exit yields an error whose text includes the program's
	// standard error.
	Run(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error)
}

// ExecOptions configures the Executor NewExecutor returns.
type ExecOptions struct {
	// HostRoot, when not empty, is a directory holding the host's root
	// file system (such as /host in a privileged pod whose image holds
	// only the skiff binary): the tools are looked up and run chrooted
	// into it, so they use the host's binaries, libraries and lock files.
	HostRoot string
	// Netns, when not empty, names a network namespace (as `ip netns`
	// lists it): every tool runs through `ip netns exec <Netns>`. Tests
	// use it to confine the proxy to a namespace of their own.
	Netns string
}

// toolDirs are where the tools are looked up, in order; a fixed list
// rather than $PATH because under HostRoot the caller's $PATH describes
// another file system.
var toolDirs = []string{"/usr/sbin", "/sbin", "/usr/bin", "/bin", "/usr/local/sbin", "/usr/local/bin"}

// NewExecutor returns an Executor that runs the tools as child processes,
// as configured by opts.
func NewExecutor(opts ExecOptions) Executor {
	return &osExecutor{opts: opts}
}

// osExecutor is the Executor of NewExecutor; immutable.
type osExecutor struct {
	opts ExecOptions
}

// lookPath returns the path of name inside the (host) root, or an error
// wrapping ErrToolMissing.
func (e *osExecutor) lookPath(name string) (string, error) {
	for _, dir := range toolDirs {
		p := filepath.Join(dir, name)
		// Lstat: a tool is often an absolute symlink (Debian's
		// /usr/sbin/iptables -> /etc/alternatives/iptables) that only
		// resolves inside the host root; the chrooted exec follows it.
		fi, err := os.Lstat(filepath.Join(e.opts.HostRoot, p))
		if err == nil && (fi.Mode()&os.ModeSymlink != 0 || (fi.Mode().IsRegular() && fi.Mode()&0o111 != 0)) {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: %w (looked in %s under %q)", name, ErrToolMissing, strings.Join(toolDirs, ":"), rootOrSlash(e.opts.HostRoot))
}

func rootOrSlash(root string) string {
	if root == "" {
		return "/"
	}
	return root
}

// Run implements Executor.
func (e *osExecutor) Run(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
	path, err := e.lookPath(name)
	if err != nil {
		return nil, err
	}
	argv := append([]string{path}, args...)
	if e.opts.Netns != "" {
		ipPath, err := e.lookPath("ip")
		if err != nil {
			return nil, err
		}
		argv = append([]string{ipPath, "netns", "exec", e.opts.Netns}, argv...)
	}
	// exec.Cmd with an absolute Path does no lookup in the caller's file
	// system, which matters under Chroot.
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = []string{"PATH=" + strings.Join(toolDirs, ":"), "LC_ALL=C"}
	if e.opts.HostRoot != "" {
		cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: e.opts.HostRoot}
		cmd.Dir = "/"
	}
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.Bytes(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}
