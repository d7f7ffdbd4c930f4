# Phase "check" on the recovered server: what the harness compares with
# the "before" results. $1: results directory.
set -euo pipefail
out=$1
# nofail mounts are not waited for by multi-user.target, and udev's
# coldplug is slow under TCG: mount them now if they are not yet.
for m in $(awk '!/^#/ && $4 ~ /nofail/ {print $2}' /etc/fstab); do
    mountpoint -q "$m" || mount "$m"
done
# No /proc/mdstat without the md driver (the dracut-sdboot server).
cat /proc/mdstat 2>/dev/null | tee "$out/mdstat.txt" || true
if [ -e /dev/md0 ]; then mdadm --detail /dev/md0 | tee "$out/mdadm-detail.txt"; fi
findmnt --real | tee "$out/findmnt.txt"
# The NIC (the replacement machine's MAC) with the server's static address.
bash /run/e2e/in/e2e/net.sh "$out" after
blkid -o export > "$out/blkid-after.txt"
mkrescue layout save --out "$out/layout-after.json"
# Every local file system but the backup disk (a separate /boot too).
roots=$(bash /run/e2e/in/e2e/roots.sh)
bash /run/e2e/in/e2e/list.sh "$out/list-after" $roots
systemctl --failed --no-legend --plain | tee "$out/failed-units.txt"
# Under UEFI: the firmware's boot entries and which one booted this system
# (BootCurrent), compared on the host (uefi variant).
if [ -d /sys/firmware/efi ]; then
    efibootmgr -v | tee "$out/efibootmgr.txt"
fi
# The firmware this boot came by, and the fstab as recover left it (the
# firmware conversion scenarios: a new ESP's line appended, the restored
# file kept as fstab.mkrescue-orig).
if [ -d /sys/firmware/efi ]; then echo uefi; else echo bios; fi > "$out/firmware.txt"
cp /etc/fstab "$out/fstab-after"
if [ -f /etc/fstab.mkrescue-orig ]; then cp /etc/fstab.mkrescue-orig "$out/fstab-orig"; fi
