#!/usr/bin/env bash
# The gateway bench (issue 11's table), every row against a baseline measured
# in the same run, round by round (ROUNDS, default 5). S3 requests are signed:
# presigned URLs made with the AWS SDK's signer (tests/s3/s3op.js), fetched
# by curl.
#
#   GET 1 GiB       a cached 1 GiB object, one curl, page caches dropped; vs
#                   the same file read through the mount (dd)
#   GET 1 MiB x 16  256 cached 1 MiB objects, 16 curl transfers at once,
#                   ops/s; vs s3rver serving the same objects directly
#   PUT 1 GiB       through mode to the S3-shaped store (s3rver behind
#                   tests/bench/shaper.cc: 90 MB/s per connection, 30 ms first
#                   byte); vs one curl PUT straight to the shaped store
#   mixed 64 KiB    GET and PUT half and half, 32 at once, 1000 requests: p99
#                   and median latency; beside it the same against the store
#                   the agent writes to (the shaped s3rver) and s3rver itself
# Needs root (mounts, drop_caches).
set -euo pipefail
build=${1:-build}
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
rounds=${ROUNDS:-5}
big_mib=${GATEWAY_MIB:-1024}
work=$(mktemp -d /tmp/strata-gw-XXXXXX)
port=$((20000 + RANDOM % 10000))
sport=$((port + 1))
gport=$((port + 2))
ep=http://127.0.0.1:$port
sep=http://127.0.0.1:$sport
gep=http://127.0.0.1:$gport
source tests/bench/lib.sh
ak=AKIDSTRATABENCH sk=strata-bench-secret
s3op() { AWS_ACCESS_KEY_ID=$ak AWS_SECRET_ACCESS_KEY=$sk node tests/s3/s3op.js "$@"; }
# Percentile P (0-1) of the numbers in file F.
pfile() { sort -g "$2" | awk -v p="$1" '{v[NR] = $1} END {i = int(NR * p + 0.999); if (i < 1) i = 1; printf "%.1f", v[i] * 1000}'; }

echo "bench: gateway, $rounds rounds, ${big_mib} MiB objects for the large cases"
mkdir -p "$work/mnt" "$work/cache" "$work/pol"
start_shaped_s3 "$port" "$sport" "90 30" "bench"
head -c $((big_mib << 20)) /dev/urandom > "$work/big.bin"
curl -sf -X PUT -T "$work/big.bin" "$ep/bench/g/big.bin" >/dev/null
: > "$work/small.keys"
for i in $(seq -w 0 255); do
  head -c $((1 << 20)) /dev/urandom > "$work/s.bin"
  curl -sf -X PUT -T "$work/s.bin" "$ep/bench/g/small/$i" >/dev/null
  echo "small/$i" >> "$work/small.keys"
done
for i in $(seq -w 0 199); do echo "mixed/$i"; done > "$work/mixed.keys"
head -c 65536 /dev/urandom > "$work/k64"
for k in $(cat "$work/mixed.keys"); do curl -sf -X PUT -T "$work/k64" "$ep/bench/g/$k" >/dev/null; done
echo "{\"keys\": [{\"access_key\": \"$ak\", \"secret_key\": \"$sk\"}]}" > "$work/creds.json"
AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER "$build/strata-agent" -f --mount-point "$work/mnt" \
  --ufs s3://bench --s3-endpoint "$sep" --cache-dir "$work/cache" --cache-size $((big_mib * 3 + 1024))MiB \
  --socket "$work/sock" --policy-dir "$work/pol" --gateway-addr 127.0.0.1:$gport \
  --gateway-credentials "$work/creds.json" >>"$work/agent.log" 2>&1 &
pids+=($!); mounts+=("$work/mnt"); wait_mount "$work/mnt"
ctl() { "$build/agentctl" --socket "$work/sock" "$@"; }
ctl load -r g >/dev/null
want=$(sha256sum < "$work/big.bin" | cut -d' ' -f1)

# --- GET of a cached 1 GiB object ---------------------------------------------
# The gateway's bucket "g" is the namespace's directory g: bench/g/... in s3rver.
url=$(echo big.bin > "$work/k"; s3op "$gep" presign-many g "$work/k" GET)
[ "$(curl -s "$url" | sha256sum | cut -d' ' -f1)" = "$want" ] || { echo "bench: the gateway returned other bytes" >&2; exit 1; }
g1=() m1=() r1=()
for r in $(seq 1 "$rounds"); do
  drop
  t0=$(now); curl -sf -o /dev/null "$url"; t1=$(now)
  g=$(rate $((big_mib << 20)) "$t0" "$t1")
  drop
  m=$(read_rate "$work/mnt/g/big.bin")
  g1+=("$g"); m1+=("$m"); r1+=("$(div "$g" "$m")")
  echo "  round $r: GET 1 GiB $g MiB/s, mount $m MiB/s"
