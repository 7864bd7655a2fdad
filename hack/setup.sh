#!/usr/bin/env bash
# Prepare a Debian 12 host for building, running and testing Skiff.
#
# Idempotent: on a machine that already has everything it only runs
# dpkg-query and `go version` (no network). Installing needs root.
#
# Installs what is missing of:
#   containerd runc containernetworking-plugins busybox-static  -- real pods (CRI)
#   iptables nftables conntrack                                 -- the service proxy
#   curl make                                                   -- scripts, `make test`
#   etcd-server                                                 -- external-etcd tests
#   docker-registry                                             -- image pull tests
# and checks that Go >= 1.26 is installed at /usr/local/go.
set -euo pipefail

packages=(containerd runc containernetworking-plugins busybox-static iptables nftables conntrack curl make etcd-server docker-registry)
go_min_major=1
go_min_minor=26

log() { echo "setup: $*"; }

installed() {
	dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed$'
}

missing=()
for p in "${packages[@]}"; do
	installed "$p" || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
	log "all packages present (${packages[*]})"
else
	log "missing packages: ${missing[*]}"
	if ((EUID != 0)); then
		echo "setup: installing packages needs root; run: sudo $0" >&2
		exit 1
	fi
	export DEBIAN_FRONTEND=noninteractive
	# Refresh the package index only when apt does not know a package yet:
	# a warm index makes the install offline-fast and avoids needless traffic.
	need_update=false
	for p in "${missing[@]}"; do
		if ! apt-cache show "$p" >/dev/null 2>&1; then
			need_update=true
			break
		fi
	done
	if $need_update; then
		log "apt-get update"
		apt-get update -q
	fi
	log "apt-get install ${missing[*]}"
	# Installation may be retried once with a fresh index: a stale index can
	# point at package versions the mirror no longer serves.
	if ! apt-get install -y -q --no-install-recommends "${missing[@]}"; then
		log "install failed; refreshing the package index and retrying"
		apt-get update -q
		apt-get install -y -q --no-install-recommends "${missing[@]}"
	fi
	# A distro etcd started by its package would hold 127.0.0.1:2379, which
	# the embedded etcd and the external-etcd tests need. Only undo what this
	# run installed; an etcd the admin set up before is left alone.
	if [[ " ${missing[*]} " == *" etcd-server "* ]] && [ -d /run/systemd/system ]; then
		log "disabling the etcd.service that etcd-server started (Skiff runs its own etcd)"
		systemctl disable --now etcd.service || true
	fi
	# Likewise docker-registry.service would hold :5000; the tests run their
	# own registries.
	if [[ " ${missing[*]} " == *" docker-registry "* ]] && [ -d /run/systemd/system ]; then
		log "disabling the docker-registry.service its package started"
		systemctl disable --now docker-registry.service || true
	fi
	log "packages installed"
fi

# Go: Debian 12's golang is too old for this module; use the upstream
# toolchain in /usr/local/go.
export PATH="/usr/local/go/bin:$PATH"
if ! command -v go >/dev/null 2>&1; then
	cat >&2 <<EOF
setup: Go is not installed. Install Go >= ${go_min_major}.${go_min_minor} from https://go.dev/dl/ into /usr/local/go, e.g.
  curl -fsSL https://go.dev/dl/go1.26.8.linux-amd64.tar.gz | sudo tar -C /usr/local -xz
EOF
	exit 1
fi
go_version=$(go env GOVERSION) # e.g. go1.26.8
if [[ ! "$go_version" =~ ^go([0-9]+)\.([0-9]+) ]]; then
	echo "setup: cannot parse Go version '$go_version'" >&2
	exit 1
fi
major=${BASH_REMATCH[1]} minor=${BASH_REMATCH[2]}
if ((major < go_min_major || (major == go_min_major && minor < go_min_minor))); then
	echo "setup: $(command -v go) is $go_version; Skiff needs Go >= ${go_min_major}.${go_min_minor} (install it from https://go.dev/dl/ into /usr/local/go)" >&2
	exit 1
fi
log "go: $go_version at $(command -v go)"
log "done"
