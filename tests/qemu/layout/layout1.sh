# Layout 1: one disk, GPT with an ESP (vfat), ext4 root and swap.
. /tmp/layout/common.sh
set -x
D1=$(disk DISK1)
sfdisk -q "$D1" <<SF
label: gpt
size=100MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=esp
size=1600MiB, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=root
type=0657FD6D-A4AB-43C4-84E5-0933C84B4F4F, name=swap
SF
mkfs.vfat -F 32 -n EFI "$(part "$D1" 1)" >/dev/null
mkfs.ext4 -q -L root "$(part "$D1" 2)"
mkswap -L swap "$(part "$D1" 3)" >/dev/null
DISKS="DISK1"
# A UEFI system's layout (an ESP, no bios_grub), recovered for UEFI as it
# was: under this SeaBIOS VM `--firmware auto` would add the bios_grub
# partition a BIOS boot needs (firmware conversion, tested in
# tests/it/recover/firmware.rs), and this test is the round trip.
RECOVER_ARGS="--firmware uefi"
. /tmp/layout/cycle.sh
