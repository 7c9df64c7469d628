#!/usr/bin/env bash
# Makes a self-signed development certificate for the proxy's HTTPS port: valid for
# localhost, tracker.localhost, auth.localhost, *.localhost and 127.0.0.1, for 90
# days, an ECDSA P-256 key. Written to certs/dev.pem and certs/dev.key (git-ignored; never commit a key). Browsers warn
# about it, as they should: for a real deployment use your own certificate files
# (docs/proxy.md#https).
#
# Usage: docker/dev-certificate.sh [DIR]   (default: certs)
set -euo pipefail
dir=${1:-certs}
mkdir -p "$dir"
if [[ -s $dir/dev.pem && -s $dir/dev.key ]]; then
  echo "$dir/dev.pem and $dir/dev.key exist already; delete them for new ones"
  exit 0
fi
umask 077
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 90 \
  -subj "/CN=localhost" \
  -addext "subjectAltName=DNS:localhost,DNS:tracker.localhost,DNS:auth.localhost,DNS:*.localhost,IP:127.0.0.1" \
  -keyout "$dir/dev.key" -out "$dir/dev.pem" 2>/dev/null
chmod 644 "$dir/dev.pem"
echo "wrote $dir/dev.pem and $dir/dev.key (development only)"
