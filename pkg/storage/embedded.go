package storage

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.etcd.io/etcd/server/v3/etcdserver/api/v3client"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// maxUnixSocketPath leaves room under the kernel's 108-byte sun_path limit.
const maxUnixSocketPath = 100

// EmbeddedConfig configures an in-process etcd member. The zero value except
// DataDir starts a private single-member cluster.
type EmbeddedConfig struct {
	// DataDir holds etcd's data (created with mode 0700 if missing). Required.
	DataDir string
	// ClientURL is where etcd serves clients. Default: a unix socket
	// "unix://<DataDir>/etcd.sock", reachable only by the data directory's
	// owner (etcd serves it without TLS) and free of port clashes so tests
	// run in parallel; a free 127.0.0.1 port if that path is too long.
	ClientURL string
	// PeerURL is where etcd talks to other members. Default: a unix socket
	// "unix://<DataDir>/peer.sock" (a single member never dials it); set a
	// routable URL for a cluster.
	PeerURL string
	// Name is the member name; default "skiff".
	Name string
	// InitialCluster ("name=peerURL,...") and ClusterState ("new" or
	// "existing") form multi-member clusters; empty means a cluster of
	// this member only.
	InitialCluster string
	ClusterState   string
	// Logger receives etcd's logs; nil means warnings and errors as JSON on
	// stderr (etcd is chatty at info level).
	Logger *zap.Logger
}

// Embedded is a running in-process etcd member with a client connected to it.
type Embedded struct {
	etcd      *embed.Etcd
	client    *clientv3.Client
	endpoints []string
	level     zap.AtomicLevel // of the default logger
}

// StartEmbedded starts an etcd member and returns once it serves requests,
// ctx is done, or etcd fails. fsync stays on: a crash must not lose
// acknowledged writes. Close the result to stop etcd.
func StartEmbedded(ctx context.Context, cfg EmbeddedConfig) (*Embedded, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("start embedded etcd: DataDir is required")
	}
	dataDir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("start embedded etcd: %w", err)
	}
	clientURL, err := defaultURL(cfg.ClientURL, filepath.Join(dataDir, "etcd.sock"))
	if err != nil {
		return nil, fmt.Errorf("start embedded etcd: client URL: %w", err)
	}
	peerURL, err := defaultURL(cfg.PeerURL, filepath.Join(dataDir, "peer.sock"))
	if err != nil {
		return nil, fmt.Errorf("start embedded etcd: peer URL: %w", err)
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("start embedded etcd: %w", err)
	}
	logger, level := cfg.Logger, zap.NewAtomicLevelAt(zap.ErrorLevel)
	if logger == nil {
		zc := zap.NewProductionConfig()
		zc.Level = level
		zc.DisableStacktrace = true
		if logger, err = zc.Build(zap.WrapCore(func(c zapcore.Core) zapcore.Core { return benignFilter{c} })); err != nil {
			return nil, fmt.Errorf("start embedded etcd: logger: %w", err)
		}
	}

	ec := embed.NewConfig()
	ec.Dir = dataDir
	ec.Name = "skiff"
	if cfg.Name != "" {
		ec.Name = cfg.Name
	}
	ec.ListenClientUrls = []url.URL{*clientURL}
	ec.AdvertiseClientUrls = []url.URL{*clientURL}
	ec.ListenPeerUrls = []url.URL{*peerURL}
	ec.AdvertisePeerUrls = []url.URL{*peerURL}
	ec.InitialCluster = ec.InitialClusterFromName(ec.Name)
	if cfg.InitialCluster != "" {
		ec.InitialCluster = cfg.InitialCluster
	}
	if cfg.ClusterState != "" {
		ec.ClusterState = cfg.ClusterState
	}
	if cfg.InitialCluster == "" {
		// A lone member still waits out a randomized election timeout
		// before leading: with etcd's 100ms/1s defaults that is up to a
		// second of every start. Heartbeats to no peers cost nothing, so
		// tick fast; clusters keep the network-friendly defaults.
		ec.TickMs, ec.ElectionMs = 10, 100
	}
	ec.LogLevel = "warn"
	ec.ZapLoggerBuilder = embed.NewZapLoggerBuilder(logger)
	// Skiff compacts through Store.Run, and nothing uses etcd's HTTP gateway.
	ec.EnableGRPCGateway = false

	e, err := embed.StartEtcd(ec)
	if err != nil {
		return nil, fmt.Errorf("start embedded etcd in %s: %w", dataDir, err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("embedded etcd failed while starting: %w", err)
	case <-ctx.Done():
		e.Close()
		return nil, fmt.Errorf("start embedded etcd: %w", ctx.Err())
	}
	endpoints := []string{clientURL.String()}
	if clientURL.Scheme != "unix" {
		// Report the bound address (the configured port may be 0).
		endpoints = []string{"http://" + e.Clients[0].Addr().String()}
	}
	// The in-process client calls the etcd server's gRPC handlers directly:
	// no socket, no HTTP/2 framing, no protobuf round trip for each request
	// the API server makes. Endpoints stay served for other tools.
	client := v3client.New(e.Server)
	return &Embedded{etcd: e, client: client, endpoints: endpoints, level: level}, nil
}

// defaultURL parses configured, or returns a unix socket URL for socketPath,
// or a free loopback port when socketPath is too long for a socket.
func defaultURL(configured, socketPath string) (*url.URL, error) {
	if configured != "" {
		return url.Parse(configured)
	}
	if len(socketPath) <= maxUnixSocketPath {
		return &url.URL{Scheme: "unix", Path: socketPath}, nil
	}
	port, err := freeLoopbackPort()
	if err != nil {
		return nil, err
	}
	return &url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", port)}, nil
}

// freeLoopbackPort returns a port that was free a moment ago.
func freeLoopbackPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Client returns a client connected to the member; it is closed by Close.
func (e *Embedded) Client() *clientv3.Client { return e.client }

// Endpoints returns the client URLs, for clients in other processes.
func (e *Embedded) Endpoints() []string { return append([]string(nil), e.endpoints...) }

// Close closes the client and stops etcd, waiting for it to flush.
func (e *Embedded) Close() error {
	err := e.client.Close()
	// etcd reports its listeners closing as errors; on a deliberate stop
	// that is noise.
	e.level.SetLevel(zap.FatalLevel)
	e.etcd.Close()
	if err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("close embedded etcd client: %w", err)
	}
	return nil
}

// benignFilter drops the one error etcd 3.7 logs on every fresh single
// member ("failed to update storage version": the schema is detected a
// moment later), so a healthy start prints nothing.
type benignFilter struct{ zapcore.Core }

func (f benignFilter) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if e.Message == "failed to update storage version" || e.Message == "Failed to detect schema version" {
		return ce
	}
	return f.Core.Check(e, ce)
}

func (f benignFilter) With(fields []zapcore.Field) zapcore.Core {
	return benignFilter{f.Core.With(fields)}
}
