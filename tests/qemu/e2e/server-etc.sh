# The e2e server's configuration that its initramfs is built from: fstab,
# crypttab, mdadm.conf, the initramfs-tools settings, hostname, GRUB's
# defaults. Written into the root file system ROOT from the fixed UUIDs in
# ENV (the harness's env file: SCENARIO, MD0_UUID, ..., see
# xtask/src/qemu/e2e/state.rs), so the same files come out on the host
# (xtask builds the server's initramfs there, natively, in a chroot of the
# rootfs) and in the provision VM (provision.sh, on the real disks, whose
# arrays and file systems it creates with these UUIDs).
# Usage: sh server-etc.sh ROOT ENV
set -eu
T=$1
. "$2"
# Never the host's own /etc.
case "$T" in /|"") echo "server-etc.sh: ROOT must be the server's root, not '$T'" >&2; exit 2;; esac
if [ "$SCENARIO" = dracut-sdboot ]; then
    # The Debian 13 server with systemd-boot and dracut (provision-sdboot.sh):
    # btrfs root in subvolume @, /home in @home, the ESP on /boot (the
    # kernels and Boot Loader Specification entries live there).
    [ -d "$T/usr/lib/dracut" ] || { echo "server-etc.sh: $T has no usr/lib/dracut" >&2; exit 2; }
    cat > "$T/etc/fstab" <<FSTAB
# written by tests/qemu/e2e/server-etc.sh
UUID=$ROOT_UUID / btrfs subvol=@ 0 0
UUID=$ROOT_UUID /home btrfs subvol=@home 0 0
UUID=$ESP1_UUID /boot vfat umask=0077 0 2
UUID=$SWAP_UUID none swap sw 0 0
UUID=$BACKUP_UUID /backup ext4 defaults,nofail 0 2
FSTAB
    mkdir -p "$T/backup" "$T/etc/kernel" "$T/etc/systemd/system.conf.d"
    # What kernel-install writes into the loader entry's options
    # (kernel-install(8)): the root by UUID in its subvolume, the serial
    # console the harness reads.
    echo "root=UUID=$ROOT_UUID rootflags=subvol=@ rw console=ttyS0,115200 loglevel=4" \
        > "$T/etc/kernel/cmdline"
    # Type 1 entries on the ESP mounted on /boot (kernel-install(8), layout).
    echo "layout=bls" > "$T/etc/kernel/install.conf"
    # See below (the other scenarios): TCG can starve a vCPU for a minute.
    printf '# written by tests/qemu/e2e/server-etc.sh\n[Manager]\nDefaultDeviceTimeoutSec=300s\n' \
        > "$T/etc/systemd/system.conf.d/e2e-tcg.conf"
    echo e2e-server > "$T/etc/hostname"
    printf '127.0.0.1 localhost\n127.0.1.1 e2e-server\n' > "$T/etc/hosts"
    exit 0
fi
[ -d "$T/etc/initramfs-tools" ] || { echo "server-etc.sh: $T has no etc/initramfs-tools" >&2; exit 2; }

cat > "$T/etc/fstab" <<FSTAB
# written by tests/qemu/e2e/server-etc.sh
UUID=$ROOT_UUID / ext4 errors=remount-ro 0 1
UUID=$HOME_UUID /home xfs defaults 0 2
$([ "$SCENARIO" = luks-lvm ] && echo "UUID=$BOOT_UUID /boot ext4 defaults 0 2")
UUID=$ESP1_UUID /boot/efi vfat umask=0077,nofail 0 1
UUID=$SWAP_UUID none swap sw 0 0
UUID=$BACKUP_UUID /backup ext4 defaults,nofail 0 2
FSTAB
case "$SCENARIO" in bios-mbr|uefi-gpt)
    # Issue 18's pair (provision-plain.sh): plain partitions on one disk,
    # ext4 / and /home; the ESP only on the UEFI-only server.
    cat > "$T/etc/fstab" <<FSTAB
# written by tests/qemu/e2e/server-etc.sh
UUID=$ROOT_UUID / ext4 errors=remount-ro 0 1
UUID=$HOME_UUID /home ext4 defaults 0 2
$([ "$SCENARIO" = uefi-gpt ] && echo "UUID=$ESP1_UUID /boot/efi vfat umask=0077 0 1")
UUID=$SWAP_UUID none swap sw 0 0
UUID=$BACKUP_UUID /backup ext4 defaults,nofail 0 2
FSTAB
esac
mkdir -p "$T/backup"
if [ "$SCENARIO" = luks-lvm ]; then
    # The server asks for the passphrase at boot (the harness types it on
    # the serial console). `initramfs` (crypttab(5)): unlock it in the
    # initramfs even though the hook, run in a chroot, cannot see that /
    # lives on it.
    echo "md0_crypt UUID=$LUKS_UUID none luks,discard,initramfs" > "$T/etc/crypttab"
    echo CRYPTSETUP=y >> "$T/etc/cryptsetup-initramfs/conf-hook"
