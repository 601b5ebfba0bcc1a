#!/usr/bin/env bash
# npm test: typecheck, then every unit and integration test in one node:test run against a throwaway
# stack (Temporal dev server, MinIO, Postgres on free ports) that with-stack starts and removes.
set -euo pipefail
cd "$(dirname "$0")/.."
# Debian packages the suite drives (never downloaded binaries); installed once when missing.
apt_install() { # package, why
  echo "[qcflow] installing $1 (Debian) $2…" >&2
  local sudo=; [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq >&2 && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$1" >&2
}
command -v docker-compose >/dev/null 2>&1 || apt_install docker-compose 'to validate docker-compose.temporal.yml'
# The review page's browser test drives Debian's Chromium.
[ -x /usr/bin/chromium ] || [ -n "${QCFLOW_CHROMIUM:-}" ] || apt_install chromium "for the review page's browser test"
# Quantized models are checked on an AVX2-only CPU emulated by QEMU (quantize-other-cpu.test.ts).
[ -x /usr/bin/qemu-x86_64 ] || [ -n "${QCFLOW_QEMU:-}" ] || apt_install qemu-user 'to run quantized models on an emulated AVX2-only CPU'
# A voice-activity model is quantized and judged on recorded speech: the voices alsa-utils ships.
[ -f /usr/share/sounds/alsa/Front_Center.wav ] || [ -n "${QCFLOW_SPEECH_DIR:-}" ] || apt_install alsa-utils 'for recorded speech to judge a quantized voice-activity model on'
# …and on emulated ARM CPUs, with Node's linux-arm64 build (npm) and Debian's arm64 libc (unpacked, cached).
QCFLOW_ARM64_DIR=${QCFLOW_ARM64_DIR:-$(bash scripts/arm64-node.sh)}
export QCFLOW_ARM64_DIR
# Workflow tests run Temporal's time-skipping test server from Maven Central (test/workflows/time-skipping.ts).
command -v java >/dev/null 2>&1 || apt_install default-jdk-headless "for Temporal's time-skipping test server"
command -v mvn >/dev/null 2>&1 || apt_install maven "to fetch Temporal's time-skipping test server"
echo "[qcflow] typecheck" >&2
npx --no-install tsc --noEmit
echo "[qcflow] lint" >&2
npx --no-install eslint src activities workflows workers bench test scripts
export QCFLOW_LOG_LEVEL=${QCFLOW_LOG_LEVEL:-warn}
[ $# -gt 0 ] || set -- test/unit/*.test.ts test/workflows/*.test.ts test/integration/*.test.ts
exec node --import tsx src/infra/with-stack.ts -- node --import tsx --test --test-concurrency=1 --test-reporter=spec "$@"
