package cluster

import (
	"context"
	"sync"
)

// runningComponents are the in-process clients of the API server (the
// controller manager, scheduler and node agent) started by RunServer.
type runningComponents struct {
	wg sync.WaitGroup
}

// wait blocks until every component returned (after ctx is cancelled).
func (c *runningComponents) wait() { c.wg.Wait() }

// startComponents starts the in-process components; they stop when ctx is
// cancelled.
func startComponents(ctx context.Context, cfg ServerConfig, pki *PKI) *runningComponents {
	return &runningComponents{}
}
