#!/usr/bin/env bash
# make bench: Strata against baselines measured in the same run, on the same
# data. Prints a table and keeps it in bench-results/bench-<time>.txt.
#
#   cold sequential read of a 1 GiB object: Strata vs one plain curl GET (s3rver)
#   warm read (blocks on the SSD tier, page cache dropped): Strata vs libfuse's
#     passthrough_ll example over the same bytes, vs a direct read
#   the same cold and warm reads through s3fs-fuse (use_cache) and rclone mount
#     (--vfs-cache-mode full)
#   listing 10,000 entries cold and warm; time to first byte
#   RAM tier vs SSD tier vs a direct read of the same file; reads while a
#     policy runs a long batch vs without; ranking a 1M-block cache for
#     eviction with the Lua LFU scorer vs the built-in LRU
#   sequential write of the same size with fsync: Strata in through mode vs
#     one plain curl PUT of the file; Strata in async mode vs dd with fsync to
#     the local disk; the same write through s3fs-fuse and rclone mount
#
# Needs root (mounts, drop_caches). SIZE_MIB=1024 by default.
set -euo pipefail
build=${1:-build}
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
size_mib=${SIZE_MIB:-1024}
work=$(mktemp -d /tmp/strata-bench-XXXXXX)
port=$((20000 + RANDOM % 20000))
ep=http://127.0.0.1:$port
bucket=bench
source tests/bench/lib.sh
# Writes the in-memory source to $1 with dd and fsync (close included); prints MiB/s.
write_rate() {
  local t0 t1
  sync
  t0=$(now); dd if="$src_shm" of="$1" bs=1M conv=fsync status=none; t1=$(now)
  awk -v a="$t0" -v z="$t1" -v s="$size_mib" 'BEGIN { printf "%.1f", s / (z - a) }'
}
# The same multipart upload Strata does (16 MiB parts, 4 in flight), by curl
# alone: create, parts in parallel, complete. Prints MiB/s.
curl_multipart_rate() {
  local key=$1 part=$((16 << 20)) t0 t1 id n i parts
  t0=$(now)
  id=$(curl -sf -X POST "$ep/$bucket/$key?uploads" | sed -n 's:.*<UploadId>\(.*\)</UploadId>.*:\1:p')
  n=$(( ((size_mib << 20) + part - 1) / part ))
  for i in $(seq 1 "$n"); do
    echo "$i"
  done | xargs -P 4 -I{} sh -c "dd if='$src_shm' bs=$part skip=\$(({} - 1)) count=1 status=none | \
      curl -sf -X PUT -T - -D - -o /dev/null '$ep/$bucket/$key?partNumber={}&uploadId=$id' | \
      tr -d '\r' | awk -v n={} 'tolower(\$1) == \"etag:\" {print n, \$2}'" > "$work/etags"
  parts=$(sort -n "$work/etags" | awk '{printf "<Part><PartNumber>%d</PartNumber><ETag>%s</ETag></Part>", $1, $2}')
  curl -sf -X POST --data-binary "<CompleteMultipartUpload>$parts</CompleteMultipartUpload>" \
    "$ep/$bucket/$key?uploadId=$id" >/dev/null
  t1=$(now)
  awk -v a="$t0" -v z="$t1" -v s="$size_mib" 'BEGIN { printf "%.1f", s / (z - a) }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "-" }'; }

echo "bench: preparing ${size_mib} MiB object and 10,000 small objects in s3rver ($ep)"
mkdir -p "$work/s3" "$work/local" "$work/cache" "$work/mnt" "$work/pt" "$work/s3fs" "$work/rclone" \
  "$work/mnt-async" "$work/cache-async"
NODE_OPTIONS=--openssl-legacy-provider taskset -c 1 tests/s3/node_modules/.bin/s3rver \
  -d "$work/s3" -a 127.0.0.1 -p "$port" -s >/dev/null 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do curl -s -o /dev/null "$ep" && break; sleep 0.1; done
