// Command pause is the infrastructure process of Skiff's pod sandboxes
// (the registry.k8s.io/pause:3.10 image Skiff builds locally). It holds the
// pod's namespaces open: it blocks until SIGINT or SIGTERM and then exits
// 0, and reaps zombies on SIGCHLD because it is PID 1 of pods that share a
// PID namespace. It is built static (CGO_ENABLED=0).
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	if os.Getpid() != 1 {
		os.Stderr.WriteString("Warning: pause should be the first process\n")
	}
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range sigs {
		if s != syscall.SIGCHLD {
			os.Stderr.WriteString("Shutting down, got signal\n")
			os.Exit(0)
		}
		reap()
	}
}

// reap collects every exited child without blocking.
func reap() {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
	}
}
