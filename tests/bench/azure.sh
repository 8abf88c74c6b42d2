#!/usr/bin/env bash
# Azure Blob rows of `make bench`: Strata's mount over Azurite (in memory,
# on 127.0.0.1) against plain curl on the same blob, round by round:
#   cold read    a blob not in the cache, read through the mount (dd 1 MiB)
#                vs one curl GET of it (SAS URL)
#   warm read    the same read again, from the cache, vs the same curl GET
#   write        cp of a new file into the mount (through mode: done when
#                the blob is in Azurite) vs a curl Put Blob of the same bytes
#   SDK          the official Azure SDK for JavaScript on the same blob:
#                a parallel ranged download (4 MiB, 4 at once) and a
#                parallel block upload (16 MiB, 4 at once), what its
#                downloadToFile / uploadFile do
#   rclone       rclone mount (Debian's rclone, azureblob backend, no VFS
#                cache) reading the blob cold: the one Azure FUSE peer that
#                runs here (blobfuse2 is not in Debian)
# Needs root (mounts, drop_caches).
set -euo pipefail
build=${1:-build}
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
rounds=${ROUNDS:-5}
mib=${AZURE_MIB:-512}
work=$(mktemp -d /tmp/strata-az-XXXXXX)
port=$((20000 + RANDOM % 10000))
ep=http://127.0.0.1:$port/devstoreaccount1
source tests/bench/lib.sh
key='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='
azop() { node tests/azure/azop.js "$ep" "$@"; }

echo "bench: azure, $rounds rounds, ${mib} MiB blobs"
mkdir -p "$work/mnt" "$work/rmnt" "$work/cache" "$work/pol"
tests/azure/node_modules/.bin/azurite-blob --blobHost 127.0.0.1 --blobPort "$port" --inMemoryPersistence \
  --silent --skipApiVersionCheck >"$work/azurite.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$port" && break; sleep 0.1; done
azop mb bench
head -c $((mib << 20)) /dev/urandom > "$work/blob.bin"
want=$(sha256sum < "$work/blob.bin" | cut -d' ' -f1)
azop put bench r.bin "$work/blob.bin"
AZURE_STORAGE_ACCOUNT=devstoreaccount1 AZURE_STORAGE_KEY=$key "$build/strata-agent" -f --mount-point "$work/mnt" \
  --ufs az://bench --azure-endpoint "$ep" --cache-dir "$work/cache" --cache-size $((mib * 2 + 1024))MiB \
  --socket "$work/sock" --policy-dir "$work/pol" >>"$work/agent.log" 2>&1 &
pids+=($!); mounts+=("$work/mnt"); wait_mount "$work/mnt"
# rclone 1.60 takes no endpoint with a port for azureblob; a SAS URL names it.
sas=$(azop container-sas bench rl)
rclone mount ":azureblob,sas_url='$ep/bench?$sas':bench" "$work/rmnt" \
  --vfs-cache-mode off --read-only >"$work/rclone.log" 2>&1 &
pids+=($!); mounts+=("$work/rmnt"); wait_mount "$work/rmnt"

