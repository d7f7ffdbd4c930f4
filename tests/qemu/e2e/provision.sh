# Provisioning, inside mkrescue's own rescue initramfs of the build host:
# installs the debootstrapped Debian server (the ROOTFS disk, a raw tar) on
# the two blank disks DISK1 and DISK2:
#   GPT: 1 MiB bios_grub, 200 MiB ESP (vfat), Linux RAID over the rest
#   md0: RAID1 (metadata 1.2) of the two RAID partitions
#   vg0 on md0: root (ext4), home (xfs), swap
# then configures it (server-etc.sh: fstab by UUID, mdadm.conf, serial
# console; GRUB on both disks, mkrescue), fills in test data and lists every
# file. Every array, LUKS header and file system gets the fixed UUID of the
# env file, so server-etc.sh writes the same files here and on the host,
# where xtask builds the server's initramfs natively (the INITRD disk, a
# tar of boot/initrd.img-*); without that disk it is built here.
# $SCENARIO (from /tmp/in/env) picks the variant:
#   raid1-lvm   the above
#   luks-lvm    md0 -> LUKS2 -> vg0 (the passphrase is in /tmp/in/luks.key),
#               and /boot (ext4) on md1, a RAID1 of a 512 MiB partition
#               before the big one: GRUB cannot read /boot inside LUKS
#               without GRUB_ENABLE_CRYPTODISK (and a second passphrase)
. /tmp/in/e2e/common.sh
. /tmp/in/e2e/server-common.sh
set -x
. /tmp/in/env
if [ "$SCENARIO" = dracut-sdboot ]; then
    . /tmp/in/e2e/provision-sdboot.sh
    exit 0
fi
case "$SCENARIO" in bios-mbr|uefi-gpt)
    . /tmp/in/e2e/provision-plain.sh
    exit 0
esac

D1=$(disk DISK1); D2=$(disk DISK2)
BOOTLINE=
MAIN=3
if [ "$SCENARIO" = luks-lvm ]; then
    BOOTLINE="size=512MiB, type=A19D880F-05FC-4D3B-A006-743F0F84911E, name=boot"
    MAIN=4
fi
for d in "$D1" "$D2"; do
    # sfdisk(8) GPT types: BIOS boot, EFI System, Linux RAID.
    sfdisk -q "$d" <<SF
label: gpt
size=1MiB, type=21686148-6449-6E6F-744E-656564454649, name=bios_grub
size=200MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=esp
$BOOTLINE
type=A19D880F-05FC-4D3B-A006-743F0F84911E, name=raid
SF
done
# Both members are blank (all zeros), so they already agree: no resync
# (md(4): --assume-clean is safe exactly then).
mdadm --create /dev/md0 --run --level=1 --raid-devices=2 --metadata=1.2 \
    --homehost=e2e-server --name=0 --uuid="$MD0_UUID" --assume-clean "${D1}$MAIN" "${D2}$MAIN"
if [ "$SCENARIO" = luks-lvm ]; then
    mdadm --create /dev/md1 --run --level=1 --raid-devices=2 --metadata=1.2 \
        --homehost=e2e-server --name=1 --uuid="$MD1_UUID" --assume-clean "${D1}3" "${D2}3"
    mkfs.ext4 -q -L boot -U "$BOOT_UUID" /dev/md1
fi
PV=/dev/md0
if [ "$SCENARIO" = luks-lvm ]; then
    # LUKS2 on the array, LVM inside (md -> LUKS -> LVM, the usual
    # encrypted server). pbkdf2 with a fixed low iteration count: argon2's
    # memory-hard default takes minutes under TCG.
    cryptsetup luksFormat -q --type luks2 --pbkdf pbkdf2 --pbkdf-force-iterations 1000 \
        --label cryptroot --uuid "$LUKS_UUID" --key-file /tmp/in/luks.key /dev/md0
    cryptsetup open --key-file /tmp/in/luks.key /dev/md0 md0_crypt
    PV=/dev/mapper/md0_crypt
fi
pvcreate -q "$PV"
vgcreate -q vg0 "$PV"
lvcreate -q -y -n root -L 3G vg0
lvcreate -q -y -n home -L 1536M vg0
lvcreate -q -y -n swap -L 256M vg0
mkfs.ext4 -q -L root -U "$ROOT_UUID" /dev/vg0/root
mkfs.xfs -q -L home -m uuid="$HOME_UUID" /dev/vg0/home
mkswap -L swap -U "$SWAP_UUID" /dev/vg0/swap >/dev/null
# A FAT volume id is its UUID without the dash (mkfs.fat(8) -i).
mkfs.vfat -n ESP1 -i "$(echo "$ESP1_UUID" | tr -d -)" "${D1}2" >/dev/null
mkfs.vfat -n ESP2 -i "$(echo "$ESP2_UUID" | tr -d -)" "${D2}2" >/dev/null

