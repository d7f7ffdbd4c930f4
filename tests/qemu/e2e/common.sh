# Shared helpers of the provisioning script, which runs in mkrescue's rescue
# initramfs (POSIX sh). Disks are found by the serial QEMU gave them
# (/sys/block/*/serial); device-mapper makes its own nodes.
set -eu
export DM_DISABLE_UDEV=1
export LVM_SUPPRESS_FD_WARNINGS=1
PATH=/usr/sbin:/usr/bin:/sbin:/bin
for m in raid1 dm_mod dm_crypt ext4 xfs vfat nls_cp437 nls_iso8859_1 nls_utf8; do
    modprobe "$m" 2>/dev/null || true
done
# The rescue system carries only the `lvm` multi-call binary.
for c in pvcreate vgcreate lvcreate vgchange; do
    eval "$c() { lvm $c \"\$@\"; }"
done

# disk SERIAL -> /dev/vdX
disk() {
    for d in /sys/block/vd*; do
        if [ "$(cat "$d/serial" 2>/dev/null)" = "$1" ]; then
            echo "/dev/${d##*/}"
            return 0
        fi
    done
    echo "no disk with serial $1" >&2
    return 1
}

OUT=/tmp/out
mkdir -p "$OUT"

# $OUT as a tar onto the OUT disk (read back by xtask).
finish() {
    tar cf "$(disk MKROUT)" -C "$OUT" .
    sync
}
