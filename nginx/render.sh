# Sourced (POSIX sh: busybox ash, dash): the ONE renderer of the gateway's nginx templates, for
# every deployment. container-start.sh calls it in a container (compose, Kubernetes); the local
# cluster runs it too (cluster/gateway.py: `sh -c '. nginx/render.sh && render_templates PREFIX'`
# with the values in the environment), so the two cannot fill the templates differently. It is
# shell and not Python because the gateway's image has no Python.
#
# render_templates PREFIX: every *.template under PREFIX becomes the file without the suffix.
# Expects in the environment: GATEWAY_LISTEN, INTERNAL_LISTEN, GATEWAY_RATE, GATEWAY_BURST,
# GATEWAY_CLAIM_RATE, GATEWAY_CLAIM_BURST, GATEWAY_CONN, METRICS_LOG, GATEWAY_PUBLIC_ADMIN
# (true|false), TRUSTED_PROXIES (comma-separated CIDRs, may be empty), and <SERVICE>_SERVERS
# (`server` lines) for every upstream of upstreams.conf.template. Sets $list, the names envsubst
# replaces (upstreams.sh's watcher renders the upstreams again with it).

# The ${UPPER_CASE} names the given files use: only those are ours, nginx's own $variables stay.
placeholders() {
    cat "$@" | grep -o '\${[A-Z][A-Z0-9_]*}' | sort -u | tr -d '${}'
}

render_templates() {
    render_prefix=$1
    case "${GATEWAY_PUBLIC_ADMIN:-}" in
        true|1|yes) GATEWAY_ADMIN_ROUTES=gateway/admin.conf ;;
        false|0|no|"") GATEWAY_ADMIN_ROUTES=gateway/admin-closed.conf ;;
        *) echo "render: GATEWAY_PUBLIC_ADMIN must be true or false" >&2; return 1 ;;
    esac
    # The template wants directives; the environment gives a comma-separated list of CIDRs.
    TRUSTED_PROXIES=$(echo "${TRUSTED_PROXIES:-}" | tr ',' '\n' \
        | sed '/^ *$/d; s/^ *\(.*[^ ]\) *$/set_real_ip_from \1;/')
    export GATEWAY_ADMIN_ROUTES TRUSTED_PROXIES
    templates=$(find "$render_prefix" -name '*.template' | sort)
    # shellcheck disable=SC2086 # a list of paths without spaces
    names=$(placeholders $templates)
    # A name the templates use that nothing defines is an error, not an empty directive.
    for name in $names; do
        eval "defined=\${$name+yes}"
        # shellcheck disable=SC2154 # set by the eval above
        if [ "$defined" != yes ]; then
            echo "render: the templates need \$$name, which is not set" >&2
            return 1
        fi
        export "${name?}"
    done
    list=$(for name in $names; do printf '${%s} ' "$name"; done)
    for template in $templates; do
        envsubst "$list" < "$template" > "${template%.template}"
        rm "$template"
    done
}