T=/mnt/t
mkdir -p $T
mount /dev/vg0/root $T
mkdir -p $T/home $T/boot/efi
mount /dev/vg0/home $T/home
if [ "$SCENARIO" = luks-lvm ]; then
    mount /dev/md1 $T/boot
    mkdir -p $T/boot/efi
fi
mount "${D1}2" $T/boot/efi
t0=$(date +%s)
tar -x -p --numeric-owner --xattrs --xattrs-include='*' --acls -f "$(disk ROOTFS)" -C $T
echo "MKR-E2E-TIME rootfs-extract $(( $(date +%s) - t0 ))"

# The created devices must carry the UUIDs server-etc.sh writes into
# fstab, crypttab and mdadm.conf.
uuid() { blkid -s UUID -o value "$1"; }
for pair in "/dev/vg0/root $ROOT_UUID" "/dev/vg0/home $HOME_UUID" "/dev/vg0/swap $SWAP_UUID" \
    "${D1}2 $ESP1_UUID" "${D2}2 $ESP2_UUID"; do
    set -- $pair
    [ "$(uuid "$1")" = "$2" ] || { echo "$1: UUID $(uuid "$1"), not $2" >&2; exit 1; }
done
mdadm --detail --scan | grep -q "UUID=$MD0_UUID" || { echo "md0 has not UUID $MD0_UUID" >&2; exit 1; }
if [ "$SCENARIO" = luks-lvm ]; then
    [ "$(uuid /dev/md0)" = "$LUKS_UUID" ] && [ "$(uuid /dev/md1)" = "$BOOT_UUID" ] \
        || { echo "LUKS or /boot without its fixed UUID" >&2; exit 1; }
fi
sh /tmp/in/e2e/server-etc.sh $T /tmp/in/env
# Root logs in on the serial console without a password (a test VM with no
# network); sshd takes keys only.
chroot $T passwd -d root >/dev/null

server_setup
if [ "$SCENARIO" = luks-lvm ]; then
    # The LUKS key kept on the backup disk (before.sh puts it there);
    # recover reads a relative recover.key_file from the backup's file
    # system.
    printf '\n[recover]\nkey_file = "keys/luks.key"\n' >> $T/etc/mkrescue/local.toml
    sed -i 's|^paths = \["/", |paths = ["/", "/boot", |' $T/etc/mkrescue/local.toml
    mkdir -p $T/root/keys
    cp /tmp/in/luks.key $T/root/keys/luks.key
    chmod 0600 $T/root/keys/luks.key
fi

# Initramfs and GRUB from inside the new system.
for m in dev proc sys; do mount --bind /$m $T/$m; done
mount -t tmpfs tmpfs $T/run
mkdir -p $T/run/lvm $T/run/udev
server_package
t0=$(date +%s)
if INITRD=$(disk INITRD 2>/dev/null); then
    # Built on the host from the same files (server-etc.sh) and rootfs.
    rm -f $T/boot/initrd.img-*
    tar -x -f "$INITRD" -C $T/boot
    ls -l $T/boot
else
    chroot $T update-initramfs -u -k all
fi
echo "MKR-E2E-TIME initramfs $(( $(date +%s) - t0 ))"
t0=$(date +%s)
chroot $T grub-install --target=i386-pc "$D1"
chroot $T grub-install --target=i386-pc "$D2"
chroot $T grub-mkconfig -o /boot/grub/grub.cfg
echo "MKR-E2E-TIME grub $(( $(date +%s) - t0 ))"

server_testdata
blkid -o export /dev/vg0/root /dev/vg0/home /dev/vg0/swap /dev/md0 > $OUT/blkid-provision.txt

for m in run sys proc dev; do umount $T/$m; done
umount $T/boot/efi
if [ "$SCENARIO" = luks-lvm ]; then umount $T/boot; fi
umount $T/home $T
vgchange -an vg0 >/dev/null
[ "$SCENARIO" = luks-lvm ] && cryptsetup close md0_crypt
mdadm --stop /dev/md0
[ "$SCENARIO" = luks-lvm ] && mdadm --stop /dev/md1
finish
