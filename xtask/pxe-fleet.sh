#!/bin/sh
# The PXE root of a fleet (issue 23, BENCHMARKS.md "PXE root for a fleet"):
#   xtask/pxe-fleet.sh MKRESCUE N SIM WORKDIR
# builds this machine as N hosts that differ only in configuration
# (hostname, one user, one modprobe.d file, network addresses) into one PXE
# root, then simulates SIM hosts by giving each further host a copy of a
# built host's layer and boot.ipxe, and its own pxelinux and GRUB menus
# under its own MAC, and re-writes SHA256SUMS over the tree.
#
# Each build runs in a private mount namespace (unshare --mount) over a
# root whose /usr, /boot and dpkg database are this machine's (read-only
# binds), /proc and /sys the live ones, and /etc an edited copy under
# WORKDIR: nothing of the machine's is written. Needs root, unshare, and
# tests/fixtures/network (the captured `ip -j` outputs, run from the
# repository's top).
set -eu
BIN=$(readlink -f "$1"); N=$2; SIM=$3; W=$4
FIX=$(pwd)/tests/fixtures/network
[ -f "$FIX/host-ip-addr.json" ] || { echo "run from the repository's top (no $FIX)" >&2; exit 2; }
rm -rf "$W"; mkdir -p "$W"
T="$W/tftp"
files() { find "$1" -type f -printf '%s\n' | awk '{s+=$1} END {print s}'; }
for i in $(seq 1 "$N"); do
  h=fleet-$i; R="$W/$h"
  mkdir -p "$R/usr" "$R/boot" "$R/proc" "$R/sys" "$R/var/lib/dpkg" "$R/root" "$R/dev" "$R/run" "$R/tmp"
  for l in bin sbin lib lib64; do if [ -L "/$l" ]; then cp -P "/$l" "$R/$l"; fi; done
  cp -a /etc/. "$R/etc/"
  echo "$h" > "$R/etc/hostname"
  printf '127.0.0.1 localhost\n192.0.2.%s %s\n' $((10+i)) "$h" > "$R/etc/hosts"
  echo "user$i:x:$((1000+i)):$((1000+i)):User $i:/home/user$i:/bin/bash" >> "$R/etc/passwd"
  echo "user$i:x:$((1000+i)):" >> "$R/etc/group"
  mkdir -p "$R/etc/modprobe.d"
  echo "options loop max_loop=$((8*i))" > "$R/etc/modprobe.d/$h.conf"
  # The build resolves its own binary below the root, at its own path.
  mkdir -p "$R/$(dirname "$BIN")"; ln "$BIN" "$R/$BIN" 2>/dev/null || cp "$BIN" "$R/$BIN"
  for f in host-ip-addr host-ip4-route host-ip6-route; do
    sed -e "s/192\.0\.2\.2\"/192.0.2.$((10+i))\"/g" -e "s/fd00::2\"/fd00::$((10+i))\"/g" \
      "$FIX/$f.json" > "$W/$h-$f.json"
  done
  printf '[network]\nip_addr_json = "%s"\nip4_route_json = "%s"\nip6_route_json = "%s"\n' \
    "$W/$h-host-ip-addr.json" "$W/$h-host-ip4-route.json" "$W/$h-host-ip6-route.json" > "$W/$h.toml"
  R="$R" unshare --mount --propagation private -- sh -c '
    for d in usr boot var/lib/dpkg; do mount --bind -o ro "/$d" "$R/$d"; done
    mount --rbind /proc "$R/proc"; mount --rbind /sys "$R/sys"; exec "$@"' sh \
    "$BIN" --config-dir /nonexistent --root "$R" --config "$W/$h.toml" \
    --output pxe --pxe-root "$T" --json > "$W/$h.json" 2> "$W/$h.err"
  python3 -c "import json;p=json.load(open('$W/$h.json'))['media']['pxe'];print('$h base', p['base_name'], 'shared' if p['base_shared'] else 'new', p['base_bytes'], 'host_bytes', p['host_bytes'])"
done
# Every built host shares this machine's NICs, so their menus have one
# name: give each its own MAC (02:00:00:00:HI:LO), as hosts of a fleet have.
MAC=$(ls "$T/pxelinux.cfg" | head -n 1)
mv "$T/pxelinux.cfg/$MAC" "$W/menu.pxelinux"
mv "$T/grub/grub.cfg-$MAC" "$W/menu.grub"
menus() { # the menus of host $1 (the last build wrote them for host N)
  m=$(printf '01-02-00-00-00-%02x-%02x' $(($1/256)) $(($1%256)))
  sed "s#hosts/fleet-$N/#hosts/fleet-$1/#g" "$W/menu.pxelinux" > "$T/pxelinux.cfg/$m"
  sed "s#hosts/fleet-$N/#hosts/fleet-$1/#g" "$W/menu.grub" > "$T/grub/grub.cfg-$m"
}
for i in $(seq 1 "$N"); do menus "$i"; done
sums() { (cd "$T" && find . -type f ! -name SHA256SUMS | sed 's#^\./##' | sort | xargs sha256sum > SHA256SUMS); }
sums
echo "hosts $N files $(files "$T") du_kib $(du -sk "$T" | cut -f1) bases $(ls "$T/mkrescue/base" | wc -l)"
i=$N
while [ "$i" -lt "$SIM" ]; do
  i=$((i+1)); s=$(( (i-1) % N + 1 ))
  cp -a "$T/mkrescue/hosts/fleet-$s" "$T/mkrescue/hosts/fleet-$i"
  menus "$i"
done
if [ "$SIM" -gt "$N" ]; then
  sums
  echo "hosts $SIM files $(files "$T") du_kib $(du -sk "$T" | cut -f1) bases $(ls "$T/mkrescue/base" | wc -l) (simulated)"
fi
