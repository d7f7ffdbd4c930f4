# Phase "before" on the production server: record, back up, build the
# rescue ISO onto the backup disk. $1: results directory.
set -euo pipefail
out=$1
# nofail mounts are not waited for by multi-user.target, and udev's
# coldplug is slow under TCG: mount them now if they are not yet.
for m in $(awk '!/^#/ && $4 ~ /nofail/ {print $2}' /etc/fstab); do
    mountpoint -q "$m" || mount "$m"
done
ms() { date +%s%3N; }
timed() {
    local name=$1 t0
    shift
    t0=$(ms)
    "$@"
    echo "MKR-E2E-TIME $name $(( $(ms) - t0 ))ms"
}
# mkrescue from this run's package (provision installed one too; again
# here, so a run from before tests this run's binary). --force-confold:
# /etc/mkrescue/local.toml is the test's own.
dpkg -i --force-confold /run/e2e/in/mkrescue.deb
# Runs a unit of the package as its timer would, and prints its journal:
# the backups and the rescue system are made by mkrescue-backup.service
# and mkrescue-check.service, in their sandbox, as on an admin's server.
unit() {
    local rc=0
    systemctl start "$1" || rc=$?
    journalctl -b -u "$1" -o cat --no-pager | tail -n 40
    [ $rc = 0 ] || { echo "before: $1 failed (systemctl start: exit $rc)" >&2; exit 1; }
}
cat /proc/mdstat 2>/dev/null || true
findmnt --real
# The NIC with its static address before the rescue image records it
# (network.json: what recover maps onto the replacement machine's NIC).
bash /run/e2e/in/e2e/net.sh "$out" before
mkrescue layout save --out "$out/layout-before.json"
# A run from before starts afresh: no saved layout (so the layout check
# below sees a new host and builds the rescue system), no earlier backups
# or incremental state (so the first backup is a full one).
rm -f /var/lib/mkrescue/layout.json
rm -rf /backup/archive /var/cache/mkrescue/backup
# mkrescue never creates its backup target (a missing one may be an
# unmounted disk): the directory on the backup disk is made here.
mkdir -p /backup/archive
# backup.mode = "incremental" (local.toml): the first backup starts a
# chain with a full one, the files change, and the second backup stores
# only the changes on top of it. recover restores the chain into the tree
# of the newest, which the list below describes.
bash /run/e2e/in/e2e/change.sh seed
timed backup-full unit mkrescue-backup.service
bash /run/e2e/in/e2e/change.sh change
# Every local file system but the backup disk (a separate /boot too).
roots=$(bash /run/e2e/in/e2e/roots.sh)
bash /run/e2e/in/e2e/list.sh "$out/list-before" $roots
blkid -o export > "$out/blkid-before.txt"
timed backup unit mkrescue-backup.service
mkrescue backup list | tee "$out/backup-list.txt"
# The newest backup must be an incremental on the full one ("+1 on
# STAMP" in the CHAIN column), or the e2e would not prove a chain.
grep -q ' +1 on ' "$out/backup-list.txt" || { echo "before: the second backup is not an incremental on the first" >&2; exit 1; }
if [ -f /root/keys/luks.key ]; then
    # The LUKS key goes to the backup disk, where recover finds it
    # (recover.key_file = "keys/luks.key" in /etc/mkrescue/local.toml).
    mkdir -p /backup/keys
    cp /root/keys/luks.key /backup/keys/luks.key
    chmod 0600 /backup/keys/luks.key
