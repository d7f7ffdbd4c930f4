#!/bin/bash
# /usr/local/sbin/e2e-phase on the e2e server, started by e2e-phase.service
# once multi-user is reached. Prints the ready marker on the console; if the
# IN disk (serial MKRIN, a tar) is attached, runs the phase script it names
# (PHASE in its env file) with a results directory, writes that directory
# as a tar onto the OUT disk (serial MKROUT) and powers off.
set -u
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
bydisk() {
    for d in /sys/block/*; do
        if [ "$(cat "$d/serial" 2>/dev/null)" = "$1" ]; then echo "/dev/${d##*/}"; fi
    done
}
up=$(cut -d' ' -f1 /proc/uptime)
printf 'MKR-E2E-READY uptime=%s state=%s\n' "$up" "$(systemctl is-system-running)"
systemctl --failed --no-legend --plain
IN=$(bydisk MKRIN)
[ -n "$IN" ] || exit 0
mkdir -p /run/e2e/in /run/e2e/out
tar xf "$IN" -C /run/e2e/in
. /run/e2e/in/env
# Take the IN and OUT disks away (PCI remove) while the phase runs: they
# are not the server's, and must not end up in its saved layout.
pcidev() { readlink -f "/sys/block/${1#/dev/}/device/.."; }
OUTDEV=$(bydisk MKROUT)
for d in "$IN" $OUTDEV; do echo 1 > "$(pcidev "$d")/remove"; done
bash /run/e2e/in/e2e/"$PHASE".sh /run/e2e/out 2>&1 | tee /run/e2e/out/"$PHASE".log
rc=${PIPESTATUS[0]}
printf 'MKR-E2E-EXIT=%s\n' "$rc"
echo 1 > /sys/bus/pci/rescan
sleep 2
OUT=$(bydisk MKROUT)
[ -n "$OUT" ] && tar cf "$OUT" -C /run/e2e/out . && sync
systemctl poweroff --no-block
