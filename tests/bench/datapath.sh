#!/usr/bin/env bash
# The data-path bench (issue 9's table): every row is Strata against a
# baseline measured in the same run, round by round (ROUNDS, default 5,
# interleaved: each round measures every system once), the ratio taken
# within each round; the table shows the median ratio and its range.
#
#   warm sequential read, SSD tier   vs a direct read of the same block files,
#                                    passthrough_ll over a plain copy, s3fs and
#                                    rclone reading their own warm caches
#   warm random 4 KiB reads (fio)    vs passthrough_ll, same file, 4 jobs
#   RAM tier sequential              vs the same file read from the page cache
#   cold sequential, S3-shaped       vs one curl GET through the same shaping,
#                                    s3fs and rclone through it too
#   time to first byte, S3-shaped    vs curl's time to first byte
#   append 1 byte to the 1 GiB object, async mode: the close (goal <= 0.1 s),
#                                    against a cold read of the object
#   write + close, through mode, S3-shaped   vs one curl PUT through the shaping
#   write + fsync, async mode        vs dd + fsync to the cache disk
#   cold ls -l of 10,000 entries     vs the ListObjectsV2 walk by curl (loopback:
#                                    through the shaping each entry's HEAD costs
#                                    30 ms, so a round takes minutes)
#   restart with 1,000,000 cached blocks: agent start to the first warm read
#
# The S3-shaped store is s3rver behind tests/bench/shaper.cc: 90 MB/s per
# connection and 30 ms before each response's first byte (SHAPE_MBPS,
# SHAPE_MS). Needs root (mounts, drop_caches). SIZE_MIB=1024, SHAPED_MIB=512.
set -euo pipefail
build=${1:-build}
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
size_mib=${SIZE_MIB:-1024}
shaped_mib=${SHAPED_MIB:-512}
rounds=${ROUNDS:-5}
shape_mbps=${SHAPE_MBPS:-90}
shape_ms=${SHAPE_MS:-30}
work=$(mktemp -d /tmp/strata-dp-XXXXXX)
port=$((20000 + RANDOM % 20000))
sport=$((port + 1))
ep=http://127.0.0.1:$port
sep=http://127.0.0.1:$sport
bucket=bench
source tests/bench/lib.sh
# Reads files one after the other (cat); prints MiB/s.
read_files_rate() {
  local t0 t1 bytes
  bytes=$(stat -c %s "$@" | awk '{s += $1} END {print s}')
  drop
  t0=$(now); cat "$@" > /dev/null; t1=$(now)
  rate "$bytes" "$t0" "$t1"
}

echo "bench: ${size_mib} MiB object (loopback) and ${shaped_mib} MiB (S3-shaped: ${shape_mbps} MB/s per connection, ${shape_ms} ms first byte), $rounds rounds"
mkdir -p "$work/s3" "$work/local" "$work/pt" "$work/s3fs" "$work/rclone"
NODE_OPTIONS=--openssl-legacy-provider tests/s3/node_modules/.bin/s3rver \
  -d "$work/s3" -a 127.0.0.1 -p "$port" -s >/dev/null 2>&1 &
pids+=($!)
"$build/shaper" "$sport" "$port" "$shape_mbps" "$shape_ms" &
pids+=($!)
for _ in $(seq 1 100); do curl -s -o /dev/null "$ep" && break; sleep 0.1; done
curl -sf -X PUT "$ep/$bucket" >/dev/null
head -c $((size_mib << 20)) /dev/urandom > "$work/local/big.bin"
head -c $((shaped_mib << 20)) /dev/urandom > "$work/shaped.bin"
head -c $((64 << 20)) /dev/urandom > "$work/ttfb.bin"
# The write source sits in memory: the writers are measured, not this disk.
src_shm=$(mktemp /dev/shm/strata-dp-src-XXXXXX)
head -c $((shaped_mib << 20)) "$work/shaped.bin" > "$src_shm"
echo x > "$work/one"
for i in $(seq 1 10000); do
  printf 'upload-file = "%s"\nurl = "%s/%s/many/e%05d"\noutput = "/dev/null"\n' "$work/one" "$ep" "$bucket" "$i"
done > "$work/many.cfg"
curl -sf --no-progress-meter --parallel --parallel-max 32 -K "$work/many.cfg"
curl -sf -X PUT -T "$work/local/big.bin" "$ep/$bucket/big.bin" >/dev/null
curl -sf -X PUT -T "$work/shaped.bin" "$ep/$bucket/shaped.bin" >/dev/null
for i in $(seq 0 "$rounds"); do curl -sf -X PUT -T "$work/ttfb.bin" "$ep/$bucket/ttfb$i.bin" >/dev/null; done

