// Command etcd is a minimal standalone etcd server built from
// go.etcd.io/etcd (the version Skiff embeds), used by tests that need an
// external etcd process. Debian's etcd-server (3.4.23) predates the fix for
// watch progress notifications overtaking events (etcd 3.4.25/3.5.8), which
// makes watch caches relist; a current etcd does not.
package main

import (
	"flag"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"syscall"

	"go.etcd.io/etcd/server/v3/embed"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "etcd:", err)
		os.Exit(1)
	}
}

func run() error {
	cfg := embed.NewConfig()
	var client, advertise, peer, advertisePeer string
	flag.StringVar(&cfg.Name, "name", "default", "member name")
	flag.StringVar(&cfg.Dir, "data-dir", "", "data directory (required)")
	flag.StringVar(&client, "listen-client-urls", "http://127.0.0.1:2379", "client URL")
	flag.StringVar(&advertise, "advertise-client-urls", "", "advertised client URL (default: the listen URL)")
	flag.StringVar(&peer, "listen-peer-urls", "http://127.0.0.1:2380", "peer URL")
	flag.StringVar(&advertisePeer, "initial-advertise-peer-urls", "", "advertised peer URL (default: the listen URL)")
	flag.StringVar(&cfg.InitialCluster, "initial-cluster", "", "name=peerURL,... (default: this member alone)")
	flag.StringVar(&cfg.LogLevel, "log-level", "error", "log level")
	flag.Parse()
	if cfg.Dir == "" {
		return fmt.Errorf("--data-dir is required")
	}
	parse := func(s string) ([]url.URL, error) {
		u, err := url.Parse(s)
		if err != nil {
			return nil, err
		}
		return []url.URL{*u}, nil
	}
	var err error
	if advertise == "" {
		advertise = client
	}
	if advertisePeer == "" {
		advertisePeer = peer
	}
	if cfg.ListenClientUrls, err = parse(client); err != nil {
		return err
	}
	if cfg.AdvertiseClientUrls, err = parse(advertise); err != nil {
		return err
	}
	if cfg.ListenPeerUrls, err = parse(peer); err != nil {
		return err
	}
	if cfg.AdvertisePeerUrls, err = parse(advertisePeer); err != nil {
		return err
	}
	if cfg.InitialCluster == "" {
		cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	}
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return err
	}
	defer e.Close()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		return err
	}
	select {
	case <-sigs:
		return nil
	case err := <-e.Err():
		return err
	}
}