fi
# systemd waits 90 s for a disk by default. Under TCG on a loaded 2-core
# host a guest vCPU can go unscheduled for over a minute (the kernel then
# reports a soft lockup in whatever it ran, seen in modprobe and
# udev-worker), and the degraded boot (~100 s to ready against ~35 s
# with both disks) passed 90 s before udevd even started. A disk
# that never comes still fails the boot, later.
mkdir -p "$T/etc/systemd/system.conf.d"
cat > "$T/etc/systemd/system.conf.d/e2e-tcg.conf" <<CONF
# written by tests/qemu/e2e/server-etc.sh
[Manager]
DefaultDeviceTimeoutSec=300s
CONF
mkdir -p "$T/etc/mdadm"
{
    echo "HOMEHOST <system>"
    echo "MAILADDR root"
    # What `mdadm --detail --scan` prints for the arrays provision.sh
    # creates (--homehost=e2e-server --name=N --uuid=...).
    echo "ARRAY /dev/md0 metadata=1.2 name=e2e-server:0 UUID=$MD0_UUID"
    if [ "$SCENARIO" = luks-lvm ]; then
        echo "ARRAY /dev/md1 metadata=1.2 name=e2e-server:1 UUID=$MD1_UUID"
    fi
} > "$T/etc/mdadm/mdadm.conf"
# No arrays on issue 18's one-disk servers.
case "$SCENARIO" in bios-mbr|uefi-gpt)
    printf 'HOMEHOST <system>\nMAILADDR root\n' > "$T/etc/mdadm/mdadm.conf"
esac
echo e2e-server > "$T/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 e2e-server\n' > "$T/etc/hosts"
# The server's one NIC (the harness gives it SERVER_MAC, on QEMU's user
# network) is named lan0 by its MAC and gets a static address from
# systemd-networkd (in Debian 12's systemd package; no ifupdown in the
# rootfs): what recover's NIC mapping must carry over to a NIC of another
# MAC (issue 18, `--nic new-mac`: it rewrites MACAddress= of the .link,
# the name lan0 stays). systemd.link(5), systemd.network(5).
mkdir -p "$T/etc/systemd/network"
cat > "$T/etc/systemd/network/10-lan0.link" <<LINK
# written by tests/qemu/e2e/server-etc.sh
[Match]
MACAddress=$SERVER_MAC

[Link]
Name=lan0
LINK
cat > "$T/etc/systemd/network/10-lan0.network" <<NETWORK
# written by tests/qemu/e2e/server-etc.sh
[Match]
Name=lan0

[Network]
Address=$SERVER_ADDR
Gateway=$SERVER_GW
NETWORK
# What `systemctl enable systemd-networkd` links (its [Install]: WantedBy
# multi-user.target, Also= the socket and wait-online, Alias= the D-Bus
# name); nothing waits for network-online.target at boot.
u=lib/systemd/system
if [ -e "$T/$u/systemd-networkd.service" ]; then
    mkdir -p "$T/etc/systemd/system/multi-user.target.wants" "$T/etc/systemd/system/sockets.target.wants" \
        "$T/etc/systemd/system/network-online.target.wants"
    ln -sf "/$u/systemd-networkd.service" "$T/etc/systemd/system/multi-user.target.wants/systemd-networkd.service"
    ln -sf "/$u/systemd-networkd.service" "$T/etc/systemd/system/dbus-org.freedesktop.network1.service"
    ln -sf "/$u/systemd-networkd.socket" "$T/etc/systemd/system/sockets.target.wants/systemd-networkd.socket"
    ln -sf "/$u/systemd-networkd-wait-online.service" \
        "$T/etc/systemd/system/network-online.target.wants/systemd-networkd-wait-online.service"
else
    echo "server-etc.sh: no systemd-networkd in $T: the server's NIC stays unconfigured" >&2
fi
# No resume from swap: a recovered swap with a new UUID must not stall boot.
echo RESUME=none > "$T/etc/initramfs-tools/conf.d/resume"
# The initramfs holds the listed modules (plus what the mdadm, lvm2 and
# cryptsetup hooks add) instead of MODULES=most: under TCG, "most" makes
# one update-initramfs take over 10 minutes (thousands of forks), in
# recover's finalize; MODULES=dep cannot find the device of / in a
# chroot. FSTYPE: the root file system's type, which the fsck hook
# would otherwise probe on the device of / (absent on the host).
# initramfs.conf(5), initramfs-tools(7).
printf 'MODULES=list\nFSTYPE=ext4\n' > "$T/etc/initramfs-tools/conf.d/e2e-modules"
cat >> "$T/etc/initramfs-tools/modules" <<MODS
virtio_pci
virtio_blk
ahci
sd_mod
raid1
dm_mod
dm_crypt
ext4
xfs
vfat
nls_cp437
nls_ascii
MODS
mkdir -p "$T/etc/default"
cat > "$T/etc/default/grub" <<GRUB
GRUB_DEFAULT=0
GRUB_TIMEOUT=1
GRUB_DISTRIBUTOR=Debian
GRUB_CMDLINE_LINUX_DEFAULT="loglevel=4"
GRUB_CMDLINE_LINUX="console=ttyS0,115200"
GRUB_TERMINAL=serial
GRUB_SERIAL_COMMAND="serial --unit=0 --speed=115200"
GRUB_DISABLE_OS_PROBER=true
GRUB