curl -sf -X PUT "$ep/$bucket" >/dev/null
head -c $((size_mib << 20)) /dev/urandom > "$work/local/big.bin"
# The source of the write tests sits in memory: the writers' speed is measured, not this disk's.
src_shm=$(mktemp /dev/shm/strata-bench-src-XXXXXX)
cp "$work/local/big.bin" "$src_shm"
head -c $((100 << 20)) /dev/urandom > "$work/local/ttfb.bin"
curl -sf -X PUT -T "$work/local/big.bin" "$ep/$bucket/big.bin" >/dev/null
for i in 1 2 3 4; do curl -sf -X PUT -T "$work/local/ttfb.bin" "$ep/$bucket/ttfb$i.bin" >/dev/null; done
echo x > "$work/one"
for i in $(seq 1 10000); do
  printf 'upload-file = "%s"\nurl = "%s/%s/many/e%05d"\noutput = "/dev/null"\n' "$work/one" "$ep" "$bucket" "$i"
done > "$work/many.cfg"
curl -sf --no-progress-meter --parallel --parallel-max 32 -K "$work/many.cfg"

curl_rate_once() {
  local t0 t1
  drop
  t0=$(now); curl -sf -o /dev/null "$ep/$bucket/big.bin"; t1=$(now)
  awk -v a="$t0" -v z="$t1" -v s="$size_mib" 'BEGIN { printf "%.1f", s / (z - a) }'
}

# --- Strata and the baselines, interleaved (baseline, candidate, ...) three
# times; medians are reported.
cc -O2 -o "$work/passthrough_ll" /usr/share/doc/libfuse3-dev/examples/passthrough_ll.c \
  $(pkg-config --cflags --libs fuse3)
"$work/passthrough_ll" -o source="$work/local" "$work/pt" &
pids+=($!); mounts+=("$work/pt"); wait_mount "$work/pt"
ctl() { "$build/agentctl" --socket "$work/agent.sock" "$@"; }
AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER "$build/strata-agent" -f \
  --mount-point "$work/mnt" --ufs "s3://$bucket" --s3-endpoint "$ep" \
  --cache-dir "$work/cache" --cache-size $((size_mib * 2 + 512))MiB --socket "$work/agent.sock" \
  >>"$work/agent.log" 2>&1 &
pids+=($!); mounts+=("$work/mnt"); wait_mount "$work/mnt"

curl_ttfb=$(curl -sf -o /dev/null -r 0-0 -w '%{time_starttransfer}' "$ep/$bucket/ttfb1.bin")
drop
t0=$(now); head -c 1 "$work/mnt/ttfb2.bin" >/dev/null; t1=$(now)
strata_ttfb=$(seconds "$t0" "$t1")

cold_c=() cold_s=() warm_s=() warm_p=() warm_d=()
for rep in 1 2 3; do
  cold_c+=("$(curl_rate_once)")
  ctl evict big.bin >/dev/null
  drop; cold_s+=("$(read_rate "$work/mnt/big.bin")")
  drop; warm_p+=("$(read_rate "$work/pt/big.bin")")
  drop; warm_s+=("$(read_rate "$work/mnt/big.bin")")
  drop; warm_d+=("$(read_rate "$work/local/big.bin")")
done
curl_rate=$(median "${cold_c[@]}") strata_cold=$(median "${cold_s[@]}")
pt_rate=$(median "${warm_p[@]}") strata_warm=$(median "${warm_s[@]}") direct_rate=$(median "${warm_d[@]}")

# --- Writes: through (the agent above) vs curl PUT; async (a second agent)
# vs dd + fsync to the local disk.
AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER "$build/strata-agent" -f \
  --mount-point "$work/mnt-async" --ufs "s3://$bucket/async" --s3-endpoint "$ep" --write-mode async \
  --cache-dir "$work/cache-async" --cache-size $((size_mib * 2 + 512))MiB --socket "$work/agent-async.sock" \
  >>"$work/agent-async.log" 2>&1 &
