#!/usr/bin/env bash
# Installs what building, running and testing Strata needs on Debian 12.
#   install-deps.sh            build + run dependencies
#   install-deps.sh --test     also the test tools (s3rver and Azurite from npm, curl, rsync, Ceph for a local RGW, clang's libFuzzer,
#                              debhelper and lintian for the package, Prometheus, Chromium, yamllint, Go for the chart's templates)
#   install-deps.sh --bench    also the comparison tools (s3fs-fuse, rclone, serf), jq, fio and nftables
# Idempotent: packages already present are not fetched again.
set -euo pipefail

build_pkgs=(g++ make pkg-config fuse3 libfuse3-dev liblua5.4-dev libuv1-dev
            libcurl4-openssl-dev liblmdb-dev libcli11-dev catch2 libssl-dev
            nlohmann-json3-dev libxxhash-dev zlib1g-dev)
test_pkgs=(curl rsync git tzdata nodejs npm xxd ceph-mon ceph-osd radosgw ceph-common clang libclang-rt-14-dev nftables dnsmasq-base awscli rclone s3fs
           debhelper dpkg-dev lintian man-db systemd prometheus chromium yamllint python3-yaml golang-go)
bench_pkgs=(s3fs rclone jq fio serf nftables openssl)

want=("${build_pkgs[@]}")
for arg in "$@"; do
  case "$arg" in
    --test) want+=("${test_pkgs[@]}") ;;
    --bench) want+=("${test_pkgs[@]}" "${bench_pkgs[@]}") ;;
    *) echo "install-deps.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${want[@]}"; do
  # nodejs/npm may come from elsewhere (nvm, a newer image): a working binary is enough.
  case "$p" in
    nodejs) command -v node >/dev/null && continue ;;
    npm) command -v npm >/dev/null && continue ;;
  esac
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "install-deps: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# The test S3 server lives in the project's own node_modules (tests/s3/), not globally.
if printf '%s\n' "$@" | grep -qE -- '--test|--bench'; then
  here=$(cd "$(dirname "$0")/.." && pwd)
  if [ ! -x "$here/tests/s3/node_modules/.bin/s3rver" ] || \
     [ ! -d "$here/tests/s3/node_modules/@smithy/signature-v4" ] || \
     [ ! -d "$here/tests/s3/node_modules/@aws-sdk/client-s3" ]; then
    (cd "$here/tests/s3" && npm install --no-audit --no-fund --loglevel=error)
  fi
  # Azurite (Azure Blob) and the Azure SDK whose signer Strata's is checked against.
  if [ ! -x "$here/tests/azure/node_modules/.bin/azurite-blob" ] || \
     [ ! -d "$here/tests/azure/node_modules/@azure/storage-blob" ]; then
    (cd "$here/tests/azure" && npm install --no-audit --no-fund --loglevel=error)
  fi
fi
