package bench

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/skiff-project/skiff/pkg/cluster"
)

// serverProcess is a `skiff server` child process. Its wait goroutine is
// owned by the serverProcess and ends when the process does; stop ends both.
type serverProcess struct {
	cmd     *exec.Cmd
	dataDir string
	port    int
	logPath string
	started time.Time // just before the process was started

	done     chan struct{} // closed once the process exited
	waitErr  error         // set before done is closed
	stopOnce sync.Once
	stopErr  error // set by stopOnce
}

// startServer starts `bin server` on dataDir and port (the server's default
// bind address is 127.0.0.1) without the node agent, its output appended to
// the file dataDir + ".log".
func startServer(bin, dataDir string, port int) (*serverProcess, error) {
	logPath := dataDir + ".log"
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open server log: %w", err)
	}
	defer logFile.Close() // the child has its own copy
	cmd := exec.Command(bin, "server", "--data-dir", dataDir, "--secure-port", strconv.Itoa(port), "--disable-agent")
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	p := &serverProcess{cmd: cmd, dataDir: dataDir, port: port, logPath: logPath, done: make(chan struct{})}
	p.started = time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s server: %w", bin, err)
	}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// stop sends SIGTERM, waits up to grace for the exit, then kills the
// process. It is idempotent and returns the first call's result: nil when
// the server exited on its own terms (even with an error status, since a
// signalled server may report one).
func (p *serverProcess) stop(grace time.Duration) error {
	p.stopOnce.Do(func() {
		select {
		case <-p.done:
			return
		default:
		}
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
			p.stopErr = fmt.Errorf("signal server: %w", err)
		}
		select {
		case <-p.done:
		case <-time.After(grace):
			_ = p.cmd.Process.Kill()
			<-p.done
			p.stopErr = fmt.Errorf("server did not exit within %s of SIGTERM; killed it", grace)
		}
	})
	return p.stopErr
}

// kubeconfigPath is where the server writes its admin kubeconfig.
func (p *serverProcess) kubeconfigPath() string { return cluster.AdminKubeconfigPath(p.dataDir) }

// logTail returns the last lines of the server's log, for error messages.
func (p *serverProcess) logTail() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	lines := bytes.Split(bytes.TrimSpace(b), []byte("\n"))
	return string(bytes.Join(lines[max(0, len(lines)-15):], []byte("\n")))
}

// waitReady polls https://127.0.0.1:<port>/readyz every poll, trusting the
// CA of the server's admin kubeconfig once that file exists (anonymous
// /readyz is allowed, so no client certificate is sent). It returns the
// time from process start to the first 200 response.
func (p *serverProcess) waitReady(ctx context.Context, poll, timeout time.Duration) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	url := fmt.Sprintf("https://%s/readyz", net.JoinHostPort("127.0.0.1", strconv.Itoa(p.port)))
	var client *http.Client
	defer func() {
		if client != nil {
			client.CloseIdleConnections()
		}
	}()
	lastErr := errors.New("admin kubeconfig not written yet")
	tick := time.NewTicker(poll)
	defer tick.Stop()
	for {
		if client == nil {
			if pool, err := kubeconfigCA(p.kubeconfigPath()); err == nil {
				client = &http.Client{
					Timeout:   time.Second,
					Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}},
				}
			}
		}
		if client != nil {
			ok, err := readyz(ctx, client, url)
			if ok {
				return time.Since(p.started), nil
			}
			lastErr = err
		}
		select {
		case <-p.done:
			return 0, fmt.Errorf("server exited before it was ready (%v); log %s ends:\n%s", p.waitErr, p.logPath, p.logTail())
		case <-ctx.Done():
			return 0, fmt.Errorf("server not ready after %s (last: %v); log %s ends:\n%s", timeout, lastErr, p.logPath, p.logTail())
		case <-tick.C:
		}
	}
}

// readyz reports whether GET url answered 200.
func readyz(ctx context.Context, client *http.Client, url string) (bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false, fmt.Errorf("build /readyz request: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false, fmt.Errorf("/readyz: %s", resp.Status)
	}
	return true, nil
}

// kubeconfigCA returns the CA pool of the current cluster of the kubeconfig
// at path.
func kubeconfigCA(path string) (*x509.CertPool, error) {
	cfg, err := clientcmd.LoadFromFile(path)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", path, err)
	}
	restCfg, err := clientcmd.NewDefaultClientConfig(*cfg, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	ca := restCfg.CAData
	if len(ca) == 0 && restCfg.CAFile != "" {
		if ca, err = os.ReadFile(restCfg.CAFile); err != nil {
			return nil, fmt.Errorf("read CA of %s: %w", path, err)
		}
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return nil, fmt.Errorf("%s: no CA certificate", path)
	}
	return pool, nil
}

// restConfig returns the admin client configuration of the server, aimed
// at the port it was started on.
func (p *serverProcess) restConfig() (*rest.Config, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", p.kubeconfigPath())
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", p.kubeconfigPath(), err)
	}
	cfg.Host = "https://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(p.port))
	return cfg, nil
}

// statusKiB returns a memory field of the process, e.g. "VmRSS" (resident
// set size) or "VmHWM" (its peak), from /proc/<pid>/status, in KiB. Linux
// only.
func (p *serverProcess) statusKiB(field string) (int64, error) {
	return procStatusKiB(filepath.Join("/proc", strconv.Itoa(p.cmd.Process.Pid), "status"), field)
}

// procStatusKiB reads the field (e.g. "VmRSS") of a /proc/<pid>/status
// file, whose values are in kB (KiB in fact).
func procStatusKiB(path, field string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", path, err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		name, value, ok := strings.Cut(line, ":")
		if !ok || name != field {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(value), " kB"), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: parse %s %q: %w", path, field, value, err)
		}
		return n, nil
	}
	return 0, fmt.Errorf("%s: no %s field", path, field)
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	addr, ok := l.Addr().(*net.TCPAddr)
	if !ok {
		return 0, fmt.Errorf("find a free port: unexpected address %v", l.Addr())
	}
	return addr.Port, nil
}