pids+=($!); mounts+=("$work/mnt-async"); wait_mount "$work/mnt-async"
put_c=() put_m=() put_s=() put_l=() put_a=() drain_a=()
for rep in 1 2 3; do
  t0=$(now); curl -sf -X PUT -T "$src_shm" "$ep/$bucket/put$rep.bin" >/dev/null; t1=$(now)
  put_c+=("$(awk -v a="$t0" -v z="$t1" -v s="$size_mib" 'BEGIN { printf "%.1f", s / (z - a) }')")
  put_m+=("$(curl_multipart_rate "mpu$rep.bin")")
  put_s+=("$(write_rate "$work/mnt/w$rep.bin")")
  put_l+=("$(write_rate "$work/local/w$rep.bin")")
  put_a+=("$(write_rate "$work/mnt-async/w$rep.bin")")
  t0=$(now); "$build/agentctl" --socket "$work/agent-async.sock" flush --timeout 600 >/dev/null; t1=$(now)
  drain_a+=("$(seconds "$t0" "$t1")")
  rm -f "$work/local/w$rep.bin"
done
put_rate=$(median "${put_c[@]}") mpu_rate=$(median "${put_m[@]}") strata_put=$(median "${put_s[@]}") local_put=$(median "${put_l[@]}")
strata_async=$(median "${put_a[@]}") strata_drain=$(median "${drain_a[@]}")
cmp -s "$src_shm" "$work/mnt/w1.bin" || echo "bench: the through-mode write read back different" >&2
curl -sf -o "$work/mpu-back.bin" "$ep/$bucket/mpu1.bin"
cmp -s "$src_shm" "$work/mpu-back.bin" || echo "bench: the curl multipart baseline did not store the file" >&2
rm -f "$work/mpu-back.bin"
curl -sf -o "$work/async-back.bin" "$ep/$bucket/async/w1.bin"
cmp -s "$src_shm" "$work/async-back.bin" || echo "bench: the async write is not in the store as written" >&2
rm -f "$work/async-back.bin"

t0=$(now); n=$(ls -f "$work/mnt/many" | wc -l); t1=$(now)
strata_ls_cold=$(seconds "$t0" "$t1")
t0=$(now); ls -f "$work/mnt/many" >/dev/null; t1=$(now)
strata_ls_warm=$(seconds "$t0" "$t1")
[ "$n" -ge 10000 ] || echo "bench: strata listed only $n entries" >&2
ctl stat > "$work/strata-stat.txt"

