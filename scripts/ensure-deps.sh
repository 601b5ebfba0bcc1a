#!/usr/bin/env bash
# Installs what qcflow needs and is missing; does nothing when everything is in place (idempotent).
# Servers (Temporal CLI, MinIO) are built with `go install` on first use by the stack itself, into
# ${QCFLOW_BIN_CACHE:-~/.cache/qcflow/bin}; here we only make sure the Node dependencies are installed.
set -euo pipefail
cd "$(dirname "$0")/.."
# onnxruntime-node must not try to download CUDA binaries (no network beyond registries).
export ONNXRUNTIME_NODE_INSTALL=skip
stamp=node_modules/.qcflow-lock-sha
digest() { cat package.json package-lock.json | sha256sum | cut -d' ' -f1; }
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$(digest)" ]; then
  echo "[qcflow] installing npm dependencies…" >&2
  # npm ci never rewrites package-lock.json, so a fresh clone stays clean after `npm run demo`/`npm test`.
  # The lockfile lists every platform's optional packages (regenerate it with `npm install` on a change).
  npm ci --no-audit --no-fund >&2
  digest > "$stamp"
fi
if ! command -v go >/dev/null 2>&1 && [ ! -x /usr/local/go/bin/go ]; then
  cache=${QCFLOW_BIN_CACHE:-$HOME/.cache/qcflow/bin}
  if [ ! -x "$cache/temporal" ] && ! command -v temporal >/dev/null 2>&1; then
    echo "[qcflow] Go is not installed and no temporal binary is available: install Go 1.24+ (apt-get install golang-go or https://go.dev/doc/install), then run again." >&2
    exit 1
  fi
fi