cc -O2 -o "$work/passthrough_ll" /usr/share/doc/libfuse3-dev/examples/passthrough_ll.c $(pkg-config --cflags --libs fuse3)
"$work/passthrough_ll" -o source="$work/local" "$work/pt" &
pids+=($!); mounts+=("$work/pt"); wait_mount "$work/pt"

agent() {  # name ufs extra-flags...
  local name=$1 ufs=$2; shift 2
  mkdir -p "$work/$name-mnt" "$work/$name-cache" "$work/$name-pol"
  AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER "$build/strata-agent" -f \
    --mount-point "$work/$name-mnt" --ufs "$ufs" --cache-dir "$work/$name-cache" \
    --cache-size $((size_mib * 2 + 512))MiB --socket "$work/$name.sock" --policy-dir "$work/$name-pol" \
    "$@" >>"$work/$name.log" 2>&1 &
  pids+=($!); mounts+=("$work/$name-mnt"); wait_mount "$work/$name-mnt"
}
ctl() { local name=$1; shift; "$build/agentctl" --socket "$work/$name.sock" "$@"; }
agent ssd "file://$work/local"
agent ram "file://$work/local" --mem-size $((size_mib + 256))MiB
agent shaped "s3://$bucket" --s3-endpoint "$sep"
agent async "s3://$bucket" --s3-endpoint "$ep" --write-mode async
ctl ssd load big.bin >/dev/null
ctl ram load --tier mem big.bin >/dev/null
# The block files of big.bin in block order (the ssd agent holds nothing else).
mapfile -t blockfiles < <(find "$work/ssd-cache/blocks" -name '*.blk' | awk -F- '{print $NF, $0}' | sort | cut -d' ' -f2-)

echo "S3RVER:S3RVER" > "$work/s3fs.passwd"; chmod 600 "$work/s3fs.passwd"
mount_s3fs() {  # endpoint
  rm -rf "$work/s3fs-cache"
  s3fs "$bucket" "$work/s3fs" -o url="$1",use_path_request_style,passwd_file="$work/s3fs.passwd" \
    -o use_cache="$work/s3fs-cache",parallel_count=8,multipart_size=8,stat_cache_expire=3600
  mounts+=("$work/s3fs"); wait_mount "$work/s3fs"
}
mount_rclone() {  # endpoint
  rm -rf "$work/rclone-cache"
  (
    unset AWS_CA_BUNDLE
    export RCLONE_CONFIG_BENCH_TYPE=s3 RCLONE_CONFIG_BENCH_PROVIDER=Other \
      RCLONE_CONFIG_BENCH_ENDPOINT="$1" RCLONE_CONFIG_BENCH_ACCESS_KEY_ID=S3RVER \
      RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY=S3RVER RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE=true
    rclone mount "bench:$bucket" "$work/rclone" --vfs-cache-mode full --cache-dir "$work/rclone-cache" \
      --vfs-read-chunk-size 8M --buffer-size 16M --dir-cache-time 1h --attr-timeout 1h --daemon
  )
  mounts+=("$work/rclone"); wait_mount "$work/rclone"
}
unmount() { fusermount3 -u "$1" 2>/dev/null || umount -l "$1"; for _ in $(seq 1 50); do grep -q " $1 " /proc/self/mounts || break; sleep 0.1; done; }

# --- Warm: s3fs and rclone keep their mounts (and caches) through the rounds.
mount_s3fs "$ep"; mount_rclone "$ep"
cat "$work/s3fs/big.bin" > /dev/null; cat "$work/rclone/big.bin" > /dev/null
sleep 2  # rclone writes its cache file behind the read
command -v fio >/dev/null || { echo "bench: fio is missing (packaging/install-deps.sh --bench)" >&2; exit 1; }
fio_iops() {  # file
  drop
  fio --name=rand --filename="$1" --rw=randread --bs=4k --numjobs=4 --time_based --runtime=5 \
    --ioengine=psync --group_reporting --output-format=json 2>/dev/null | jq '.jobs[0].read.iops | floor'
}
w_s=() w_b=() w_p=() w_3=() w_r=() f_s=() f_p=() m_s=() m_c=()
for r in $(seq 1 "$rounds"); do
  w_b+=("$(read_files_rate "${blockfiles[@]}")")
  drop; w_s+=("$(read_rate "$work/ssd-mnt/big.bin")")
  drop; w_p+=("$(read_rate "$work/pt/big.bin")")
  drop; w_3+=("$(read_rate "$work/s3fs/big.bin")")
  drop; w_r+=("$(read_rate "$work/rclone/big.bin")")
  f_s+=("$(fio_iops "$work/ssd-mnt/big.bin")")
  f_p+=("$(fio_iops "$work/pt/big.bin")")
  # RAM tier vs the page cache: the local file is read once to be cached, then timed.
  cat "$work/local/big.bin" > /dev/null; m_c+=("$(read_rate "$work/local/big.bin")")
  drop; m_s+=("$(read_rate "$work/ram-mnt/big.bin")")