done

# --- GET of 1 MiB objects, 16 at once -------------------------------------------
s3op "$gep" presign-many g "$work/small.keys" GET | awk '{print "url = \"" $0 "\"\noutput = \"/dev/null\""}' > "$work/small-gw.cfg"
sed 's|^|'"$ep"'/bench/g/|' "$work/small.keys" | awk '{print "url = \"" $0 "\"\noutput = \"/dev/null\""}' > "$work/small-s3.cfg"
n_small=$(wc -l < "$work/small.keys")
g2=() s2=() r2=()
for r in $(seq 1 "$rounds"); do
  t0=$(now); curl -sf --no-progress-meter --parallel --parallel-max 16 -K "$work/small-gw.cfg"; t1=$(now)
  g=$(awk -v n="$n_small" -v a="$t0" -v b="$t1" 'BEGIN {printf "%.0f", n / (b - a)}')
  t0=$(now); curl -sf --no-progress-meter --parallel --parallel-max 16 -K "$work/small-s3.cfg"; t1=$(now)
  s=$(awk -v n="$n_small" -v a="$t0" -v b="$t1" 'BEGIN {printf "%.0f", n / (b - a)}')
  g2+=("$g"); s2+=("$s"); r2+=("$(div "$g" "$s")")
  echo "  round $r: 16 x GET 1 MiB: gateway $g ops/s, s3rver $s ops/s"
done

# --- PUT 1 GiB, through mode, to the shaped store ---------------------------------
g3=() c3=() r3=()
for r in $(seq 1 "$rounds"); do
  echo "put-$r.bin" > "$work/k"
  purl=$(s3op "$gep" presign-many g "$work/k" PUT)
  t0=$(now); curl -sf -o /dev/null -T "$work/big.bin" "$purl"; t1=$(now)
  g=$(rate $((big_mib << 20)) "$t0" "$t1")
  t0=$(now); curl -sf -o /dev/null -T "$work/big.bin" "$sep/bench/direct-$r.bin"; t1=$(now)
  c=$(rate $((big_mib << 20)) "$t0" "$t1")
  g3+=("$g"); c3+=("$c"); r3+=("$(div "$g" "$c")")
  echo "  round $r: PUT 1 GiB: gateway (through) $g MiB/s, curl to the shaped store $c MiB/s"
  ctl evict "g/put-$r.bin" >/dev/null 2>&1 || true
  curl -s -X DELETE "$ep/bench/g/put-$r.bin" >/dev/null; curl -s -X DELETE "$ep/bench/direct-$r.bin" >/dev/null
done