# --- s3fs (use_cache) and rclone (--vfs-cache-mode full), each measured like
# Strata: three cold/warm rounds, each on a fresh mount with an empty cache.
echo "S3RVER:S3RVER" > "$work/s3fs.passwd"; chmod 600 "$work/s3fs.passwd"
mount_s3fs() {
  rm -rf "$work/s3fs-cache"
  s3fs "$bucket" "$work/s3fs" -o url="$ep",use_path_request_style,passwd_file="$work/s3fs.passwd" \
    -o use_cache="$work/s3fs-cache",parallel_count=8,multipart_size=8,stat_cache_expire=3600
}
mount_rclone() {
  rm -rf "$work/rclone-cache"
  (
    unset AWS_CA_BUNDLE  # rclone 1.60 refuses to start with it set
    export RCLONE_CONFIG_BENCH_TYPE=s3 RCLONE_CONFIG_BENCH_PROVIDER=Other \
      RCLONE_CONFIG_BENCH_ENDPOINT="$ep" RCLONE_CONFIG_BENCH_ACCESS_KEY_ID=S3RVER \
      RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY=S3RVER RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE=true
    rclone mount "bench:$bucket" "$work/rclone" --vfs-cache-mode full --cache-dir "$work/rclone-cache" \
      --vfs-read-chunk-size 8M --buffer-size 16M --dir-cache-time 1h --attr-timeout 1h --daemon
  )
}
# Sets <name>_ttfb, _cold, _warm (medians), _ls_cold, _ls_warm, _runs.
measure_peer() {
  local name=$1 dir=$2 ttfb_obj=$3 t0 t1 cold=() warm=() write=()
  mounts+=("$dir")
  for rep in 1 2 3; do
    "mount_$name"; wait_mount "$dir"
    if [ "$rep" -eq 1 ]; then
      drop
      t0=$(now); head -c 1 "$dir/$ttfb_obj" >/dev/null; t1=$(now)
      printf -v "${name}_ttfb" '%s' "$(seconds "$t0" "$t1")"
      t0=$(now); ls -f "$dir/many" >/dev/null; t1=$(now); printf -v "${name}_ls_cold" '%s' "$(seconds "$t0" "$t1")"
      t0=$(now); ls -f "$dir/many" >/dev/null; t1=$(now); printf -v "${name}_ls_warm" '%s' "$(seconds "$t0" "$t1")"
    fi
    drop; cold+=("$(read_rate "$dir/big.bin")")
    drop; warm+=("$(read_rate "$dir/big.bin")")
    write+=("$(write_rate "$dir/w-$name-$rep.bin")")
    fusermount3 -u "$dir" 2>/dev/null || umount -l "$dir"
    for _ in $(seq 1 50); do grep -q " $dir " /proc/self/mounts || break; sleep 0.1; done
  done
  printf -v "${name}_cold" '%s' "$(median "${cold[@]}")"
  printf -v "${name}_warm" '%s' "$(median "${warm[@]}")"
  printf -v "${name}_write" '%s' "$(median "${write[@]}")"
  printf -v "${name}_runs" '%s' "cold ${cold[*]} | warm ${warm[*]} | write ${write[*]}"
}
measure_peer s3fs "$work/s3fs" ttfb3.bin
measure_peer rclone "$work/rclone" ttfb4.bin

# --- Tiers: the same file from the RAM tier, from the SSD tier, and direct
# from the disk it lives on (page cache dropped before each read). Two agents
# over the local copy: one with a RAM tier large enough for the file.
tier_agent() {  # name, extra flags...
  local name=$1; shift
  mkdir -p "$work/$name-mnt" "$work/$name-cache" "$work/$name-pol"
  "$build/strata-agent" -f --mount-point "$work/$name-mnt" --ufs "file://$work/local" \
    --cache-dir "$work/$name-cache" --cache-size $((size_mib * 2 + 512))MiB --socket "$work/$name.sock" \
    --policy-dir "$work/$name-pol" "$@" >>"$work/$name.log" 2>&1 &
  pids+=($!); mounts+=("$work/$name-mnt"); wait_mount "$work/$name-mnt"
}
tctl() { local name=$1; shift; "$build/agentctl" --socket "$work/$name.sock" "$@"; }
tier_agent ssd
tier_agent ram --mem-size $((size_mib + 256))MiB
tctl ssd load big.bin >/dev/null
tctl ram load big.bin >/dev/null
# The RAM agent: a second access (over a second after the first) promotes.
sleep 1.1; drop; cat "$work/ram-mnt/big.bin" >/dev/null
blocks=$(( (size_mib + 3) / 4 ))
for _ in $(seq 1 600); do
  [ "$(tctl ram stat --json | jq .promotions)" -ge "$blocks" ] && break
  sleep 0.1
done
promoted=$(tctl ram stat --json | jq .promotions)
tier_m=() tier_s=() tier_d=()
for rep in 1 2 3; do
  drop; tier_d+=("$(read_rate "$work/local/big.bin")")
  drop; tier_s+=("$(read_rate "$work/ssd-mnt/big.bin")")
  drop; tier_m+=("$(read_rate "$work/ram-mnt/big.bin")")
done
ram_rate=$(median "${tier_m[@]}") ssd_rate=$(median "${tier_s[@]}") tier_direct=$(median "${tier_d[@]}")
ram_served=$(tctl ram stat --json | jq '.tiers[] | select(.tier == "mem") | .bytes_served')

