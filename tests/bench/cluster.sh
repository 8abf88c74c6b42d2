#!/usr/bin/env bash
# The cluster bench (issue 10's table), every row against a baseline measured
# in the same run, round by round (ROUNDS, default 5):
#
#   peer hit        1 GiB cached on agent B, read on agent A (--no-serve, so B
#                   owns every block), page caches dropped; vs A's own warm
#                   read of it, and vs a cold read from the S3-shaped store
#                   (s3rver behind tests/bench/shaper.cc, 90 MB/s per
#                   connection, 30 ms first byte) by an agent not in a cluster
#   owner killed    B killed -9 a quarter into A's read of the file (1 MiB
#                   reads): failed reads, bytes compared, the slowest read
#   failure detection  N = 5, 10, 20 members on loopback (build/gossip_node:
#                   the agent's gossip module without a mount) and N Serf
#                   agents (Debian's serf, its LAN defaults): kill -9 of one
#                   member, time until every other member marks it dead
#   join            N = 20: a new member, time until all 20 see it alive
#   idle gossip     N = 20: bytes per second each member sends (sealed), idle
#   false deads     FALSE_DEAD_S (default 600 s) with one member CPU-starved
#                   (cgroup cpu.max 5 %) and 10 % of gossip packets dropped
#                   (nftables numgen): "dead" declarations (0 expected);
#                   FALSE_DEAD_S=0 skips it
# Needs root (mounts, drop_caches, cgroups, nftables).
set -euo pipefail
build=${1:-build}
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
size_mib=${CLUSTER_MIB:-1024}
rounds=${ROUNDS:-5}
false_dead_s=${FALSE_DEAD_S:-600}
work=$(mktemp -d /tmp/strata-cl-XXXXXX)
port=$((20000 + RANDOM % 10000))
sport=$((port + 1))
ep=http://127.0.0.1:$port
sep=http://127.0.0.1:$sport
bucket=bench
source tests/bench/lib.sh
p99() { printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {i = int(NR * 0.99 + 0.999); if (i > NR) i = NR; print v[i]}'; }
nowms() { date +%s%3N; }
gp=$((10000 + RANDOM % 8000))  # gossip ports from here: below s3rver's and the ephemeral range
# take_port VAR: the next free-looking gossip port into VAR (no subshell: gp must advance).
take_port() { gp=$((gp + 1)); printf -v "$1" '%s' "$gp"; }
head -c 32 /dev/urandom | base64 > "$work/key"
result=()
out() { result+=("$1"); echo "$1"; }

echo "bench: cluster, $rounds rounds, ${size_mib} MiB for the peer read"

# --- peer hit ----------------------------------------------------------------
start_shaped_s3 "$port" "$sport" "90 30" "$bucket"
head -c $((size_mib << 20)) /dev/urandom > "$work/big.bin"
curl -sf -X PUT -T "$work/big.bin" "$ep/$bucket/big.bin" >/dev/null
want=$(sha256sum < "$work/big.bin" | cut -d' ' -f1)
rm -f "$work/big.bin"
agent() {  # name extra-flags...
  local name=$1; shift
  mkdir -p "$work/$name-mnt" "$work/$name-cache" "$work/$name-pol"
  AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER "$build/strata-agent" -f \
    --mount-point "$work/$name-mnt" --ufs "s3://$bucket" --s3-endpoint "$sep" --cache-dir "$work/$name-cache" \
    --cache-size $((size_mib * 2 + 512))MiB --socket "$work/$name.sock" --policy-dir "$work/$name-pol" \
    "$@" >>"$work/$name.log" 2>&1 &
  pids+=($!); mounts+=("$work/$name-mnt"); wait_mount "$work/$name-mnt"
}
ctl() { local name=$1; shift; "$build/agentctl" --socket "$work/$name.sock" "$@"; }
take_port bport; take_port aport; take_port nport
agent b --cluster-key-file "$work/key" --cluster-bind 127.0.0.1:$bport --node-name b
b_pid=${pids[-1]}
agent a --cluster-key-file "$work/key" --cluster-bind 127.0.0.1:$aport --node-name a --join 127.0.0.1:$bport --no-serve
# n: like a, but keeps no local copy of what the peer serves (on_admit), so
# its read is the network path alone, without writing the blocks to this
# machine's one disk (the disk b reads them from).
mkdir -p "$work/n-pol"
echo 'strata.on_admit(function(f) if f.source == "peer" then return false end end)' > "$work/n-pol/nokeep.lua"
agent n --cluster-key-file "$work/key" --cluster-bind 127.0.0.1:$nport --node-name n --join 127.0.0.1:$bport --no-serve
agent c
for _ in $(seq 1 100); do [ "$(ctl a members --json | jq '[.members[] | select(.state == "alive")] | length')" = 2 ] && break; sleep 0.1; done
ctl b load big.bin >/dev/null
peer=() own=() cold=() nokeep=() r_own=() r_cold=() r_nokeep=()
for r in $(seq 1 "$rounds"); do
  ctl a evict big.bin >/dev/null; drop
  p=$(read_rate "$work/a-mnt/big.bin"); peer+=("$p")
  drop
  o=$(read_rate "$work/a-mnt/big.bin"); own+=("$o")
  ctl c evict big.bin >/dev/null; drop
  c=$(read_rate "$work/c-mnt/big.bin"); cold+=("$c")
  drop
  k=$(read_rate "$work/n-mnt/big.bin"); nokeep+=("$k")
  r_own+=("$(div "$p" "$o")"); r_cold+=("$(div "$p" "$c")"); r_nokeep+=("$(div "$k" "$o")")
  echo "  round $r: peer $p MiB/s, A warm $o, cold shaped $c, peer without a local copy $k"
done
got=$(sha256sum < "$work/a-mnt/big.bin" | cut -d' ' -f1)
[ "$got" = "$want" ] || { echo "bench: the peer read returned other bytes" >&2; exit 1; }
a_store=$(ctl a stat --json | jq '.mounts[0].bytes_fetched')

# --- the owner killed mid-read ---------------------------------------------------
# A reads big.bin (evicted) in 1 MiB reads, one dd each (timed alone); B, the
# owner of every block, is killed -9 a quarter of the way in. Counted: reads
# that failed, the bytes against the original, the slowest single read.
ctl a evict big.bin >/dev/null; drop
kill_fails=0 kill_max_ms=0
: > "$work/killread.bin"
for i in $(seq 0 $((size_mib - 1))); do
  [ "$i" = $((size_mib / 4)) ] && kill -9 "$b_pid"
  t0=$(date +%s%N)
  dd if="$work/a-mnt/big.bin" bs=1M skip="$i" count=1 status=none >> "$work/killread.bin" || kill_fails=$((kill_fails + 1))
  ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  [ "$ms" -gt "$kill_max_ms" ] && kill_max_ms=$ms
done
[ "$(sha256sum < "$work/killread.bin" | cut -d' ' -f1)" = "$want" ] || kill_fails="$kill_fails, and the bytes differ"
rm -f "$work/killread.bin"
echo "  owner killed mid-read: $kill_fails failed reads, slowest read $kill_max_ms ms"
aes=$(openssl speed -evp aes-256-gcm -bytes 4194304 -seconds 2 2>/dev/null | awk 'tolower($1) == "aes-256-gcm" {sub(/k$/, "", $2); printf "%.0f", $2 / 1024}')

# --- membership: strata vs serf ----------------------------------------------
command -v serf >/dev/null || { echo "bench: serf missing (packaging/install-deps.sh --bench)" >&2; exit 1; }
cat > "$work/serf-handler.sh" <<'H'
#!/bin/sh
while read -r name rest; do echo "$(date +%s%3N) $SERF_SELF_NAME $name" >> "$SERF_EVENTS"; done
H
chmod +x "$work/serf-handler.sh"
declare -A spid sport_of
start_strata() {  # name port [join-port]
  "$build/gossip_node" "$1" "127.0.0.1:$2" "$work/key" ${3:+127.0.0.1:$3} > "$work/g-$1.log" 2>&1 &
  spid[$1]=$!; pids+=($!); disown "$!"
}
start_serf() {  # name port [join-port]
  local rpc; take_port rpc
  SERF_EVENTS="$work/serf-events.log" serf agent -node="$1" -bind="127.0.0.1:$2" -rpc-addr="127.0.0.1:$rpc" \
    ${3:+-retry-join=127.0.0.1:$3} -retry-interval=1s -event-handler="member-failed=$work/serf-handler.sh" -log-level=err \
    > "$work/s-$1.log" 2>&1 &
  spid[$1]=$!; pids+=($!); disown "$!"; sport_of[$1]=$rpc
}
# Members whose latest line about $2 in their log says $3 (strata logs).
count_state() {  # prefix subject state names...
  local prefix=$1 subj=$2 st=$3 n=0; shift 3
  for m in "$@"; do
    [ "$(grep " state $subj " "$work/$prefix-$m.log" 2>/dev/null | tail -n 1 | awk '{print $4}')" = "$st" ] && n=$((n + 1))
  done
  echo $n
}
serf_alive() {  # name: members it sees alive
  serf members -rpc-addr="127.0.0.1:${sport_of[$1]}" -status=alive 2>/dev/null | wc -l
}
declare -A det_strata det_serf det_ratio det_p99 det_med
for n in 5 10 20; do
  names=() snames=()
  take_port p0; start_strata "g0" "$p0"; names+=(g0)
  take_port q0; start_serf "s0" "$q0"; snames+=(s0)
  for _ in $(seq 1 100); do serf members -rpc-addr="127.0.0.1:${sport_of[s0]}" >/dev/null 2>&1 && break; sleep 0.1; done
  declare -A gport=([g0]=$p0) sp=([s0]=$q0)
  for i in $(seq 1 $((n - 1))); do
    take_port p; start_strata "g$i" "$p" "$p0"; names+=("g$i"); gport[g$i]=$p
    take_port q; start_serf "s$i" "$q" "$q0"; snames+=("s$i"); sp[s$i]=$q
  done
  for _ in $(seq 1 300); do
    ok=1
    for m in "${names[@]}"; do [ "$(count_state g "$m" alive "${names[@]}")" = "$n" ] || { ok=0; break; }; done
    [ $ok = 1 ] && [ "$(serf_alive s0)" = "$n" ] && break
    sleep 0.1
  done
  if [ "$n" = 20 ]; then
    # Join: a 21st member, seen alive by all 20.
    take_port j; t0=$(nowms); start_strata "gj" "$j" "$p0"
    for _ in $(seq 1 300); do [ "$(count_state g gj alive "${names[@]}")" = 20 ] && break; sleep 0.01; done
    t_seen=$(for m in "${names[@]}"; do grep " state gj alive" "$work/g-$m.log" | head -n 1 | awk '{print $1}'; done | sort -n | tail -n 1)
    join_ms=$((t_seen - t0))
    kill -9 "${spid[gj]}" 2>/dev/null || true
    # Idle gossip: 20 s of the bytes lines (after the join settled).
    sleep 22
    bytes_rates=()
    for m in "${names[@]}"; do
      bytes_rates+=("$(grep ' bytes ' "$work/g-$m.log" | tail -n 5 | awk 'NR == 1 {t = $1; b = $4} END {if ($1 > t) printf "%.0f", ($4 - b) * 1000 / ($1 - t); else print 0}')")
    done
    idle_bps=$(median "${bytes_rates[@]}")
  fi
  ds=() dz=()
  for r in $(seq 1 "$rounds"); do
    v=$(( (r % (n - 1)) + 1 ))
    # strata
    t0=$(nowms); kill -9 "${spid[g$v]}" 2>/dev/null || echo "  (g$v had already exited: $(tail -n 3 "$work/g-g$v.log"))"
    others=(); for m in "${names[@]}"; do [ "$m" != "g$v" ] && others+=("$m"); done
    for _ in $(seq 1 6000); do [ "$(count_state g "g$v" dead "${others[@]}")" = $((n - 1)) ] && break; sleep 0.01; done
    last=$(for m in "${others[@]}"; do grep " state g$v dead" "$work/g-$m.log" | tail -n 1 | awk '{print $1}'; done | sort -n | tail -n 1)
    ds+=("$(awk -v a="$t0" -v b="$last" 'BEGIN {printf "%.2f", (b - a) / 1000}')")
    # serf
    : > "$work/serf-events.log"
    t0=$(nowms); kill -9 "${spid[s$v]}" 2>/dev/null || echo "  (serf s$v had already exited: $(tail -n 3 "$work/s-s$v.log"))"
    for _ in $(seq 1 6000); do [ "$(grep -c " s$v\$" "$work/serf-events.log" 2>/dev/null || true)" -ge $((n - 1)) ] && break; sleep 0.01; done
    last=$(grep " s$v\$" "$work/serf-events.log" | awk '{print $1}' | sort -n | tail -n 1)
    dz+=("$(awk -v a="$t0" -v b="$last" 'BEGIN {printf "%.2f", (b - a) / 1000}')")
    echo "  N=$n round $r: strata ${ds[-1]} s, serf ${dz[-1]} s"
    # Both come back under their names for the next round.
    start_strata "g$v" "${gport[g$v]}" "$p0"
    start_serf "s$v" "${sp[s$v]}" "$q0"
    for _ in $(seq 1 500); do [ "$(count_state g "g$v" alive "${others[@]}")" = $((n - 1)) ] && [ "$(serf_alive s0)" = "$n" ] && break; sleep 0.05; done
  done
  ratios=(); for i in "${!ds[@]}"; do ratios+=("$(div "${ds[$i]}" "${dz[$i]}")"); done
  det_strata[$n]="${ds[*]}"; det_serf[$n]="${dz[*]}"
  det_ratio[$n]=$(summary "${ratios[@]}")
  det_p99[$n]=$(p99 "${ds[@]}")
  det_med[$n]="$(median "${ds[@]}") s / $(median "${dz[@]}") s"
  for m in "${names[@]}" "${snames[@]}"; do kill -9 "${spid[$m]}" 2>/dev/null || true; done
  unset gport sp
  sleep 1
done

# --- false deads under starvation and loss -------------------------------------
false_deads="skipped (FALSE_DEAD_S=0)"
if [ "$false_dead_s" -gt 0 ]; then
  command -v nft >/dev/null || { echo "bench: nft missing (packaging/install-deps.sh --bench)" >&2; exit 1; }
  names=(); take_port p0; start_strata "f0" "$p0"; names+=(f0); ports=("$p0")
  for i in 1 2 3 4; do take_port p; start_strata "f$i" "$p" "$p0"; names+=("f$i"); ports+=("$p"); done
  sleep 3
  # The starved member: cgroup v1 (cpu.cfs_quota_us) or v2 (cpu.max), whichever this kernel mounts.
  if [ -f /sys/fs/cgroup/cpu/cpu.cfs_quota_us ]; then
    cg=/sys/fs/cgroup/cpu/strata-bench-$$; mkdir -p "$cg"
    echo 100000 > "$cg/cpu.cfs_period_us"; echo 5000 > "$cg/cpu.cfs_quota_us"; echo "${spid[f4]}" > "$cg/tasks"
    cg_parent=/sys/fs/cgroup/cpu/tasks
  else
    grep -qw cpu /sys/fs/cgroup/cgroup.subtree_control || echo +cpu > /sys/fs/cgroup/cgroup.subtree_control
    cg=/sys/fs/cgroup/strata-bench-$$; mkdir -p "$cg"
    echo "5000 100000" > "$cg/cpu.max"; echo "${spid[f4]}" > "$cg/cgroup.procs"
    cg_parent=/sys/fs/cgroup/cgroup.procs
  fi
  nft add table inet strata_bench
  nft add chain inet strata_bench input '{ type filter hook input priority 0; }'
  for p in "${ports[@]}"; do nft add rule inet strata_bench input udp dport "$p" numgen random mod 100 '<' 10 drop; done
  echo "  false deads: ${false_dead_s} s with f4 at 5 % of a CPU and 10 % of gossip packets dropped"
  sleep "$false_dead_s"
  nft delete table inet strata_bench
  echo "${spid[f4]}" > "$cg_parent"; rmdir "$cg"
  false_deads=$(cat "$work"/g-f*.log | grep -c ' state f[0-9] dead' || true)
fi

# --- table -----------------------------------------------------------------------
file="bench-results/cluster-$(date -u +%Y%m%dT%H%M%SZ).txt"
mkdir -p bench-results
{
  echo "Strata cluster bench, $(date -u), $(nproc) cores, commit $(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet 2>/dev/null || echo -dirty)"
  echo "$rounds interleaved rounds; ratio within each round, the median and [min-max]"
  echo
  printf '%-64s %-26s %s\n' "case" "result" "goal"
  printf '%-64s %-26s %s\n' "sequential peer hit (1 GiB on B, read on A) vs A's own warm read" "$(summary "${r_own[@]}")" ">= 0.8x"
  printf '%-64s %-26s %s\n' "sequential peer hit vs a cold read from the S3-shaped store" "$(summary "${r_cold[@]}")" ">= 2x"
  printf '%-64s %-26s %s\n' "  the peer hit keeping no local copy (on_admit) vs A's warm read" "$(summary "${r_nokeep[@]}")" "(the network path)"
  for n in 5 10 20; do
    printf '%-64s %-26s %s\n' "failure detection, kill -9, N=$n: strata / serf (all members)" "${det_ratio[$n]}" "<= 0.5x"
    printf '%-64s %-26s %s\n' "  strata p99 over rounds (median strata / serf: ${det_med[$n]})" "${det_p99[$n]} s" "<= 5 s"
  done
  printf '%-64s %-26s %s\n' "reads failed while the owner dies mid-read (kill -9)" "$kill_fails" "0"
  printf '%-64s %-26s %s\n' "  the slowest 1 MiB read meanwhile (--peer-timeout 1 s)" "$kill_max_ms ms" "<= 1000 ms"
  printf '%-64s %-26s %s\n' "join seen by every member, N=20" "$join_ms ms" "<= 1000 ms"
  printf '%-64s %-26s %s\n' "gossip traffic per member, idle, N=20 (sealed bytes sent)" "$idle_bps B/s" "<= 2048 B/s"
  printf '%-64s %-26s %s\n' "false dead declarations (${false_dead_s} s, one member starved, 10 % loss)" "$false_deads" "0"
  echo
  echo "runs:"
  echo "  peer hit MiB/s      ${peer[*]}"
  echo "  A warm MiB/s        ${own[*]}"
  echo "  cold shaped MiB/s   ${cold[*]}"
  echo "  peer, no copy MiB/s ${nokeep[*]}"
  echo "  A's store bytes over all rounds: $a_store (the peer served the rest)"
  echo "  AES-256-GCM on this CPU (openssl speed, one core, 4 MiB buffers): ${aes:-?} MiB/s"
  for n in 5 10 20; do echo "  detection N=$n strata s: ${det_strata[$n]} | serf s: ${det_serf[$n]}"; done
} | tee "$file"
echo "bench: results kept in $file"