# --- mixed 64 KiB GET / PUT, 32 at once ----------------------------------------------
for i in $(seq -w 0 199); do echo "mput/$i"; done > "$work/mput.keys"
s3op "$gep" presign-many g "$work/mixed.keys" GET > "$work/mg.urls"
s3op "$gep" presign-many g "$work/mput.keys" PUT > "$work/mp.urls"
mixed_cfg() {  # GET-URLS PUT-URLS: alternating GET and PUT, 1000 requests
  paste -d'\n' "$1" "$2" | awk -v f="$work/k64" 'NF {i++; if (i % 2) print "url = \"" $0 "\"\noutput = \"/dev/null\""; else print "url = \"" $0 "\"\nupload-file = \"" f "\"\noutput = \"/dev/null\""}'
}
for _ in 1 2 3 4 5; do mixed_cfg "$work/mg.urls" "$work/mp.urls"; done | awk 'NR <= 2500' > "$work/mixed-gw.cfg"
sed 's|^|'"$ep"'/bench/g/|' "$work/mixed.keys" > "$work/sg.urls"
sed 's|^|'"$ep"'/bench/g/|' "$work/mput.keys" > "$work/sp.urls"
for _ in 1 2 3 4 5; do mixed_cfg "$work/sg.urls" "$work/sp.urls"; done | awk 'NR <= 2500' > "$work/mixed-s3.cfg"
sed "s|$ep/|$sep/|" "$work/mixed-s3.cfg" > "$work/mixed-shaped.cfg"
p99g=() p99s=() p50g=() p50s=() p99h=() p50h=() p99gg=() p99gp=()
for r in $(seq 1 "$rounds"); do
  curl -s --no-progress-meter --parallel --parallel-max 32 -w '%{time_total} %{method}\n' -K "$work/mixed-gw.cfg" > "$work/tgm"
  cut -d' ' -f1 "$work/tgm" > "$work/tg"
  awk '$2 == "GET" {print $1}' "$work/tgm" > "$work/tg-get"
  awk '$2 == "PUT" {print $1}' "$work/tgm" > "$work/tg-put"
  curl -s --no-progress-meter --parallel --parallel-max 32 -w '%{time_total}\n' -K "$work/mixed-s3.cfg" > "$work/ts"
  curl -s --no-progress-meter --parallel --parallel-max 32 -w '%{time_total}\n' -K "$work/mixed-shaped.cfg" > "$work/th"
  p99g+=("$(pfile 0.99 "$work/tg")"); p99s+=("$(pfile 0.99 "$work/ts")"); p99h+=("$(pfile 0.99 "$work/th")")
  p50g+=("$(pfile 0.5 "$work/tg")"); p50s+=("$(pfile 0.5 "$work/ts")"); p50h+=("$(pfile 0.5 "$work/th")")
  p99gg+=("$(pfile 0.99 "$work/tg-get")"); p99gp+=("$(pfile 0.99 "$work/tg-put")")
  echo "  round $r: mixed 64 KiB, 32 at once: gateway p99 ${p99g[-1]} ms (p50 ${p50g[-1]}; GETs p99 ${p99gg[-1]}, PUTs p99 ${p99gp[-1]}), shaped store p99 ${p99h[-1]} ms (p50 ${p50h[-1]}), s3rver p99 ${p99s[-1]} ms (p50 ${p50s[-1]}), $(wc -l < "$work/tg") requests each"
done

# --- table -----------------------------------------------------------------------------
file="bench-results/gateway-$(date -u +%Y%m%dT%H%M%SZ).txt"
mkdir -p bench-results
{
  echo "Strata gateway bench, $(date -u), $(nproc) cores, commit $(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet 2>/dev/null || echo -dirty)"
  echo "$rounds interleaved rounds; ratio within each round, the median and [min-max]"
  echo
  printf '%-64s %-26s %s\n' "case" "result" "goal"
  printf '%-64s %-26s %s\n' "GET of a cached ${big_mib} MiB object, one client (curl) vs the mount" "$(summary "${r1[@]}")" ">= 0.8x"
  printf '%-64s %-26s %s\n' "GET of cached 1 MiB objects, 16 clients, ops/s vs s3rver direct" "$(summary "${r2[@]}")" ">= 2x"
  printf '%-64s %-26s %s\n' "PUT ${big_mib} MiB, through mode, shaped store vs curl PUT to it" "$(summary "${r3[@]}")" ">= 0.9x"
  printf '%-64s %-26s %s\n' "mixed GET/PUT 64 KiB, 32 clients, p99 (median of rounds)" "$(median "${p99g[@]}") ms" "reported"
  printf '%-64s %-26s %s\n' "  gateway GETs only / PUTs only, p99" "$(median "${p99gg[@]}") / $(median "${p99gp[@]}") ms" ""
  printf '%-64s %-26s %s\n' "  the same against the store the agent writes to (shaped), p99" "$(median "${p99h[@]}") ms" "(the store's figure)"
  printf '%-64s %-26s %s\n' "  the same against s3rver itself (no shaping), p99" "$(median "${p99s[@]}") ms" ""
  printf '%-64s %-26s %s\n' "  p50: gateway / shaped store / s3rver" "$(median "${p50g[@]}") / $(median "${p50h[@]}") / $(median "${p50s[@]}") ms" ""
  echo
  echo "runs:"
  echo "  GET big gateway MiB/s     ${g1[*]}"
  echo "  read via mount MiB/s      ${m1[*]}"
  echo "  16 x 1 MiB gateway ops/s  ${g2[*]}"
  echo "  16 x 1 MiB s3rver ops/s   ${s2[*]}"
  echo "  PUT gateway MiB/s         ${g3[*]}"
  echo "  PUT curl direct MiB/s     ${c3[*]}"
  echo "  mixed p99 ms gateway      ${p99g[*]}"
  echo "  mixed p99 ms shaped store ${p99h[*]}"
  echo "  mixed p99 ms s3rver       ${p99s[*]}"
} | tee "$file"
echo "bench: results kept in $file"