done
unmount "$work/s3fs"; unmount "$work/rclone"

# --- Cold through the shaping: each round evicts Strata's copy and mounts
# s3fs and rclone afresh with empty caches.
curl_cold() {
  local t0 t1
  t0=$(now); curl -sf -o /dev/null "$sep/$bucket/shaped.bin"; t1=$(now)
  rate $((shaped_mib << 20)) "$t0" "$t1"
}
c_c=() c_s=() c_3=() c_r=() t_c=() t_s=()
for r in $(seq 1 "$rounds"); do
  c_c+=("$(curl_cold)")
  ctl shaped evict shaped.bin >/dev/null
  drop; c_s+=("$(read_rate "$work/shaped-mnt/shaped.bin")")
  mount_s3fs "$sep"; drop; c_3+=("$(read_rate "$work/s3fs/shaped.bin")"); unmount "$work/s3fs"
  mount_rclone "$sep"; drop; c_r+=("$(read_rate "$work/rclone/shaped.bin")"); unmount "$work/rclone"
  t_c+=("$(curl -sf -o /dev/null -r 0-0 -w '%{time_starttransfer}' "$sep/$bucket/ttfb$r.bin")")
  stat "$work/shaped-mnt/ttfb$r.bin" >/dev/null  # the lookup is not the first byte
  drop
  t0=$(now); head -c 1 "$work/shaped-mnt/ttfb$r.bin" > /dev/null; t1=$(now)
  t_s+=("$(awk -v a="$t0" -v z="$t1" 'BEGIN { printf "%.4f", z - a }')")
done

# --- Append one byte to the loopback object in async mode: the close is
# timed (the upload drains afterwards, untimed), against a cold read of it.
a_close=() a_read=()
for r in $(seq 1 "$rounds"); do
  ctl async evict big.bin >/dev/null
  drop; a_read+=("$(awk -v s="$(read_rate "$work/async-mnt/big.bin")" -v m="$size_mib" 'BEGIN { printf "%.3f", m / s }')")
  # The cold read's blocks are still being written to the cache disk when
  # it returns; the append is timed on a quiet disk, not behind that.
  sync; sleep 2
  t0=$(now); printf x >> "$work/async-mnt/big.bin"; t1=$(now)
  a_close+=("$(awk -v a="$t0" -v z="$t1" 'BEGIN { printf "%.4f", z - a }')")
  ctl async flush --timeout 600 >/dev/null
done
curl -sf -o "$work/appended.bin" "$ep/$bucket/big.bin"
[ "$(stat -c %s "$work/appended.bin")" -eq $(((size_mib << 20) + rounds)) ] || echo "bench: the appends are not all in the store" >&2
rm -f "$work/appended.bin"

# --- Writes. Through mode over the shaping (the shaped agent) against one
# curl PUT of the same bytes through it; async mode (loopback) with fsync
# against dd with fsync into a directory on the cache disk. Rates in MiB/s.
dd_rate() {  # dest
  local t0 t1
  sync
  t0=$(now); dd if="$src_shm" of="$1" bs=1M conv=fsync status=none; t1=$(now)
  rate $((shaped_mib << 20)) "$t0" "$t1"
}
mkdir -p "$work/local-w"
w_t=() w_c=() w_a=() w_l=()
for r in $(seq 1 "$rounds"); do
  t0=$(now); curl -sf -X PUT -T "$src_shm" "$sep/$bucket/put$r.bin" >/dev/null; t1=$(now)
  w_c+=("$(rate $((shaped_mib << 20)) "$t0" "$t1")")
  w_t+=("$(dd_rate "$work/shaped-mnt/w$r.bin")")
  w_l+=("$(dd_rate "$work/local-w/w$r.bin")"); rm -f "$work/local-w/w$r.bin"
  w_a+=("$(dd_rate "$work/async-mnt/w$r.bin")")
  ctl async flush --timeout 600 >/dev/null
done
curl -sf -o "$work/back.bin" "$ep/$bucket/w1.bin"
cmp -s "$src_shm" "$work/back.bin" || echo "bench: the through-mode write is not in the store as written" >&2
rm -f "$work/back.bin"

