#!/bin/sh
# Starts the gateway in a container (docker compose, Kubernetes): the same nginx/ tree as the
# local cluster, with the templates filled from the environment instead of by `python -m cluster`.
#
# The configuration is mounted read-only at $NGINX_SOURCE: the repository's nginx/ directory
# (compose), or, since ConfigMaps are flat, its root files there and each subdirectory beside it
# as $NGINX_SOURCE-gateway, -api and -errors (Kubernetes). It is assembled into a writable prefix
# and rendered; then this shell starts nginx, keeps its upstreams current (upstreams.sh) and
# passes the container's stop on to it.
set -eu

src=${NGINX_SOURCE:-/etc/quartet/nginx}
prefix=${NGINX_PREFIX:-/tmp/nginx}

# Defaults for one host or one namespace: the services by their DNS names.
: "${GATEWAY_LISTEN:=8080}"
: "${INTERNAL_LISTEN:=8081}"
: "${GATEWAY_RATE:=100r/s}"
: "${GATEWAY_BURST:=50}"
: "${GATEWAY_CLAIM_RATE:=1r/s}"
: "${GATEWAY_CLAIM_BURST:=5}"
# The admin routes on the public listener too only when asked (render.sh).
: "${GATEWAY_PUBLIC_ADMIN:=false}"
: "${GATEWAY_CONN:=10}"
: "${TRUSTED_PROXIES:=}"
: "${UPSTREAM_PORT:=8000}"
: "${METRICS_LOG:=/var/log/gateway/metrics.log}"
: "${METRICS_LOG_MAX_BYTES:=67108864}"
# One worker per CPU the container may use (Kubernetes: the CPU limit, by resourceFieldRef).
: "${NGINX_WORKER_PROCESSES:=auto}"

copy_tree() {
    mkdir -p "$2"
    for entry in "$1"/*; do
        [ -e "$entry" ] || continue
        if [ -d "$entry" ]; then
            copy_tree "$entry" "$2/$(basename "$entry")"
        else
            cp -L "$entry" "$2/"  # ConfigMap files are symlinks into ..data
        fi
    done
}

rm -rf "$prefix"
copy_tree "$src" "$prefix"
for sub in gateway api errors; do
    dest=$sub
    [ "$sub" = errors ] && dest=_errors
    if [ -d "$src-$sub" ]; then copy_tree "$src-$sub" "$prefix/$dest"; fi
done
mkdir -p "$prefix/tmp" "$prefix/logs"

# Upstream servers: each service name resolved here, into `server IP:PORT` lines, and again every
# $UPSTREAM_REFRESH_S seconds while nginx runs (upstreams.sh says why nginx cannot do it). A
# `<SERVICE>_SERVERS` given in the environment is used as it is and never re-resolved (the tests
# run this script on the host against fixed ports); UPSTREAM_REFRESH_S=0 resolves once, at start.
# The services are the upstreams of the template (generated from services/common/description.py).
: "${UPSTREAM_REFRESH_S:=2}"
. "$(dirname "$0")/upstreams.sh"
. "$(dirname "$0")/render.sh"
SERVICES=$(upstreams_in "$prefix/upstreams.conf.template")
WATCHED=
for service in $SERVICES; do
    var=$(servers_var "$service")
    eval "given=\${$var:-}"
    # shellcheck disable=SC2154 # set by the eval above
    if [ -z "$given" ]; then WATCHED="$WATCHED $service"; fi
    export "${var?}"
done
resolve_upstreams

export GATEWAY_LISTEN INTERNAL_LISTEN GATEWAY_RATE GATEWAY_BURST GATEWAY_CONN TRUSTED_PROXIES \
    METRICS_LOG GATEWAY_CLAIM_RATE GATEWAY_CLAIM_BURST GATEWAY_PUBLIC_ADMIN
# The watcher renders the upstreams again: keep their template outside nginx's include paths.
cp "$prefix/upstreams.conf.template" "$prefix/tmp/upstreams.in"
render_templates "$prefix"
echo "upstreams: started: $(summary_of "$(cat "$prefix/upstreams.conf")")" >&2

helpers=  # the background loops, stopped when nginx has exited
case $METRICS_LOG in
    /*)
        # Nothing rotates a container's file: past the cap it is truncated in place (nginx
        # appends, mtail follows truncation), losing at most the lines mtail had not yet read.
        mkdir -p "$(dirname "$METRICS_LOG")"
        : > "$METRICS_LOG"
        (
            while sleep 30; do
                size=$(wc -c < "$METRICS_LOG" 2>/dev/null || echo 0)
                if [ "$size" -gt "$METRICS_LOG_MAX_BYTES" ]; then : > "$METRICS_LOG"; fi
            done
        ) &
        helpers="$helpers $!"
        ;;
esac

# nginx runs as this shell's child, not in its place: the shell stays to reap the loops above and
# below and to turn every stop into a graceful one. `docker stop` sends the image's STOPSIGNAL
# (SIGQUIT in both images), Kubernetes' kubelet SIGTERM, Ctrl-C SIGINT; nginx treats TERM and INT
# as a fast shutdown that cuts the requests in flight, QUIT as a graceful one (stop accepting,
# finish them, close idle connections). So each of them becomes QUIT. HUP (reload) and USR1
# (reopen the logs) are passed on as they are.
nginx -p "$prefix/" -c "$prefix/nginx.conf" \
    -g "daemon off; worker_processes $NGINX_WORKER_PROCESSES;" &
nginx_pid=$!
trap 'kill -QUIT "$nginx_pid" 2>/dev/null || :' TERM INT QUIT
trap 'kill -HUP "$nginx_pid" 2>/dev/null || :' HUP
trap 'kill -USR1 "$nginx_pid" 2>/dev/null || :' USR1

if [ -n "$WATCHED" ] && [ "$UPSTREAM_REFRESH_S" != 0 ]; then
    watch_upstreams "$nginx_pid" &
    helpers="$helpers $!"
fi

# A trapped signal ends `wait` early (status > 128) while nginx is still quitting: wait again
# until it has exited, and exit with its status.
while :; do
    if wait "$nginx_pid"; then status=0; else status=$?; fi
    kill -0 "$nginx_pid" 2>/dev/null || break
done
# shellcheck disable=SC2086 # a list of pids
kill $helpers 2>/dev/null || :
exit "$status"
