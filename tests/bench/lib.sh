# Shared by the bench scripts (sourced): the processes and mounts a bench
# starts are registered in pids/mounts and torn down on exit with $work and
# the in-memory source $src_shm; timing and rate helpers.
pids=()
mounts=()

cleanup() {
  for m in "${mounts[@]}"; do fusermount3 -u -z "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "${work:?}"
  rm -f "${src_shm:-}"
}
trap cleanup EXIT
trap 'echo "bench: stopped at ${BASH_SOURCE[0]}:$LINENO: $BASH_COMMAND" >&2' ERR

now() { date +%s.%N; }
drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }
seconds() { awk -v a="$1" -v z="$2" 'BEGIN { printf "%.3f", z - a }'; }
# MiB/s of $1 bytes between times $2 and $3.
rate() { awk -v b="$1" -v a="$2" -v z="$3" 'BEGIN { printf "%.1f", b / 1048576 / (z - a) }'; }
# Reads a file sequentially in 1 MiB requests; prints MiB/s.
read_rate() {
  local t0 t1 bytes
  t0=$(now); bytes=$(dd if="$1" of=/dev/null bs=1M 2>&1 | awk '/bytes/ {print $1}'); t1=$(now)
  rate "$bytes" "$t0" "$t1"
}
wait_mount() {
  for _ in $(seq 1 200); do grep -q " $1 " /proc/self/mounts && return 0; sleep 0.1; done
  echo "bench: $1 did not mount" >&2; return 1
}
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
# "median [min-max]" of ratios; a / b.
summary() {
  printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {printf "%.2fx [%.2f-%.2f]", v[int((NR + 1) / 2)], v[1], v[NR]}'
}
div() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print 0 }'; }
# s3rver on 127.0.0.1:$1 (data in $work/s3) with bucket $4, and the shaping
# proxy on $2 in front of it ($3: "MB_PER_S FIRST_BYTE_MS"); waits until up.
start_shaped_s3() {  # port shaped-port "rate delay" bucket
  mkdir -p "$work/s3"
  NODE_OPTIONS=--openssl-legacy-provider tests/s3/node_modules/.bin/s3rver -d "$work/s3" -a 127.0.0.1 -p "$1" -s >/dev/null 2>&1 &
  pids+=($!)
  # shellcheck disable=SC2086
  "$build/shaper" "$2" "$1" $3 &
  pids+=($!)
  for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$1" && break; sleep 0.1; done
  curl -sf -X PUT "http://127.0.0.1:$1/$4" >/dev/null
}
