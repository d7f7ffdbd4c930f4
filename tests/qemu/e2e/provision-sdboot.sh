# Provisioning of the dracut-sdboot server (issue 19), sourced by
# provision.sh (common.sh, server-common.sh and the env already read): the
# Debian 13 rootfs with dracut and systemd-boot, no GRUB in its boot path,
# on the one blank disk DISK1:
#   GPT: 512 MiB ESP (vfat, mounted on /boot: the kernels, their initrds
#        and the Boot Loader Specification entries live there),
#        256 MiB swap, btrfs over the rest
#   btrfs: subvolumes @ (/, the default subvolume), @home (/home) and
#        @/srv/e2e nested in @ (the test data; not mounted, found by
#        walking /), mounted by subvol= (server-etc.sh's fstab)
# systemd-boot by `bootctl install`, the kernel by `kernel-install add`
# with the initrd dracut made in the rootfs (generic, rootfs.rs), the
# options from /etc/kernel/cmdline. Then mkrescue, test data, the list.
D1=$(disk DISK1)
# sfdisk(8) GPT types: EFI System, Linux swap, Linux root (x86-64).
sfdisk -q "$D1" <<SF
label: gpt
size=512MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=esp
size=256MiB, type=0657FD6D-A4AB-43C4-84E5-0933C84B4F4F, name=swap
type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709, name=root
SF
modprobe btrfs
# A FAT volume id is its UUID without the dash (mkfs.fat(8) -i).
mkfs.vfat -F 32 -n ESP1 -i "$(echo "$ESP1_UUID" | tr -d -)" "${D1}1" >/dev/null
mkswap -L swap -U "$SWAP_UUID" "${D1}2" >/dev/null
mkfs.btrfs -q -f -L root -U "$ROOT_UUID" "${D1}3"

TOP=/mnt/top
T=/mnt/t
mkdir -p $TOP $T
mount -t btrfs -o subvolid=5 "${D1}3" $TOP
btrfs subvolume create $TOP/@
btrfs subvolume create $TOP/@home
mkdir -p $TOP/@/srv
btrfs subvolume create $TOP/@/srv/e2e
btrfs subvolume set-default $TOP/@
btrfs subvolume list -a -p $TOP
umount $TOP
mount -t btrfs -o subvol=@ "${D1}3" $T
mkdir -p $T/home $T/boot
mount -t btrfs -o subvol=@home "${D1}3" $T/home
mount -t vfat -o umask=0077 "${D1}1" $T/boot
t0=$(date +%s)
# Everything but /boot with owners, modes, xattrs and ACLs; /boot is FAT,
# which has none of them: its files (kernel, config, System.map, the
# initrd) copied in plainly.
tar -x -p --numeric-owner --xattrs --xattrs-include='*' --acls --exclude=./boot \
    -f "$(disk ROOTFS)" -C $T
tar -x --no-same-owner --no-same-permissions -f "$(disk ROOTFS)" -C $T ./boot
echo "MKR-E2E-TIME rootfs-extract $(( $(date +%s) - t0 ))"

uuid() { blkid -s UUID -o value "$1"; }
for pair in "${D1}3 $ROOT_UUID" "${D1}2 $SWAP_UUID" "${D1}1 $ESP1_UUID"; do
    set -- $pair
    [ "$(uuid "$1")" = "$2" ] || { echo "$1: UUID $(uuid "$1"), not $2" >&2; exit 1; }
done
sh /tmp/in/e2e/server-etc.sh $T /tmp/in/env
chroot $T passwd -d root >/dev/null
server_setup
# The ESP is /boot here: back it up as such (local.toml names /boot/efi).
sed -i 's|^paths = .*|paths = ["/", "/home", "/boot"]|' $T/etc/mkrescue/local.toml
grep -q '^paths = \["/", "/home", "/boot"\]' $T/etc/mkrescue/local.toml

for m in dev proc sys; do mount --bind /$m $T/$m; done
mount -t tmpfs tmpfs $T/run
server_package
t0=$(date +%s)
KVER=$(cd $T/lib/modules && ls | head -n 1)
# bootctl and kernel-install look for the ESP by its partition type through
# udev, which this rescue system does not run for them
# (SYSTEMD_RELAX_ESP_CHECKS, systemd's ENVIRONMENT.md); no EFI variables
# here (the rescue system booted by BIOS): the firmware finds systemd-boot
# at the removable path \EFI\BOOT\BOOTX64.EFI, which bootctl installs too.
chroot $T env SYSTEMD_RELAX_ESP_CHECKS=1 bootctl install --esp-path=/boot --no-variables
# The initrd given: only the loader-entry plugin runs (KERNEL_INSTALL_PLUGINS,
# kernel-install(8)), copying kernel and initrd beside the entry it writes;
# depmod (50-depmod.install) ran when the kernel package was installed
# into the rootfs and takes minutes under TCG.
chroot $T env SYSTEMD_RELAX_ESP_CHECKS=1 BOOT_ROOT=/boot \
    KERNEL_INSTALL_PLUGINS=/usr/lib/kernel/install.d/90-loaderentry.install kernel-install --verbose add \
    "$KVER" "/boot/vmlinuz-$KVER" "/boot/initrd.img-$KVER"
find $T/boot -type f | sort
cat $T/boot/loader/entries/*.conf
echo "MKR-E2E-TIME boot-loader $(( $(date +%s) - t0 ))"

server_testdata
blkid -o export "${D1}1" "${D1}2" "${D1}3" > $OUT/blkid-provision.txt

for m in run sys proc dev; do umount $T/$m; done
umount $T/boot $T/home $T
finish
