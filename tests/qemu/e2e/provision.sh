# Provisioning, inside mkrescue's own rescue initramfs of the build host:
# installs the debootstrapped Debian server (the ROOTFS disk, a raw tar) on
# the two blank disks DISK1 and DISK2:
#   GPT: 1 MiB bios_grub, 200 MiB ESP (vfat), Linux RAID over the rest
#   md0: RAID1 (metadata 1.2) of the two RAID partitions
#   vg0 on md0: root (ext4), home (xfs), swap
# then configures it (fstab by UUID, mdadm.conf, serial console, GRUB on
# both disks, mkrescue), fills in test data and lists every file.
# $SCENARIO (from /tmp/in/env) picks the variant:
#   raid1-lvm   the above
#   luks-lvm    md0 -> LUKS2 -> vg0 (the passphrase is in /tmp/in/luks.key),
#               and /boot (ext4) on md1, a RAID1 of a 512 MiB partition
#               before the big one: GRUB cannot read /boot inside LUKS
#               without GRUB_ENABLE_CRYPTODISK (and a second passphrase)
. /tmp/in/e2e/common.sh
set -x
. /tmp/in/env

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
    --homehost=e2e-server --name=0 --assume-clean "${D1}$MAIN" "${D2}$MAIN"
if [ "$SCENARIO" = luks-lvm ]; then
    mdadm --create /dev/md1 --run --level=1 --raid-devices=2 --metadata=1.2 \
        --homehost=e2e-server --name=1 --assume-clean "${D1}3" "${D2}3"
    mkfs.ext4 -q -L boot /dev/md1
fi
PV=/dev/md0
if [ "$SCENARIO" = luks-lvm ]; then
    # LUKS2 on the array, LVM inside (md -> LUKS -> LVM, the usual
    # encrypted server). pbkdf2 with a fixed low iteration count: argon2's
    # memory-hard default takes minutes under TCG.
    cryptsetup luksFormat -q --type luks2 --pbkdf pbkdf2 --pbkdf-force-iterations 1000 \
        --label cryptroot --key-file /tmp/in/luks.key /dev/md0
    cryptsetup open --key-file /tmp/in/luks.key /dev/md0 md0_crypt
    PV=/dev/mapper/md0_crypt
fi
pvcreate -q "$PV"
vgcreate -q vg0 "$PV"
lvcreate -q -y -n root -L 3G vg0
lvcreate -q -y -n home -L 1536M vg0
lvcreate -q -y -n swap -L 256M vg0
mkfs.ext4 -q -L root /dev/vg0/root
mkfs.xfs -q -L home /dev/vg0/home
mkswap -L swap /dev/vg0/swap >/dev/null
mkfs.vfat -n ESP1 "${D1}2" >/dev/null
mkfs.vfat -n ESP2 "${D2}2" >/dev/null

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

uuid() { blkid -s UUID -o value "$1"; }
cat > $T/etc/fstab <<FSTAB
# written by tests/qemu/e2e/provision.sh
UUID=$(uuid /dev/vg0/root) / ext4 errors=remount-ro 0 1
UUID=$(uuid /dev/vg0/home) /home xfs defaults 0 2
$([ "$SCENARIO" = luks-lvm ] && echo "UUID=$(uuid /dev/md1) /boot ext4 defaults 0 2")
UUID=$(uuid "${D1}2") /boot/efi vfat umask=0077,nofail 0 1
UUID=$(uuid /dev/vg0/swap) none swap sw 0 0
UUID=$BACKUP_UUID /backup ext4 defaults,nofail 0 2
FSTAB
mkdir -p $T/backup
if [ "$SCENARIO" = luks-lvm ]; then
    # The server asks for the passphrase at boot (the harness types it on
    # the serial console). `initramfs` (crypttab(5)): unlock it in the
    # initramfs even though the hook, run in a chroot, cannot see that /
    # lives on it.
    echo "md0_crypt UUID=$(uuid /dev/md0) none luks,discard,initramfs" > $T/etc/crypttab
    echo CRYPTSETUP=y >> $T/etc/cryptsetup-initramfs/conf-hook
