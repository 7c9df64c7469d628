#!/usr/bin/env bash
# Makes the secrets of the Kubernetes deployment, once: strong random values in
# k8s/base/secrets/ (git ignores that folder; nothing there comes from the
# repository), which base/kustomization.yaml's secretGenerator turns into the
# Secrets weaprous-secrets and weaprous-database. Files that exist are kept, so
# running it again changes nothing: `kubectl apply -k k8s/` keeps everyone logged in.
#
#   k8s/generate-secrets.sh           make what is missing
#   k8s/generate-secrets.sh --rotate session_secret|cluster_secret
#                                     replace one secret (docs/security.md: rotation)
#
# Without these files `kubectl kustomize k8s/` fails (no such file): a deployment
# cannot start on values everyone knows. Keep the folder safe (back it up with the
# rest of your cluster's configuration); the database password in it only takes
# effect when the postgres volume is new.
set -euo pipefail
cd "$(dirname "$0")/base"
umask 077
mkdir -p secrets

random() { head -c 32 /dev/urandom | od -An -v -tx1 | tr -d ' \n'; }

make() { # FILE CONTENT: written under another name, then moved, unless FILE exists
  local file=secrets/$1
  if [[ -s $file ]]; then return; fi
  printf '%s' "$2" >"$file.tmp"
  mv "$file.tmp" "$file"
  echo "[k8s] made k8s/base/$file" >&2
}

if [[ ${1:-} == --rotate ]]; then
  case ${2:-} in
    session_secret | cluster_secret)
      rm -f "secrets/$2"
      make "$2" "$(random)"
      echo "[k8s] now: kubectl apply -k k8s/ (the pods restart with the new $2)" >&2
      exit 0
      ;;
    *) echo "usage: $0 --rotate session_secret|cluster_secret" >&2; exit 64 ;;
  esac
fi

make session_secret "$(random)"
make cluster_secret "$(random)"
if [[ ! -s secrets/database.env ]]; then
  password=$(random)
  make database.env "$(printf 'POSTGRES_PASSWORD=%s\nWEAPROUS_DATABASE_URL=postgres://weaprous:%s@postgres:5432/weaprous\n' "$password" "$password")"
fi