# --- Cold ls -l of 10,000 entries on loopback (a new agent and cache each
# round) against the ListObjectsV2 walk of the same prefix by curl, the same
# 1,000-key pages one after the other. S3 listings carry no modes or owners,
# so the kernel's lookup of each entry is a HEAD.
list_walk() {
  local t0 t1 token="" page
  t0=$(now)
  while :; do
    page=$(curl -sf "$ep/$bucket?list-type=2&prefix=many/&max-keys=1000${token:+&continuation-token=$token}")
    token=$(printf '%s' "$page" | sed -n 's:.*<NextContinuationToken>\(.*\)</NextContinuationToken>.*:\1:p')
    token=$(printf '%s' "$token" | jq -sRr @uri)
    printf '%s' "$page" | grep -q '<IsTruncated>true</IsTruncated>' || break
  done
  t1=$(now)
  awk -v a="$t0" -v z="$t1" 'BEGIN { printf "%.3f", z - a }'
}
# A second Strata row with --attrs-from-listing (no HEAD per entry; modes
# and owners are the mount's defaults).
ls_time() {  # extra agent flags...; sets ls_seconds (not a subshell: it starts an agent)
  local t0 t1 n
  rm -rf "$work/ls-cache"
  agent ls "s3://$bucket" --s3-endpoint "$ep" "$@"
  t0=$(now); n=$(ls -l "$work/ls-mnt/many" | wc -l); t1=$(now)
  [ "$n" -ge 10000 ] || echo "bench: ls -l listed only $n entries" >&2
  unmount "$work/ls-mnt"
  kill "${pids[-1]}" 2>/dev/null || true; wait "${pids[-1]}" 2>/dev/null || true
  ls_seconds=$(seconds "$t0" "$t1")
}
l_s=() l_c=() l_f=()
for r in $(seq 1 "$rounds"); do
  l_c+=("$(list_walk)")
  ls_time; l_s+=("$ls_seconds")
  ls_time --attrs-from-listing; l_f+=("$ls_seconds")
done

# --- Restart with 1,000,000 cached blocks (1,000 files of 1,000 64 KiB
# blocks, sparse block files, built by tests/bench/restart_bench.cc): from
# starting the agent to the first byte of a cached file read through it.
"$build/restart_bench" "$work/r-cache" 1000 1000 >/dev/null
mkdir -p "$work/r-store" "$work/r-mnt" "$work/r-pol"
r_s=()
for r in $(seq 1 "$rounds"); do
  drop
  t0=$(now)
  "$build/strata-agent" -f --mount-point "$work/r-mnt" --ufs "file://$work/r-store" --cache-dir "$work/r-cache" \
    --block-size 64KiB --cache-size 100GiB --metadata-ttl 3600 --socket "$work/r.sock" --policy-dir "$work/r-pol" \
    --scrub-rate 0 >>"$work/r.log" 2>&1 &
  rpid=$!
  for _ in $(seq 1 2000); do head -c 1 "$work/r-mnt/f000000" >/dev/null 2>&1 && break; sleep 0.005; done
  t1=$(now)
  r_s+=("$(awk -v a="$t0" -v z="$t1" 'BEGIN { printf "%.3f", z - a }')")
  r_gets=$("$build/agentctl" --socket "$work/r.sock" stat --json | jq '.mounts[0].get_requests')
  r_blocks=$("$build/agentctl" --socket "$work/r.sock" stat --json | jq '.blocks')
  unmount "$work/r-mnt"; kill "$rpid" 2>/dev/null || true; wait "$rpid" 2>/dev/null || true
done

