#!/usr/bin/env bash
# npm test: typecheck, then every unit and integration test in one node:test run against a throwaway
# stack (Temporal dev server, MinIO, Postgres on free ports) that with-stack starts and removes.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v docker-compose >/dev/null 2>&1; then
  echo "[qcflow] installing docker-compose (Debian) to validate docker-compose.temporal.yml…" >&2
  if [ "$(id -u)" = 0 ]; then apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >&2
  else sudo apt-get update -qq >&2 && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >&2; fi
fi
# The review page's browser test drives Debian's Chromium (never a downloaded browser).
if [ ! -x /usr/bin/chromium ] && [ -z "${QCFLOW_CHROMIUM:-}" ]; then
  echo "[qcflow] installing chromium (Debian) for the review page's browser test…" >&2
  if [ "$(id -u)" = 0 ]; then apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >&2
  else sudo apt-get update -qq >&2 && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >&2; fi
fi
echo "[qcflow] typecheck" >&2
npx --no-install tsc --noEmit
export QCFLOW_LOG_LEVEL=${QCFLOW_LOG_LEVEL:-warn}
[ $# -gt 0 ] || set -- test/unit/*.test.ts test/integration/*.test.ts
exec node --import tsx src/infra/with-stack.ts -- node --import tsx --test --test-concurrency=1 --test-reporter=spec "$@"
