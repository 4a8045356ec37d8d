#!/bin/sh
# Starts the gateway in a container (docker compose, Kubernetes): the same nginx/ tree as the
# local cluster, with the templates filled from the environment instead of by `python -m cluster`.
#
# The configuration is mounted read-only at $NGINX_SOURCE: the repository's nginx/ directory
# (compose), or, since ConfigMaps are flat, its root files there and each subdirectory beside it
# as $NGINX_SOURCE-gateway, -api and -errors (Kubernetes). It is assembled into a writable prefix,
# rendered, and nginx replaces this shell.
set -eu

src=${NGINX_SOURCE:-/etc/quartet/nginx}
prefix=${NGINX_PREFIX:-/tmp/nginx}

# Defaults for one host or one namespace: the services by their DNS names.
: "${GATEWAY_LISTEN:=8080}"
: "${INTERNAL_LISTEN:=8081}"
: "${GATEWAY_RATE:=100r/s}"
: "${GATEWAY_BURST:=50}"
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

# Upstream servers. nginx (1.22 here, 1.27 in compose; neither has open-source `resolve`) looks a
# name in an upstream up once, at load: replicas that `docker compose up --scale` adds later would
# never get traffic, and a name that does not resolve yet stops nginx from starting. So this
# script resolves each service name itself, writes the addresses as `server IP:PORT` lines, and
# (below) re-resolves every $UPSTREAM_REFRESH_S seconds, reloading nginx when a list changed:
# the reload is graceful, old workers finish the requests they have. A `<SERVICE>_SERVERS`
# given in the environment is used as it is and never re-resolved.
: "${UPSTREAM_REFRESH_S:=2}"
SERVICES="counter banner recommender aggregator"
WATCHED=
for service in $SERVICES; do
    var=$(echo "$service" | tr 'a-z' 'A-Z')_SERVERS
    eval "given=\${$var:-}"
    # shellcheck disable=SC2154 # set by the eval above
    if [ -z "$given" ]; then WATCHED="$WATCHED $service"; fi
done

# The server lines for one service name: every IPv4 address it resolves to, sorted, so that an
# unchanged set gives the same text. No address (not started yet, or scaled to 0): one server
# marked down, and nginx answers that route with its JSON 502 until the name resolves.
servers_of() {
    # ahostsv4 lists every address (glibc; musl's getent too); plain `hosts` is the fallback.
    addresses=$({ getent ahostsv4 "$1" || getent hosts "$1"; } 2>/dev/null \
        | awk '$1 ~ /^[0-9.]+$/ {print $1}' | sort -u)
    if [ -z "$addresses" ]; then
        printf 'server 127.0.0.1:%s down;' "$UPSTREAM_PORT"
        return
    fi
    for address in $addresses; do
        printf 'server %s:%s max_fails=3 fail_timeout=5s; ' "$address" "$UPSTREAM_PORT"
    done
}

resolve_upstreams() {
    for service in $WATCHED; do
        var=$(echo "$service" | tr 'a-z' 'A-Z')_SERVERS
        eval "$var=\"\$(servers_of $service)\""
        export "${var?}"
    done
}
resolve_upstreams
for service in $SERVICES; do
    export "$(echo "$service" | tr 'a-z' 'A-Z')_SERVERS"
done

# The template wants directives; the environment gives a comma-separated list of CIDRs.
TRUSTED_PROXIES=$(echo "$TRUSTED_PROXIES" | tr ',' '\n' | sed '/^ *$/d; s/^ *\(.*[^ ]\) *$/set_real_ip_from \1;/')
export GATEWAY_LISTEN INTERNAL_LISTEN GATEWAY_RATE GATEWAY_BURST GATEWAY_CONN TRUSTED_PROXIES \
    METRICS_LOG

# Only ${UPPER_CASE} names are ours: nginx's own $variables must stay. A name the templates use
# that nothing defines is an error, as in the local cluster's renderer.
templates=$(find "$prefix" -name '*.template')
names=$(cat $templates | grep -o '\${[A-Z][A-Z0-9_]*}' | sort -u | tr -d '${}')
for name in $names; do
    eval "defined=\${$name+yes}"
    # shellcheck disable=SC2154 # set by the eval above
    if [ "$defined" != yes ]; then
        echo "container-start: the templates need \$$name, which is not set" >&2
        exit 1
    fi
done
list=$(for name in $names; do printf '${%s} ' "$name"; done)
# The watcher renders the upstreams again: keep their template outside nginx's include paths.
cp "$prefix/upstreams.conf.template" "$prefix/tmp/upstreams.in"
for template in $templates; do
    envsubst "$list" < "$template" > "${template%.template}"
    rm "$template"
done

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
        ;;
esac

if [ -n "$WATCHED" ]; then
    (
        current=$(cat "$prefix/upstreams.conf")
        while sleep "$UPSTREAM_REFRESH_S"; do
            resolve_upstreams
            fresh=$(envsubst "$list" < "$prefix/tmp/upstreams.in")
            [ "$fresh" = "$current" ] && continue
            printf '%s\n' "$fresh" > "$prefix/tmp/upstreams.conf.new"
            mv "$prefix/tmp/upstreams.conf.new" "$prefix/upstreams.conf"
            # On a bad file the master keeps its old configuration; the next change retries.
            if nginx -p "$prefix/" -c "$prefix/nginx.conf" -s reload; then
                echo "container-start: upstreams changed, nginx reloaded:$(echo "$fresh" | grep -o 'server [0-9.:]*' | tr '\n' ',')" >&2
                current=$fresh
            fi
        done
    ) &
fi

exec nginx -p "$prefix/" -c "$prefix/nginx.conf" \
    -g "daemon off; worker_processes $NGINX_WORKER_PROCESSES;"