fi
# The rescue ISO as the package makes it: the layout check finds no saved
# layout, saves it and builds build.output (iso) into build.out_dir
# (/backup/rescue) with output.test_boot_entry (local.toml).
rm -rf /backup/rescue
timed iso unit mkrescue-check.service
[ -f /var/lib/mkrescue/layout.json ] || { echo "before: mkrescue-check.service saved no layout" >&2; exit 1; }
# SUITE=trixie in the env file for a Debian 13 server (xtask's env_of).
SUITE=$(sed -n 's/^SUITE=//p' /run/e2e/in/env)
if [ "${SUITE:-bookworm}" != bookworm ]; then
    # Issue 19: the rescue system built on this release is byte-identical
    # when built again: the same ISO twice from the command line, each
    # into its own directory, compared file by file. (The service's build
    # above differs from these in its manifest: its manifest is kept in
    # the results beside theirs, to be looked into.)
    cp /backup/rescue/manifest.json "$out/manifest-service.json"
    for n in 1 2; do
        rm -rf /backup/rescue-again$n
        timed iso-again$n mkrescue --output iso --out /backup/rescue-again$n
        (cd /backup/rescue-again$n && sha256sum -- *) > "$out/rescue-again$n-sha256.txt"
        cp /backup/rescue-again$n/manifest.json "$out/manifest-again$n.json"
    done
    cat "$out/rescue-again1-sha256.txt"
    if ! cmp "$out/rescue-again1-sha256.txt" "$out/rescue-again2-sha256.txt"; then
        diff "$out/rescue-again1-sha256.txt" "$out/rescue-again2-sha256.txt" || true
        echo "before: a second build of the rescue ISO differs from the first" >&2
        exit 1
    fi
    rm -rf /backup/rescue-again1 /backup/rescue-again2
fi
# raid1-lvm: a second ISO with [modules] policy = "host", the modules this
# server has loaded and its devices need: virtio, no NVMe driver. One of
# the drills that must fail (issue 20) recovers with it onto NVMe disks
# (`mkrescue drill --controller nvme`) and must name the missing driver.
if grep -qx 'SCENARIO=raid1-lvm' /run/e2e/in/env; then
    printf '[modules]\npolicy = "host"\n[build]\nout_dir = "/backup/rescue-host-policy"\n' > /run/e2e/host-policy.toml
    rm -rf /backup/rescue-host-policy /backup/rescue-host-policy-build
    mkdir -p /backup/rescue-host-policy-build
    timed iso_host_policy env TMPDIR=/backup/rescue-host-policy-build \
        mkrescue --config /run/e2e/host-policy.toml --output iso
    rm -rf /backup/rescue-host-policy-build
    ls -la /backup/rescue-host-policy
fi
# The recovery time as the healthy server predicts it (the e2e report puts
# it beside recover's actual time).
timed estimate bash -c 'mkrescue estimate --json > "$1"' - "$out/estimate-host.json"
# What the package installed: both timers listed by systemd, the man pages.
systemctl list-timers --all --no-pager | tee "$out/timers.txt"
for t in mkrescue-backup.timer mkrescue-check.timer; do
    grep -q "$t" "$out/timers.txt" || { echo "before: systemctl list-timers does not list $t" >&2; exit 1; }
done
man -P cat mkrescue-backup > "$out/man-mkrescue-backup.txt"
grep -q 'mkrescue-backup' "$out/man-mkrescue-backup.txt" || { echo "before: man mkrescue-backup shows no page" >&2; exit 1; }
ls -la /backup/rescue
# The same rescue system as a PXE tree for the pxe variant (QEMU's TFTP
# serves it). --pxe-default: the server has no NIC here, so there is no
# pxelinux.cfg/01-MAC to write; the recover VM's NIC gets `default`.
# A pxe build stages its kernel and initrd in TMPDIR: the backup disk's
# room, as for the ISO.
rm -rf /backup/rescue-pxe /backup/rescue-pxe-build
mkdir -p /backup/rescue-pxe-build
timed pxe env TMPDIR=/backup/rescue-pxe-build mkrescue --output pxe --pxe-root /backup/rescue-pxe \
    --pxe-default --test-boot-entry recover-auto-serial
rm -rf /backup/rescue-pxe-build
find /backup/rescue-pxe -type f | sort
df -h / /home /backup
sync
