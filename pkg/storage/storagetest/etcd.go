// Package storagetest holds the conformance suite for package storage and the
// helpers to run it against real etcd servers. It is imported by tests only.
package storagetest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// BuildEtcd builds the project's standalone etcd (test/etcd: go.etcd.io/etcd
// at the version Skiff embeds) into dir and returns its path. Debian's
// etcd-server 3.4.23 is not used: it predates the fix for progress
// notifications overtaking watch events (etcd 3.4.25/3.5.8).
func BuildEtcd(t testing.TB, dir string) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..", "..")
	bin := filepath.Join(dir, "etcd")
	cmd := exec.Command("go", "build", "-o", bin, "./test/etcd")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build test/etcd: %v\n%s", err, out)
	}
	return bin
}

// StartEtcdProcess starts an etcd server (BuildEtcd) as a child process on
// free 127.0.0.1 ports with a temporary data directory, waits until it
// serves, and returns a client. The process is killed and the client closed
// when the test ends.
func StartEtcdProcess(t testing.TB) *clientv3.Client {
	t.Helper()
	dir := t.TempDir()
	etcdBinary := BuildEtcd(t, dir)
	clientPort, peerPort := freePort(t), freePort(t)
	clientURL := fmt.Sprintf("http://127.0.0.1:%d", clientPort)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", peerPort)
	logPath := filepath.Join(dir, "etcd.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatalf("create etcd log: %v", err)
	}
	cmd := exec.Command(etcdBinary,
		"--name", "test",
		"--data-dir", filepath.Join(dir, "data"),
		"--listen-client-urls", clientURL,
		"--advertise-client-urls", clientURL,
		"--listen-peer-urls", peerURL,
		"--initial-advertise-peer-urls", peerURL,
		"--initial-cluster", "test="+peerURL,
		"--log-level", "warn",
	)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		t.Fatalf("start %s: %v", etcdBinary, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
		}
		<-exited
		logFile.Close()
		if t.Failed() {
			if data, err := os.ReadFile(logPath); err == nil {
				t.Logf("etcd log:\n%s", data)
			}
		}
	})

	client, err := clientv3.New(clientv3.Config{Endpoints: []string{clientURL}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("etcd client: %v", err)
	}
	t.Cleanup(func() { client.Close() })
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := client.Get(ctx, "health")
		cancel()
		if err == nil {
			return client
		}
		select {
		case exitErr := <-exited:
			exited <- exitErr // for the cleanup
			t.Fatalf("etcd exited while starting: %v", exitErr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("etcd not ready after 30s: %v", err)
		}
		time.Sleep(50 * time.Millisecond) // polling interval, not synchronisation
	}
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
