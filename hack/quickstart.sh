#!/usr/bin/env bash
# Install what is missing, build Skiff and start a one-machine cluster.
#
# Usage (as root, from anywhere in the repository):
#   hack/quickstart.sh          install, build, start `skiff server`, wait until ready
#   hack/quickstart.sh stop     stop the server started by this script
#   hack/quickstart.sh status   tell whether it runs
#
# Environment:
#   SKIFF_DATA_DIR     data directory (default /var/lib/skiff)
#   SKIFF_SERVER_ARGS  extra flags for `skiff server`, e.g. "--secure-port 7443"
#   SKIFF_READY_TIMEOUT  seconds to wait for readiness (default 120)
set -euo pipefail

cd "$(dirname "$0")/.."
repo=$(pwd)
export PATH="/usr/local/go/bin:$PATH"

data_dir=${SKIFF_DATA_DIR:-/var/lib/skiff}
bin="$repo/bin/skiff"
pidfile="$data_dir/server.pid"
logfile="$data_dir/server.log"
kubeconfig="$data_dir/admin.kubeconfig"
ready_timeout=${SKIFF_READY_TIMEOUT:-120}

log() { echo "quickstart: $*"; }
die() {
	echo "quickstart: $*" >&2
	exit 1
}

# running_pid prints the server's PID if the pidfile names a live skiff
# process. Checking the command line guards against a stale pidfile whose
# PID now belongs to an unrelated process.
running_pid() {
	[ -f "$pidfile" ] || return 1
	local pid
	pid=$(cat "$pidfile")
	[[ "$pid" =~ ^[0-9]+$ ]] || return 1
	[ -r "/proc/$pid/cmdline" ] || return 1
	tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q 'skiff server' || return 1
	echo "$pid"
}

stop() {
	local pid
	if ! pid=$(running_pid); then
		log "no server running (pidfile $pidfile)"
		rm -f "$pidfile"
		return 0
	fi
	log "stopping skiff server (pid $pid)"
	kill -TERM "$pid"
	for _ in $(seq 1 300); do
		if ! kill -0 "$pid" 2>/dev/null; then
			rm -f "$pidfile"
			log "stopped; data kept in $data_dir (delete it to start from scratch)"
			log "the node's containerd and its pods keep running (a restart re-adopts them);"
			log "remove them with: $bin agent --cleanup --data-dir $data_dir"
			return 0
		fi
		sleep 0.1
	done
	log "still running after 30s; sending SIGKILL"
	kill -KILL "$pid" 2>/dev/null || true
	rm -f "$pidfile"
}

status() {
	local pid
	if pid=$(running_pid); then
		log "skiff server running (pid $pid), log $logfile"
	else
		log "skiff server not running"
		return 1
	fi
}

# wait_ready polls /readyz through kubectl until it answers ok, the server
# exits, or the deadline passes.
wait_ready() {
	local pid=$1 start now
	start=$(date +%s)
	printf 'quickstart: waiting for the API server to be ready '
	while true; do
		if KUBECONFIG="$kubeconfig" "$bin" kubectl get --raw=/readyz --request-timeout=2s >/dev/null 2>&1; then
			now=$(date +%s)
			echo " ready after $((now - start))s"
			return 0
		fi
		if ! kill -0 "$pid" 2>/dev/null; then
			echo
			echo "quickstart: skiff server exited; last lines of $logfile:" >&2
			tail -n 30 "$logfile" >&2 || true
			rm -f "$pidfile"
			return 1
		fi
		now=$(date +%s)
		if ((now - start >= ready_timeout)); then
			echo
			echo "quickstart: not ready after ${ready_timeout}s; last lines of $logfile:" >&2
			tail -n 30 "$logfile" >&2 || true
			echo "quickstart: the server is still running (pid $pid); stop it with: $0 stop" >&2
			return 1
		fi
		printf '.'
		sleep 0.5
	done
}

start() {
	((EUID == 0)) || die "run as root (the server manages containers, networking and $data_dir): sudo $0"

	hack/setup.sh

	log "building bin/skiff (the first build takes a few minutes)"
	make --no-print-directory build

	local pid
	if pid=$(running_pid); then
		log "skiff server already running (pid $pid)"
	else
		mkdir -p "$data_dir"
		chmod 0700 "$data_dir"
		log "starting skiff server --data-dir $data_dir ${SKIFF_SERVER_ARGS:-} (log: $logfile)"
		# setsid: the server gets its own session, so closing this terminal
		# or pressing Ctrl-C in it later does not stop the cluster.
		# shellcheck disable=SC2086 # SKIFF_SERVER_ARGS is a list of flags
		setsid "$bin" server --data-dir "$data_dir" ${SKIFF_SERVER_ARGS:-} >>"$logfile" 2>&1 </dev/null &
		pid=$!
		echo "$pid" >"$pidfile"
	fi
	wait_ready "$pid"

	cat <<EOF

Skiff is running (pid $pid, data in $data_dir, log in $logfile).

Use it with the kubectl built into skiff:
  $bin kubectl get nodes
  $bin kubectl get --raw=/readyz

or with any kubectl:
  export KUBECONFIG=$kubeconfig
  kubectl get nodes

Stop it:
  $0 stop
EOF
}

case "${1:-start}" in
start) start ;;
stop) stop ;;
status) status ;;
*) die "unknown command '$1'; use start, stop or status" ;;
esac
