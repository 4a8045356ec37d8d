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

for service in counter banner recommender aggregator; do
    var=$(echo "$service" | tr 'a-z' 'A-Z')_SERVERS
    eval "current=\${$var:-}"
    # shellcheck disable=SC2154 # set by the eval above
    if [ -z "$current" ]; then
        eval "$var=\"server $service:$UPSTREAM_PORT max_fails=3 fail_timeout=5s;\""
    fi
    export "${var?}"
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

exec nginx -p "$prefix/" -c "$prefix/nginx.conf" \
    -g "daemon off; worker_processes $NGINX_WORKER_PROCESSES;"
