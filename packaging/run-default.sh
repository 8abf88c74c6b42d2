#!/usr/bin/env bash
# `make run`: the embedded default. A local sample directory is the under
# store, mounted at ./mnt through a cache in ./.strata; foreground; Ctrl-C
# unmounts cleanly. Needs root (FUSE mount) or a user allowed to mount FUSE.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
state=.strata
store=$state/sample
mkdir -p "$state" mnt
# The store: the shipped sample files plus a generated 256 MiB file to read.
if [ ! -f "$store/datasets/random-256MiB.bin" ]; then
  mkdir -p "$store"
  cp -r packaging/sample/. "$store/"
  echo "run: generating $store/datasets/random-256MiB.bin"
  head -c $((256 << 20)) /dev/urandom > "$store/datasets/random-256MiB.bin"
fi
# A stale mount from a killed run would make the mount point unusable.
if ! stat mnt >/dev/null 2>&1; then fusermount3 -u mnt 2>/dev/null || umount -l mnt || true; fi
echo "run: serving $store at $top/mnt (Ctrl-C to stop); try: build/agentctl --socket $state/agent.sock stat"
exec build/strata-agent --foreground \
  --mount-point mnt \
  --ufs "file://$top/$store" \
  --cache-dir "$state/cache" \
  --cache-size 1GiB \
  --socket "$state/agent.sock" \
  "$@"
