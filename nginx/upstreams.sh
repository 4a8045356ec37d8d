# Sourced by container-start.sh (POSIX sh: busybox ash in the Alpine image, dash in Debian's).
# The upstream server lists of the container gateway, from DNS, and the loop that keeps them
# current while nginx runs.
#
# Why not nginx itself: nginx looks up a name in an upstream block once, when it loads its
# configuration. A replica that `docker compose up --scale` adds later would never get a request,
# one that is removed would keep getting them, and a name that does not resolve yet would stop
# nginx from starting at all. The `resolve` parameter of an upstream server that re-resolves is
# not in nginx 1.22 (Debian's, the gateway stand-in), and open-source nginx has it only since
# 1.27.3, with a shared zone and a resolver: one configuration serves both images, so the lists
# are made here, from the resolver every program in the container uses.
#
# Expects: $SERVICES (upstreams_in), $UPSTREAM_PORT, $UPSTREAM_REFRESH_S, $prefix, $list (the
# envsubst names, set by render.sh's render_templates),
# and the variable <SERVICE>_SERVERS of every service in $WATCHED.

# The addresses a name resolves to, one a line, sorted: an unchanged set of replicas gives the
# same text, whatever order the resolver returns them in. IPv4 when there is any (a dual-stack
# network would otherwise list each replica twice), else IPv6, bracketed for `server`.
# `ahosts` lists every address (glibc's getent, and musl-utils' in Alpine); an older getent that
# lacks it (exit 1: unknown database) falls back to `hosts`, which may give only the first.
addresses_of() {
    { getent ahosts "$1" 2>/dev/null || [ $? -ne 1 ] || getent hosts "$1" 2>/dev/null; } \
        | awk '
            $1 ~ /^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$/ { v4[$1] = 1; n4 += 1; next }
            $1 ~ /^[0-9a-fA-F:.]*:[0-9a-fA-F:.]*$/ { v6["[" $1 "]"] = 1; n6 += 1 }
            END {
                if (n4) { for (a in v4) print a } else if (n6) { for (a in v6) print a }
            }' | sort
}

# The upstream names of an upstreams template, one a line, in its order.
upstreams_in() {
    awk '$1 == "upstream" { print $2 }' "$1"
}

# The gateway's bound on requests in flight to one instance of a service (Service.gateway_conns).
# BEGIN instance-conns (generated from services/common/description.py by `python -m cluster.generate`)
instance_conns_of() {
    case $1 in
        counter) echo 64 ;;
        banner) echo 64 ;;
        recommender) echo 64 ;;
        aggregator) echo 512 ;;
        *) echo 64 ;;
    esac
}
# END instance-conns

servers_var() {
    echo "$(echo "$1" | tr 'a-z' 'A-Z')_SERVERS"
}

# Sets <SERVICE>_SERVERS for every watched service from a fresh resolution.
# - Addresses: `server IP:PORT max_conns=N max_fails=3 fail_timeout=5s;` each (the service's
#   bound on requests in flight to one instance, instance_conns_of, and the local cluster's
#   passive health).
# - None, and none before either (not started yet: compose's order, a replica set at 0): one
#   server marked down, so nginx starts and answers that route with its JSON 502 until the name
#   resolves. The other routes are served meanwhile.
# - None, but some before: the previous list stays. An empty answer cannot be told apart from a
#   resolver's bad moment (Docker's DNS forwarding, a CoreDNS restart), and turning a serving route
#   into 502s on a hiccup would be worse than keeping addresses that, if the replicas are really
#   gone, refuse connections (nginx answers 502 all the same).
resolve_upstreams() {
    for service in $WATCHED; do
        var=$(servers_var "$service")
        addresses=$(addresses_of "$service")
        if [ -n "$addresses" ]; then
            servers=$(for address in $addresses; do
                printf 'server %s:%s max_conns=%s max_fails=3 fail_timeout=5s; ' \
                    "$address" "$UPSTREAM_PORT" "$(instance_conns_of "$service")"
            done)
            eval "${var}_KEPT="
        else
            eval "servers=\${$var:-} kept=\${${var}_KEPT:-}"
            case $servers in
                "" | *" down;"*)
                    servers="server 127.0.0.1:$UPSTREAM_PORT down;"
                    ;;
                *)
                    # shellcheck disable=SC2154 # set by the eval above
                    if [ -z "$kept" ]; then
                        echo "upstreams: $service resolves to nothing; keeping its servers" >&2
                        eval "${var}_KEPT=yes"
                    fi
                    ;;
            esac
        fi
        eval "$var=\$servers"
        export "${var?}"
    done
}

# The servers of each upstream in a rendered upstreams.conf, for the log: "counter=a,b banner=down".
summary_of() {
    printf '%s\n' "$1" | awk '
        $1 == "upstream" { name = $2; order = order " " name }
        {
            for (i = 1; i < NF; i += 1)
                if ($i == "server" && $(i + 2) != "down;")
                    list[name] = list[name] (list[name] == "" ? "" : ",") $(i + 1)
        }
        END {
            n = split(order, names, " ")
            for (k = 1; k <= n; k += 1)
                printf "%s=%s ", names[k], (names[k] in list) ? list[names[k]] : "down"
        }' | tr -d ';'
}

# Every $UPSTREAM_REFRESH_S seconds, while nginx ($1) runs: resolve, render, and when the text
# changed, check the whole configuration with `nginx -t` and reload (SIGHUP). A reload is
# graceful: new workers take new connections with the new lists; old ones finish the requests
# they hold, close their idle keepalive connections (to removed replicas too) and exit. A
# rejected file is put back and that text is not tried again until DNS answers differently.
watch_upstreams() {
    # A failed step (a full tmpfs, a resolver error) is retried at the next turn: under the start
    # script's `set -e` it would end the loop, and the gateway would silently stop following.
    set +e
    nginx_pid=$1
    current=$(cat "$prefix/upstreams.conf")
    rejected=
    while sleep "$UPSTREAM_REFRESH_S" && kill -0 "$nginx_pid" 2>/dev/null; do
        resolve_upstreams
        fresh=$(envsubst "$list" < "$prefix/tmp/upstreams.in")
        if [ "$fresh" = "$current" ] || [ "$fresh" = "$rejected" ]; then continue; fi
        printf '%s\n' "$fresh" > "$prefix/tmp/upstreams.conf.new"
        mv "$prefix/tmp/upstreams.conf.new" "$prefix/upstreams.conf"
        if nginx -t -q -p "$prefix/" -c "$prefix/nginx.conf" && kill -HUP "$nginx_pid"; then
            echo "upstreams: reloaded: $(summary_of "$fresh")" >&2
            current=$fresh
        else
            printf '%s\n' "$current" > "$prefix/tmp/upstreams.conf.new"
            mv "$prefix/tmp/upstreams.conf.new" "$prefix/upstreams.conf"
            echo "upstreams: the new lists failed nginx -t; nginx keeps the old ones" >&2
            rejected=$fresh
        fi
    done
}
