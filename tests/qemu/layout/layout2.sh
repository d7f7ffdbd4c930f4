# Layout 2: two disks, BIOS GPT with bios_grub, md RAID1 of the rest, LVM
# with an ext4 root, an xfs home and swap.
. /tmp/layout/common.sh
set -x
D1=$(disk DISK1); D2=$(disk DISK2)
raid1_lvm layout2:0 "$D1" "$D2"
DISKS="DISK1 DISK2"
. /tmp/layout/cycle.sh
