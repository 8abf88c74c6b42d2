#!/usr/bin/env bash
# A one-node Ceph RADOS Gateway on 127.0.0.1 for the integration tests: a
# monitor, one OSD on the memstore object store (nothing touches a disk), and
# radosgw with a user whose keys are S3RVER / S3RVER (what the tests give
# every agent). Every path is inside DIR; nothing in /etc or /var is used.
#
#   tests/rgw/rgw.sh start DIR PORT    prints the endpoint when it answers
#   tests/rgw/rgw.sh stop DIR
set -euo pipefail
cmd=${1:?start|stop} dir=${2:?DIR}

stop() {
  for p in "$dir"/run/*.pid; do
    [ -f "$p" ] || continue
    kill -9 "$(cat "$p")" 2>/dev/null || true
  done
}

if [ "$cmd" = stop ]; then stop; exit 0; fi
port=${3:?PORT}
for b in ceph-mon ceph-osd radosgw radosgw-admin ceph-authtool monmaptool ceph; do
  command -v "$b" >/dev/null || { echo "rgw.sh: $b is missing (packaging/install-deps.sh --test installs Ceph)" >&2; exit 1; }
done
rm -rf "$dir"; mkdir -p "$dir"/{run,log,mon,osd,rgw}
fsid=$(cat /proc/sys/kernel/random/uuid)
conf=$dir/ceph.conf
cat > "$conf" <<CONF
[global]
fsid = $fsid
mon host = 127.0.0.1:6789
mon initial members = a
public network = 127.0.0.0/8
ms bind ipv4 = true
ms bind ipv6 = false
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
keyring = $dir/keyring
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
mon allow pool size one = true
mon warn on pool no redundancy = false
mon max pg per osd = 1000
osd objectstore = memstore
memstore device bytes = 4294967296
osd crush chooseleaf type = 0
run dir = $dir/run
pid file = $dir/run/\$name.pid
admin socket = $dir/run/\$name.asok
log file = $dir/log/\$name.log
mon data = $dir/mon/\$name
osd data = $dir/osd/\$name
rgw data = $dir/rgw/\$name
[client.rgw.test]
rgw frontends = beast endpoint=127.0.0.1:$port
rgw dns name = localhost
keyring = $dir/keyring
CONF
c=(-c "$conf")
ceph-authtool "${c[@]}" --create-keyring "$dir/keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
ceph-authtool "${c[@]}" "$dir/keyring" --gen-key -n client.admin --cap mon 'allow *' --cap osd 'allow *' \
  --cap mds 'allow *' --cap mgr 'allow *' >/dev/null
monmaptool --create --add a 127.0.0.1:6789 --fsid "$fsid" "$dir/monmap" >/dev/null
ceph-mon "${c[@]}" --mkfs -i a --monmap "$dir/monmap" --keyring "$dir/keyring" 2>>"$dir/log/start.log"
ceph-mon "${c[@]}" -i a 2>>"$dir/log/start.log"
# Every wait below is bounded.
timeout 60 ceph "${c[@]}" -s >/dev/null
id=$(timeout 30 ceph "${c[@]}" osd create)
mkdir -p "$dir/osd/osd.$id"
ceph-osd "${c[@]}" -i "$id" --mkfs --mkkey --no-mon-config --keyring "$dir/osd/osd.$id/keyring" >/dev/null 2>&1
timeout 30 ceph "${c[@]}" auth add "osd.$id" osd 'allow *' mon 'allow profile osd' \
  -i "$dir/osd/osd.$id/keyring" >/dev/null 2>&1
timeout 30 ceph "${c[@]}" osd crush add "osd.$id" 1.0 host=localhost root=default >/dev/null 2>&1
ceph-osd "${c[@]}" -i "$id" --keyring "$dir/osd/osd.$id/keyring" 2>>"$dir/log/start.log"
timeout 30 ceph "${c[@]}" auth get-or-create client.rgw.test mon 'allow rw' osd 'allow rwx' >> "$dir/keyring"
radosgw "${c[@]}" -n client.rgw.test --keyring "$dir/keyring" 2>>"$dir/log/start.log"
for _ in $(seq 1 600); do
  curl -s -o /dev/null "http://127.0.0.1:$port" && break
  sleep 0.1
done
curl -s -o /dev/null "http://127.0.0.1:$port" || { echo "rgw.sh: radosgw did not answer on $port; see $dir/log" >&2; stop; exit 1; }
timeout 60 radosgw-admin "${c[@]}" -n client.admin user create --uid=strata --display-name=strata \
  --access-key=S3RVER --secret-key=S3RVER >/dev/null
echo "http://127.0.0.1:$port"
