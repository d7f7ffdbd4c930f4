# Layout 5: layout 2 (two disks, bios_grub, md RAID1, LVM) recovered with
# --map onto other disks: one twice as big (its last partition grows), one
# of the same size. xtask compares before/after through map.txt.
. /tmp/layout/common.sh
set -x
D1=$(disk DISK1); D2=$(disk DISK2); D3=$(disk BIG); D4=$(disk SAME)
raid1_lvm layout5:0 "$D1" "$D2"
printf '%s %s\n%s %s\n' "$D1" "$D3" "$D2" "$D4" > "$OUT/map.txt"
DISKS="DISK1 DISK2"
RECOVER_ARGS="--map $D1=$D3 --map $D2=$D4"
. /tmp/layout/cycle.sh
