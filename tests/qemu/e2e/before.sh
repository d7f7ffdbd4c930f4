# Phase "before" on the production server: record, back up, build the
# rescue ISO onto the backup disk. $1: results directory.
set -euo pipefail
out=$1
# nofail mounts are not waited for by multi-user.target, and udev's
# coldplug is slow under TCG: mount them now if they are not yet.
for m in /boot/efi /backup; do mountpoint -q $m || mount $m; done
ms() { date +%s%3N; }
timed() {
    local name=$1 t0
    shift
    t0=$(ms)
    "$@"
    echo "MKR-E2E-TIME $name $(( $(ms) - t0 ))ms"
}
# A fresh mkrescue from the harness (the server keeps the one from
# provisioning otherwise), so a rerun needs no new provisioning.
# (-f, not -x: /run is mounted noexec.)
if [ -f /run/e2e/in/mkrescue ]; then
    cp /run/e2e/in/mkrescue /usr/local/sbin/mkrescue
fi
cat /proc/mdstat
findmnt --real
timed layout-save mkrescue layout save
mkrescue layout save --out "$out/layout-before.json"
# mkrescue never creates its backup target (a missing one may be an
# unmounted disk): the directory on the backup disk is made here.
mkdir -p /backup/archive
# backup.mode = "incremental" (local.toml): the first backup starts a
# chain with a full one, the files change, and the second backup stores
# only the changes on top of it. recover restores the chain into the tree
# of the newest, which the list below describes.
bash /run/e2e/in/e2e/change.sh seed
timed backup-full mkrescue backup
bash /run/e2e/in/e2e/change.sh change
# Every local file system but the backup disk (a separate /boot too).
roots="/ /home /boot/efi"
if mountpoint -q /boot; then roots="/ /boot /home /boot/efi"; fi
bash /run/e2e/in/e2e/list.sh "$out/list-before" $roots
blkid -o export > "$out/blkid-before.txt"
timed backup mkrescue backup
mkrescue backup list | tee "$out/backup-list.txt"
# The newest backup must be an incremental on the full one ("+1 on
# STAMP" in the CHAIN column), or the e2e would not prove a chain.
grep -q ' +1 on ' "$out/backup-list.txt" || { echo "before: the second backup is not an incremental on the first" >&2; exit 1; }
# The recovery time as the healthy server predicts it (the e2e report puts
# it beside recover's actual time).
timed estimate bash -c 'mkrescue estimate --json > "$1"' - "$out/estimate-host.json"
rm -rf /backup/rescue
if [ -f /root/keys/luks.key ]; then
    # The LUKS key goes to the backup disk, where recover finds it
    # (recover.key_file = "keys/luks.key" in /etc/mkrescue/local.toml).
    mkdir -p /backup/keys
    cp /root/keys/luks.key /backup/keys/luks.key
    chmod 0600 /backup/keys/luks.key
fi
timed iso mkrescue --output iso --out /backup/rescue --test-boot-entry recover-auto-serial
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
