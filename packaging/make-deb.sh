#!/usr/bin/env bash
# Builds the Debian package from this tree's build (make deb calls it):
#   packaging/make-deb.sh BUILD_DIR   ->  BUILD_DIR/deb/strata_VERSION_ARCH.deb
# packaging/debian becomes the debian/ directory of a staging source tree;
# its rules run `make install` of this tree, so nothing is compiled twice.
# lintian checks the result (overrides, each with its reason, are in
# packaging/debian/strata.lintian-overrides).
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)
build=$(realpath "${1:-build}")
for tool in dpkg-buildpackage dh lintian; do
  command -v "$tool" >/dev/null || { echo "make-deb: $tool is missing: run packaging/install-deps.sh --test" >&2; exit 1; }
done
version=$(sed -n '1s/^[^(]*(\([^)]*\)).*/\1/p' packaging/debian/changelog)
out=$build/deb
stage=$out/strata-$version
rm -rf "$out"
mkdir -p "$stage"
cp -r packaging/debian "$stage/debian"
(cd "$stage" && STRATA_TOP=$top STRATA_BUILD=$build dpkg-buildpackage -b -uc -us --no-sign >"$out/build.log" 2>&1) || {
  tail -n 40 "$out/build.log" >&2
  echo "make-deb: dpkg-buildpackage failed (the whole log: $out/build.log)" >&2
  exit 1
}
deb=$(ls "$out"/strata_"$version"_*.deb)
lintian --fail-on error,warning --suppress-tags-from-file /dev/null "$deb" || {
  echo "make-deb: lintian found errors or warnings in $deb" >&2
  exit 1
}
echo "$deb"
