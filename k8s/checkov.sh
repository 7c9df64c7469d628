#!/usr/bin/env bash
# Checkov (PyPI) on the rendered Kubernetes manifests, offline: renders each
# kustomization (k8s/, k8s/with-jaeger/, k8s/external-database/, k8s/with-tls/,
# k8s/with-prometheus/) and fails on any failed check. The checks the manifests do
# not meet are skipped where they are, by a `checkov.io/skip` annotation on the
# resource that says why (docs/deployment.md: Checkov); nothing is skipped here.
#
#   kubectl kustomize k8s/ > all.yaml && checkov -f all.yaml --framework kubernetes
#
# Checkov is installed in a virtualenv (WEAPROUS_CHECKOV_VENV, default
# /tmp/weaprous-checkov-venv) unless it is on PATH. Rendering as k8s/validate.sh does
# (kubectl kustomize, else kustomize build, else kubectl from PyPI). The secrets the
# manifests need are made first if missing (k8s/generate-secrets.sh: random,
# git-ignored).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${WEAPROUS_CHECKOV_VENV:-/tmp/weaprous-checkov-venv}

if command -v checkov >/dev/null; then
  CHECKOV=checkov
else
  CHECKOV=$VENV/bin/checkov
  if [[ ! -x $CHECKOV ]]; then
    echo "[checkov] installing checkov in $VENV" >&2
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check checkov
  fi
fi
"$CHECKOV" --version >&2

# Rendering (and the secrets it needs) as k8s/validate.sh does: k8s/render.sh.
source k8s/render.sh

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
status=0
for dir in k8s k8s/with-jaeger k8s/external-database k8s/with-tls k8s/with-prometheus; do
  name=${dir//\//-}
  mkdir -p "$work/$name"
  render "$dir/" >"$work/$name/rendered.yaml"
  echo "[checkov] $dir" >&2
  # --skip-download: no call to Prisma Cloud (offline; the checks ship with checkov).
  if ! "$CHECKOV" --quiet --compact --skip-download --framework kubernetes \
    -f "$work/$name/rendered.yaml"; then
    status=1
  fi
done
exit $status
