# Phase "degraded": the server booted with one RAID member pulled. $1:
# results directory.
set -euo pipefail
out=$1
cat /proc/mdstat | tee "$out/mdstat.txt"
findmnt --real | tee "$out/findmnt.txt"
mountpoint -q /
mountpoint -q /home
# Under UEFI: the firmware's boot entries and which one booted this system
# (BootCurrent), compared on the host (uefi variant).
if [ -d /sys/firmware/efi ]; then
    efibootmgr -v | tee "$out/efibootmgr.txt"
fi
