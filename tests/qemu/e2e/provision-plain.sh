# Provisioning of issue 18's firmware conversion pair, sourced by
# provision.sh (common.sh, server-common.sh and the env already read): the
# Debian 12 rootfs (grub-pc-bin and grub-efi-amd64-bin both installed,
# rootfs.rs: the files recover needs for either firmware) on the one blank
# disk DISK1 (6 GiB), plain partitions, no RAID, no LVM:
#   bios-mbr  MBR: 3 GiB ext4 / (active), 256 MiB swap, ext4 /home over the
#             rest (the disk is full: on a disk of the same size recover
#             must shrink something for the ESP it adds); GRUB i386-pc in
#             the MBR and its gap; no ESP
#   uefi-gpt  GPT: 200 MiB ESP (/boot/efi), 256 MiB swap, 3 GiB ext4 /, ext4
#             /home over the rest; GRUB x86_64-efi on the ESP's removable
#             path \EFI\BOOT\BOOTX64.EFI (no firmware variables here: the
#             provision VM boots by BIOS; OVMF finds the removable path);
#             no bios_grub partition
# Then mkrescue, test data, the list.
D1=$(disk DISK1)
if [ "$SCENARIO" = bios-mbr ]; then
    # sfdisk(8) MBR types: 83 Linux, 82 Linux swap.
    sfdisk -q "$D1" <<SF
label: dos
size=3GiB, type=83, bootable
size=256MiB, type=82
type=83
SF
    ROOT=${D1}1 SWAP=${D1}2 HOME=${D1}3 ESP=
else
    # sfdisk(8) GPT types: EFI System, Linux swap, Linux filesystem.
    sfdisk -q "$D1" <<SF
label: gpt
size=200MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=esp
size=256MiB, type=0657FD6D-A4AB-43C4-84E5-0933C84B4F4F, name=swap
size=3GiB, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=root
type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=home
SF
    ESP=${D1}1 SWAP=${D1}2 ROOT=${D1}3 HOME=${D1}4
    # A FAT volume id is its UUID without the dash (mkfs.fat(8) -i).
    mkfs.vfat -n ESP1 -i "$(echo "$ESP1_UUID" | tr -d -)" "$ESP" >/dev/null
fi
sfdisk -d "$D1"
mkfs.ext4 -q -L root -U "$ROOT_UUID" "$ROOT"
mkfs.ext4 -q -L home -U "$HOME_UUID" "$HOME"
mkswap -L swap -U "$SWAP_UUID" "$SWAP" >/dev/null

T=/mnt/t
mkdir -p $T
mount "$ROOT" $T
mkdir -p $T/home
mount "$HOME" $T/home
if [ -n "$ESP" ]; then
    mkdir -p $T/boot/efi
    mount -t vfat -o umask=0077 "$ESP" $T/boot/efi
fi
t0=$(date +%s)
tar -x -p --numeric-owner --xattrs --xattrs-include='*' --acls -f "$(disk ROOTFS)" -C $T
echo "MKR-E2E-TIME rootfs-extract $(( $(date +%s) - t0 ))"

uuid() { blkid -s UUID -o value "$1"; }
for pair in "$ROOT $ROOT_UUID" "$HOME $HOME_UUID" "$SWAP $SWAP_UUID" ${ESP:+"$ESP $ESP1_UUID"}; do
    set -- $pair
    [ "$(uuid "$1")" = "$2" ] || { echo "$1: UUID $(uuid "$1"), not $2" >&2; exit 1; }
done
sh /tmp/in/e2e/server-etc.sh $T /tmp/in/env
chroot $T passwd -d root >/dev/null
server_setup
if [ -z "$ESP" ]; then
    # No ESP to back up on the BIOS server (local.toml names /boot/efi).
    sed -i 's|^paths = .*|paths = ["/", "/home"]|' $T/etc/mkrescue/local.toml
    grep -q '^paths = \["/", "/home"\]$' $T/etc/mkrescue/local.toml
fi

for m in dev proc sys; do mount --bind /$m $T/$m; done
mount -t tmpfs tmpfs $T/run
server_package
t0=$(date +%s)
if INITRD=$(disk INITRD 2>/dev/null); then
    # Built on the host from the same files (server-etc.sh) and rootfs.
    rm -f $T/boot/initrd.img-*
    tar -x -f "$INITRD" -C $T/boot
else
    chroot $T update-initramfs -u -k all
fi
echo "MKR-E2E-TIME initramfs $(( $(date +%s) - t0 ))"
t0=$(date +%s)
if [ -z "$ESP" ]; then
    chroot $T grub-install --target=i386-pc "$D1"
else
    chroot $T grub-install --target=x86_64-efi --efi-directory=/boot/efi --removable --no-nvram
fi
chroot $T grub-mkconfig -o /boot/grub/grub.cfg
echo "MKR-E2E-TIME grub $(( $(date +%s) - t0 ))"
[ -z "$ESP" ] || find $T/boot/efi -type f | sort

server_testdata
blkid -o export "$ROOT" "$HOME" "$SWAP" ${ESP:+"$ESP"} > $OUT/blkid-provision.txt

for m in run sys proc dev; do umount $T/$m; done
[ -z "$ESP" ] || umount $T/boot/efi
umount $T/home $T
finish