# --- FUSE reads (SSD tier) while a policy runs a long batch every second:
# each run of the job takes most of its 10-million-instruction budget.
cat > "$work/busy.lua" <<'LUA'
strata.schedule("1s", function()
  local t = {}
  for i = 1, 750000 do t[#t + 1] = i * 2 end
  local s = 0
  for _, v in ipairs(t) do s = s + v % 7 end
  strata.log("batch", s)
end)
LUA
busy_off=() busy_on=()
for rep in 1 2 3; do
  rm -f "$work/ssd-pol/busy.lua"; tctl ssd policy reload >/dev/null
  drop; busy_off+=("$(read_rate "$work/ssd-mnt/big.bin")")
  cp "$work/busy.lua" "$work/ssd-pol/busy.lua"; tctl ssd policy reload >/dev/null; sleep 1.2
  drop; busy_on+=("$(read_rate "$work/ssd-mnt/big.bin")")
done
busy_runs=$(tctl ssd policy status --json | jq '[.schedules[].runs] | add')
busy_secs=$(tctl ssd policy status --json | jq '.schedules[0].last_seconds')
busy_status=$(tctl ssd policy status --json | jq -r '.schedules[0].last_result')
read_busy_off=$(median "${busy_off[@]}") read_busy_on=$(median "${busy_on[@]}")

# --- Eviction ranking of a cache of one million blocks: the shipped lfu.lua
# through the runtime the engine calls, vs the built-in LRU order.
"$build/policy_bench" 1000000 > "$work/policy-bench.txt"
lua_rank_s=$(awk '$1 == "lua_lfu_rank" {print $2}' "$work/policy-bench.txt")
lua_rank_rss=$(awk '$1 == "lua_lfu_rank" {print $3}' "$work/policy-bench.txt")
lru_rank_s=$(awk '$1 == "lru_select" {print $2}' "$work/policy-bench.txt")
base_rss=$(awk '$1 == "candidates" {print $4}' "$work/policy-bench.txt")

mkdir -p bench-results
out=bench-results/bench-$(date -u +%Y%m%dT%H%M%SZ).txt
{
  echo "Strata bench, $(date -u), $(nproc) cores, ${size_mib} MiB object, s3rver on 127.0.0.1 (pinned to CPU 1)"
  echo "runs (MiB/s): curl ${cold_c[*]} | strata cold ${cold_s[*]} | strata warm ${warm_s[*]} | passthrough_ll ${warm_p[*]} | direct ${warm_d[*]}"
  echo "runs (MiB/s): s3fs $s3fs_runs | rclone $rclone_runs"
  echo "write runs (MiB/s): curl PUT ${put_c[*]} | curl multipart ${put_m[*]} | strata through ${put_s[*]} | local dd+fsync ${put_l[*]} | strata async ${put_a[*]} | async drain (s) ${drain_a[*]}"
  echo "read_ahead_kb of the Strata mount: $(cat /sys/class/bdi/$(awk -v m="$work/mnt" '$5 == m {print $3}' /proc/self/mountinfo)/read_ahead_kb 2>/dev/null || echo ?)"
  echo
  printf '%-44s %12s %12s %12s %12s %12s\n' "case" "Strata" "baseline" "ratio" "s3fs" "rclone"
  printf '%-44s %12s %12s %12s %12s %12s\n' "cold sequential read, MiB/s (vs curl GET)" \
    "$strata_cold" "$curl_rate" "$(ratio "$strata_cold" "$curl_rate")" "$s3fs_cold" "$rclone_cold"
  printf '%-44s %12s %12s %12s %12s %12s\n' "warm read, MiB/s (vs passthrough_ll)" \
    "$strata_warm" "$pt_rate" "$(ratio "$strata_warm" "$pt_rate")" "$s3fs_warm" "$rclone_warm"
  printf '%-44s %12s %12s %12s %12s %12s\n' "warm read, MiB/s (vs direct read)" \
    "$strata_warm" "$direct_rate" "$(ratio "$strata_warm" "$direct_rate")" "$s3fs_warm" "$rclone_warm"
  printf '%-44s %12s %12s %12s %12s %12s\n' "time to first byte, s (vs curl)" \
    "$strata_ttfb" "$curl_ttfb" "$(ratio "$curl_ttfb" "$strata_ttfb")" "$s3fs_ttfb" "$rclone_ttfb"
  printf '%-44s %12s %12s %12s %12s %12s\n' "list 10,000 entries cold, s" "$strata_ls_cold" "-" "-" "$s3fs_ls_cold" "$rclone_ls_cold"
  printf '%-44s %12s %12s %12s %12s %12s\n' "list 10,000 entries warm, s" "$strata_ls_warm" "-" "-" "$s3fs_ls_warm" "$rclone_ls_warm"
  printf '%-44s %12s %12s %12s %12s %12s\n' "write+fsync, through, MiB/s (vs curl PUT)" \
    "$strata_put" "$put_rate" "$(ratio "$strata_put" "$put_rate")" "$s3fs_write" "$rclone_write"
  printf '%-44s %12s %12s %12s %12s %12s\n' "write+fsync, through, MiB/s (vs curl multipart)" \
    "$strata_put" "$mpu_rate" "$(ratio "$strata_put" "$mpu_rate")" "$s3fs_write" "$rclone_write"
  printf '%-44s %12s %12s %12s %12s %12s\n' "write+fsync, async, MiB/s (vs local disk)" \
    "$strata_async" "$local_put" "$(ratio "$strata_async" "$local_put")" "-" "-"
  printf '%-44s %12s %12s %12s %12s %12s\n' "async: flush to the store afterwards, s" "$strata_drain" "-" "-" "-" "-"
  printf '%-44s %12s %12s %12s\n' "read from the RAM tier, MiB/s (vs direct)" "$ram_rate" "$tier_direct" "$(ratio "$ram_rate" "$tier_direct")"
  printf '%-44s %12s %12s %12s\n' "read from the SSD tier, MiB/s (vs direct)" "$ssd_rate" "$tier_direct" "$(ratio "$ssd_rate" "$tier_direct")"
  printf '%-44s %12s %12s %12s\n' "RAM tier vs SSD tier, MiB/s" "$ram_rate" "$ssd_rate" "$(ratio "$ram_rate" "$ssd_rate")"
  printf '%-44s %12s %12s %12s\n' "read while a policy batch runs, MiB/s" "$read_busy_on" "$read_busy_off" "$(ratio "$read_busy_on" "$read_busy_off")"
  printf '%-44s %12s %12s %12s\n' "rank 1M blocks for eviction, s (Lua LFU)" "$lua_rank_s" "$lru_rank_s" "$(ratio "$lru_rank_s" "$lua_rank_s")"
  echo
  echo "tier runs (MiB/s): RAM ${tier_m[*]} | SSD ${tier_s[*]} | direct ${tier_d[*]}; $promoted block(s) promoted, $ram_served bytes served from RAM"
  echo "policy batch runs (MiB/s): without ${busy_off[*]} | with ${busy_on[*]}; the batch ran $busy_runs time(s), last $busy_secs s ($busy_status)"
  echo "1M-block ranking: baseline = C++ LRU order of the same blocks; peak RSS ${base_rss} MiB with the candidates, ${lua_rank_rss} MiB after the Lua ranking (Lua state capped at 64 MiB)"
  sed 's/^/  /' "$work/policy-bench.txt"
  echo
  echo "ratio: Strata / baseline for rates; baseline / Strata for times (higher is better for Strata)"
  echo "agentctl stat after the Strata runs:"
  sed 's/^/  /' "$work/strata-stat.txt"
} | tee "$out"
echo "bench: results kept in $out"