ratios() {  # a[] b[] -> per-round a/b
  local -n xs=$1 ys=$2
  local i out=()
  for i in "${!xs[@]}"; do out+=("$(div "${xs[$i]}" "${ys[$i]}")"); done
  echo "${out[@]}"
}
mkdir -p bench-results
out=bench-results/datapath-$(date -u +%Y%m%dT%H%M%SZ).txt
{
  echo "Strata data-path bench, $(date -u), $(nproc) cores, commit $(git describe --always --dirty 2>/dev/null || echo ?)"
  echo "${size_mib} MiB object on loopback; ${shaped_mib} MiB through the shaping (${shape_mbps} MB/s per connection, ${shape_ms} ms first byte); $rounds interleaved rounds"
  echo "ratio: Strata / baseline within each round; the median over rounds and [min-max]. Rates: higher is better; TTFB: Strata's time / curl's, lower is better"
  echo
  printf '%-52s %-22s %s\n' "case" "ratio (median [range])" "goal"
  printf '%-52s %-22s %s\n' "warm seq read vs direct read of the block files" "$(summary $(ratios w_s w_b))" ">= 0.8x"
  printf '%-52s %-22s %s\n' "warm seq read vs passthrough_ll" "$(summary $(ratios w_s w_p))" "> 1x"
  printf '%-52s %-22s %s\n' "warm seq read vs s3fs warm" "$(summary $(ratios w_s w_3))" "> 1x"
  printf '%-52s %-22s %s\n' "warm seq read vs rclone warm" "$(summary $(ratios w_s w_r))" "> 1x"
  printf '%-52s %-22s %s\n' "warm random 4 KiB IOPS (fio, 4 jobs) vs passthrough_ll" "$(summary $(ratios f_s f_p))" ">= 0.8x"
  printf '%-52s %-22s %s\n' "RAM tier seq read vs the page cache" "$(summary $(ratios m_s m_c))" ">= 0.5x"
  printf '%-52s %-22s %s\n' "cold seq, S3-shaped, vs one curl GET" "$(summary $(ratios c_s c_c))" ">= 2.5x"
  printf '%-52s %-22s %s\n' "cold seq, S3-shaped, vs s3fs" "$(summary $(ratios c_s c_3))" "> 1x"
  printf '%-52s %-22s %s\n' "cold seq, S3-shaped, vs rclone" "$(summary $(ratios c_s c_r))" "> 1x"
  printf '%-52s %-22s %s\n' "time to first byte, S3-shaped, Strata / curl" "$(summary $(ratios t_s t_c))" "<= 1.5x"
  printf '%-52s %-22s %s\n' "write+close ${shaped_mib} MiB, through, S3-shaped, vs curl PUT" "$(summary $(ratios w_t w_c))" ">= 1.0x"
  printf '%-52s %-22s %s\n' "write+fsync ${shaped_mib} MiB, async, vs dd+fsync local" "$(summary $(ratios w_a w_l))" ">= 0.5x"
  printf '%-52s %-22s %s\n' "cold ls -l 10,000 entries, loopback, vs curl walk" "$(summary $(ratios l_s l_c))" "<= 1.0x (time)"
  printf '%-52s %-22s %s\n' "  the same with --attrs-from-listing" "$(summary $(ratios l_f l_c))" "<= 1.0x (time)"
  printf '%-52s %-22s %s\n' "restart, 1M cached blocks: start to first warm byte" "median $(median "${r_s[@]}") s" "<= 1 s"
  printf '%-52s %-22s %s\n' "append 1 B to ${size_mib} MiB, async: close / cold read" "$(summary $(ratios a_close a_read))" "close <= 0.1 s: median $(median "${a_close[@]}") s"
  echo
  echo "runs, MiB/s (IOPS for fio, s for TTFB), in round order:"
  echo "  strata warm   ${w_s[*]}"
  echo "  block files   ${w_b[*]}"
  echo "  passthrough   ${w_p[*]}"
  echo "  s3fs warm     ${w_3[*]}"
  echo "  rclone warm   ${w_r[*]}"
  echo "  fio strata    ${f_s[*]}"
  echo "  fio pt_ll     ${f_p[*]}"
  echo "  RAM tier      ${m_s[*]}"
  echo "  page cache    ${m_c[*]}"
  echo "  cold strata   ${c_s[*]}"
  echo "  cold curl     ${c_c[*]}"
  echo "  cold s3fs     ${c_3[*]}"
  echo "  cold rclone   ${c_r[*]}"
  echo "  ttfb strata   ${t_s[*]}"
  echo "  ttfb curl     ${t_c[*]}"
  echo "  write through ${w_t[*]}"
  echo "  curl PUT      ${w_c[*]}"
  echo "  write async   ${w_a[*]}"
  echo "  dd+fsync      ${w_l[*]}"
  echo "  ls -l strata  ${l_s[*]} (s)"
  echo "  ls -l listing ${l_f[*]} (s)"
  echo "  list walk     ${l_c[*]} (s)"
  echo "  restart       ${r_s[*]} (s); the agent held $r_blocks blocks, sent $r_gets GETs"
  echo "  append close  ${a_close[*]} (s)"
  echo "  cold read     ${a_read[*]} (s)"
  echo "  medians: strata warm $(median "${w_s[@]}") | block files $(median "${w_b[@]}") | cold strata $(median "${c_s[@]}") | cold curl $(median "${c_c[@]}")"
  echo "shaped agent: $(ctl shaped stat --json | jq -c '{fetched_blocks, fetched_bytes_by_source, verified_blocks, checksum_failures}')"
} | tee "$out"
echo "bench: results kept in $out"
