# Shared helpers of the layout VM scripts (sourced; POSIX sh).
# The rescue system runs no udev: disks are found by the serial QEMU gave
# them (/sys/block/*/serial), and device-mapper makes its own nodes.
set -eu
export DM_DISABLE_UDEV=1
export LVM_SUPPRESS_FD_WARNINGS=1
PATH=/usr/sbin:/usr/bin:/sbin:/bin
for m in raid1 dm_mod dm_thin_pool dm_crypt ext4 xfs btrfs vfat nls_cp437 nls_iso8859_1 nls_utf8; do
    modprobe "$m" 2>/dev/null || true
done

# The rescue system carries only the `lvm` multi-call binary.
for c in pvcreate vgcreate lvcreate lvremove vgchange pvs vgs lvs; do
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

# A partition of a disk: part /dev/vda 2 -> /dev/vda2
part() { echo "$1$2"; }

OUT=/tmp/out
mkdir -p "$OUT"

# Write $OUT as a tar onto the OUT disk (read back by xtask).
finish() {
    tar cf "$(disk MKROUT)" -C "$OUT" .
    sync
}

# Take every assembled thing down and destroy the signatures: what the
# disaster leaves behind (blank disks).
wipe_all() {
    for mp in $(findmnt -rn -o TARGET | grep '^/mnt/t' | sort -r); do umount "$mp"; done
    swapoff -a 2>/dev/null || true
    vgchange -an >/dev/null 2>&1 || true
    for m in /dev/mapper/*; do
        case "$m" in */control) ;; *) cryptsetup close "${m##*/}" 2>/dev/null || true ;; esac
    done
    for md in /dev/md[0-9]*; do [ -e "$md" ] && mdadm --stop "$md" >/dev/null 2>&1 || true; done
    for s in "$@"; do
        d=$(disk "$s")
        for p in "$d"[0-9]*; do [ -e "$p" ] && wipefs -a -q "$p" 2>/dev/null || true; done
        wipefs -a -q "$d"
        dd if=/dev/zero of="$d" bs=1M count=4 conv=fsync 2>/dev/null
        # The backup GPT header at the end of the disk, too.
        sz=$(blockdev --getsz "$d")
        dd if=/dev/zero of="$d" bs=512 seek=$((sz - 2048)) count=2048 conv=fsync 2>/dev/null
        blockdev --rereadpt "$d" || true
    done
}

# Layout 2's contents on two disks: GPT with bios_grub, md RAID1 of the
# rest (md name $1), LVM with an ext4 root, an xfs home and swap.
# raid1_lvm NAME DISK_A DISK_B
raid1_lvm() {
    for d in "$2" "$3"; do
        sfdisk -q "$d" <<SF
label: gpt
size=1MiB, type=21686148-6449-6E6F-744E-656564454649, name=bios_grub
type=A19D880F-05FC-4D3B-A006-743F0F84911E, name=raid
SF
    done
    mdadm --create /dev/md0 --run --level=1 --raid-devices=2 --metadata=1.2 \
        --name="$1" --bitmap=internal "$(part "$2" 2)" "$(part "$3" 2)"
    pvcreate -q /dev/md0
    vgcreate -q vg0 /dev/md0
    lvcreate -q -y -n root -L 400M vg0
    lvcreate -q -y -n home -L 320M vg0
    lvcreate -q -y -n swap -L 64M vg0
    mkfs.ext4 -q -L root /dev/vg0/root
    mkfs.xfs -q -L home /dev/vg0/home
    mkswap -L swap /dev/vg0/swap >/dev/null
}
