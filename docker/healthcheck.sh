#!/bin/bash
# healthcheck PORT [PATH]: exits 0 when GET http://127.0.0.1:PORT/PATH (default
# /healthz) answers 200. Bash's /dev/tcp does the request, so the images need no curl.
set -u
port=${1:?usage: healthcheck PORT [PATH]}
path=${2:-/healthz}
exec 3<>"/dev/tcp/127.0.0.1/$port" || exit 1
printf 'GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: weaprous-healthcheck\r\nConnection: close\r\n\r\n' "$path" >&3
IFS= read -r -t 5 status <&3 || { echo "no answer from 127.0.0.1:$port$path" >&2; exit 1; }
case $status in
  "HTTP/1."?" 200 "*) exit 0 ;;
esac
echo "127.0.0.1:$port$path: ${status%$'\r'}" >&2
exit 1