curl_get() {  # URL -> MiB/s (and checks the bytes once)
  local t0 t1
  t0=$(now); curl -sf -o "$work/got" "$1"; t1=$(now)
  [ "$(sha256sum < "$work/got" | cut -d' ' -f1)" = "$want" ] || { echo "bench: curl got other bytes" >&2; exit 1; }
  rm -f "$work/got"
  rate $((mib << 20)) "$t0" "$t1"
}
cold=() warm=() wr=() rc=() cr=() wr_r=() cold_r=() warm_r=() rcl_r=() cg=() sdkg=() sdkp=() sdkg_r=() sdkp_r=()
ctl() { "$build/agentctl" --socket "$work/sock" "$@"; }
url=$(azop sas bench r.bin)
for r in $(seq 1 "$rounds"); do
  ctl evict r.bin >/dev/null
  drop
  c=$(read_rate "$work/mnt/r.bin")
  drop
  [ "$(sha256sum < "$work/mnt/r.bin" | cut -d' ' -f1)" = "$want" ] || { echo "bench: the mount returned other bytes" >&2; exit 1; }
  drop
  g=$(curl_get "$url")
  drop
  w=$(read_rate "$work/mnt/r.bin")
  drop
  rr=$(read_rate "$work/rmnt/r.bin")
  drop
  t0=$(now); azop get-ranges bench r.bin "$work/got"; t1=$(now); rm -f "$work/got"
  sg=$(rate $((mib << 20)) "$t0" "$t1")
  # Writes: a new blob through the mount (through mode) and by curl.
  t0=$(now); cp "$work/blob.bin" "$work/mnt/w$r.bin"; t1=$(now)
  m=$(rate $((mib << 20)) "$t0" "$t1")
  purl=$(azop sas bench "p$r.bin")
  t0=$(now); curl -sf -X PUT -T "$work/blob.bin" -H "x-ms-blob-type: BlockBlob" "$purl" >/dev/null; t1=$(now)
  p=$(rate $((mib << 20)) "$t0" "$t1")
  t0=$(now); azop put-blocks bench "s$r.bin" "$work/blob.bin"; t1=$(now)
  sp=$(rate $((mib << 20)) "$t0" "$t1")
  azop rm bench "s$r.bin"
  [ "$r" = 1 ] || { rm -f "$work/mnt/w$r.bin"; azop rm bench "p$r.bin"; }  # Azurite keeps blobs in memory
  cold+=("$c"); warm+=("$w"); cg+=("$g"); rc+=("$rr"); wr+=("$m"); cr+=("$p"); sdkg+=("$sg"); sdkp+=("$sp")
  sdkg_r+=("$(div "$c" "$sg")"); sdkp_r+=("$(div "$m" "$sp")")
  cold_r+=("$(div "$c" "$g")"); warm_r+=("$(div "$w" "$g")"); rcl_r+=("$(div "$c" "$rr")"); wr_r+=("$(div "$m" "$p")")
  echo "  round $r: cold $c MiB/s, warm $w MiB/s, curl GET $g MiB/s, rclone mount cold $rr MiB/s, SDK download $sg MiB/s; write $m MiB/s, curl Put Blob $p MiB/s, SDK block upload $sp MiB/s"
done
azop get bench "w1.bin" "$work/back.bin"
[ "$(sha256sum < "$work/back.bin" | cut -d' ' -f1)" = "$want" ] || { echo "bench: the blob written through the mount differs" >&2; exit 1; }

file="bench-results/azure-$(date -u +%Y%m%dT%H%M%SZ).txt"
mkdir -p bench-results
{
  echo "Strata Azure Blob bench (Azurite in memory), $(date -u), $(nproc) cores, commit $(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet 2>/dev/null || echo -dirty)"
  echo "$rounds interleaved rounds of ${mib} MiB; ratio within each round, the median and [min-max]"
  echo
  printf '%-62s %s\n' "case" "result"
  printf '%-62s %s\n' "cold sequential read through the mount vs one curl GET" "$(summary "${cold_r[@]}")"
  printf '%-62s %s\n' "warm sequential read through the mount vs one curl GET" "$(summary "${warm_r[@]}")"
  printf '%-62s %s\n' "through-mode write (cp into the mount) vs curl Put Blob" "$(summary "${wr_r[@]}")"
  printf '%-62s %s\n' "cold read, Strata vs rclone mount (azureblob, no VFS cache)" "$(summary "${rcl_r[@]}")"
  printf '%-62s %s\n' "cold read, Strata vs the Azure SDK's parallel download" "$(summary "${sdkg_r[@]}")"
  printf '%-62s %s\n' "write, Strata vs the Azure SDK's parallel block upload" "$(summary "${sdkp_r[@]}")"
  echo
  echo "runs (MiB/s):"
  echo "  cold via mount     ${cold[*]}"
  echo "  warm via mount     ${warm[*]}"
  echo "  curl GET           ${cg[*]}"
  echo "  rclone mount cold  ${rc[*]}"
  echo "  write via mount    ${wr[*]}"
  echo "  curl Put Blob      ${cr[*]}"
  echo "  SDK download       ${sdkg[*]}"
  echo "  SDK block upload   ${sdkp[*]}"
} | tee "$file"
echo "bench: results kept in $file"