fi
mkdir -p $T/etc/mdadm
{
    echo "HOMEHOST <system>"
    echo "MAILADDR root"
    mdadm --detail --scan
} > $T/etc/mdadm/mdadm.conf
echo e2e-server > $T/etc/hostname
printf '127.0.0.1 localhost\n127.0.1.1 e2e-server\n' > $T/etc/hosts
# No resume from swap: a recovered swap with a new UUID must not stall boot.
echo RESUME=none > $T/etc/initramfs-tools/conf.d/resume
# The initramfs holds the listed modules (plus what the mdadm, lvm2 and
# cryptsetup hooks add) instead of MODULES=most: under TCG, "most" makes
# one update-initramfs take over 10 minutes (thousands of forks), here and
# in recover's finalize; MODULES=dep cannot find the device of / in a
# chroot. initramfs.conf(5), initramfs-tools(7).
echo MODULES=list > $T/etc/initramfs-tools/conf.d/e2e-modules
cat >> $T/etc/initramfs-tools/modules <<MODS
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
mkdir -p $T/etc/default
cat > $T/etc/default/grub <<GRUB
GRUB_DEFAULT=0
GRUB_TIMEOUT=1
GRUB_DISTRIBUTOR=Debian
GRUB_CMDLINE_LINUX_DEFAULT="loglevel=4"
GRUB_CMDLINE_LINUX="console=ttyS0,115200"
GRUB_TERMINAL=serial
GRUB_SERIAL_COMMAND="serial --unit=0 --speed=115200"
GRUB_DISABLE_OS_PROBER=true
GRUB
# Root logs in on the serial console without a password (a test VM with no
# network); sshd takes keys only.
chroot $T passwd -d root >/dev/null

# mkrescue and its configuration.
cp /tmp/in/mkrescue $T/usr/local/sbin/mkrescue && chmod 0755 $T/usr/local/sbin/mkrescue
mkdir -p $T/etc/mkrescue
cp /tmp/in/e2e/local.toml $T/etc/mkrescue/local.toml
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

# The e2e phase runner: at every boot, runs the phase script from the IN
# disk if one is attached (tests/qemu/e2e/phase.sh).
cp /tmp/in/e2e/phase.sh $T/usr/local/sbin/e2e-phase && chmod 0755 $T/usr/local/sbin/e2e-phase
cp /tmp/in/e2e/e2e-phase.service $T/etc/systemd/system/
mkdir -p $T/etc/systemd/system/multi-user.target.wants
ln -sf /etc/systemd/system/e2e-phase.service $T/etc/systemd/system/multi-user.target.wants/e2e-phase.service

# Initramfs and GRUB from inside the new system.
for m in dev proc sys; do mount --bind /$m $T/$m; done
mount -t tmpfs tmpfs $T/run
mkdir -p $T/run/lvm $T/run/udev
t0=$(date +%s)
chroot $T update-initramfs -u -k all
chroot $T grub-install --target=i386-pc "$D1"
chroot $T grub-install --target=i386-pc "$D2"
chroot $T grub-mkconfig -o /boot/grub/grub.cfg
echo "MKR-E2E-TIME initramfs-grub $(( $(date +%s) - t0 ))"

# Test data, then the list of every test file.
t0=$(date +%s)
cp /tmp/in/e2e/testdata.sh /tmp/in/e2e/list.sh $T/tmp/
chroot $T bash /tmp/testdata.sh
chroot $T bash /tmp/list.sh /tmp/list-provision /srv/e2e /home
mv $T/tmp/list-provision.* $OUT/
rm $T/tmp/testdata.sh $T/tmp/list.sh
echo "MKR-E2E-TIME testdata $(( $(date +%s) - t0 ))"
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
