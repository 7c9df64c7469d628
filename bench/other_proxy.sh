#!/usr/bin/env bash
# other_proxy.sh haproxy|caddy CONFIG PORT [TLS_PORT CERT KEY]: run HAProxy or Caddy in the foreground as a
# candidate of proxy_vs_nginx.sh (beside this file), tuned as an operator would (one thread
# per core, upstream keep-alive and connection reuse, no access log), over the backends
# named by the proxy_pass lines of the generated proxy.conf. Example (HAProxy against nginx):
#   CANDIDATE_CMD="$PWD/other_proxy.sh haproxy {config} {port}" ./proxy_vs_nginx.sh
# Over TLS (HAProxy only; PROTO=https or h2 of proxy_vs_nginx.sh), HTTPS on TLS_PORT too, with
# ALPN h2 and http/1.1:
#   PROTO=h2 CANDIDATE_CMD="$PWD/other_proxy.sh haproxy {config} {port} {tls_port} {cert} {key}" ./proxy_vs_nginx.sh
# Needs Debian's haproxy or caddy.
set -euo pipefail
kind=$1 cfg=$2 port=$3 tls_port=${4:-} cert=${5:-} key=${6:-}
mapfile -t ups < <(sed -n 's#.*proxy_pass[[:space:]]*http://\([^;[:space:]]*\).*#\1#p' "$cfg")
dir=$(dirname "$cfg")
case $kind in
haproxy)
  {
    echo "global"
    echo "    nbthread $(nproc)"
    echo "    maxconn 8000"
    echo "    tune.bufsize 16384"
    echo "defaults"
    echo "    mode http"
    echo "    timeout connect 3s"
    echo "    timeout client 75s"
    echo "    timeout server 60s"
    echo "    timeout http-keep-alive 75s"
    echo "    option http-keep-alive"
    echo "    http-reuse always"
    echo "frontend fe"
    echo "    bind 127.0.0.1:$port"
    if [[ -n $tls_port ]]; then
      cat "$cert" "$key" >"$dir/haproxy.pem"
      echo "    bind 127.0.0.1:$tls_port ssl crt $dir/haproxy.pem alpn h2,http/1.1 ssl-min-ver TLSv1.2"
    fi
    echo "    default_backend be"
    echo "backend be"
    echo "    balance roundrobin"
    i=0; for u in "${ups[@]}"; do i=$((i+1)); echo "    server s$i $u"; done
  } >"$dir/haproxy.cfg"
  exec haproxy -db -f "$dir/haproxy.cfg" ;;
caddy)
  [[ -z $tls_port ]] || { echo "other_proxy.sh: TLS is for haproxy only here" >&2; exit 2; }
  {
    echo "{"
    echo "    admin off"
    echo "    auto_https off"
    echo "}"
    echo "http://127.0.0.1:$port {"
    echo "    reverse_proxy ${ups[*]} {"
    echo "        lb_policy round_robin"
    echo "        transport http {"
    echo "            keepalive 75s"
    echo "            keepalive_idle_conns_per_host 128"
    echo "        }"
    echo "    }"
    echo "}"
  } >"$dir/Caddyfile"
  export HOME=$dir XDG_DATA_HOME=$dir XDG_CONFIG_HOME=$dir
  exec caddy run --adapter caddyfile --config "$dir/Caddyfile" ;;
*) echo "usage: other_proxy.sh haproxy|caddy CONFIG PORT" >&2; exit 2 ;;
esac
