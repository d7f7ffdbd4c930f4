# Layout 5: layout 2 (two disks, bios_grub, md RAID1, LVM) recovered with
# --map onto other disks: one twice as big (its last partition grows), one
# of the same size. xtask compares before/after through map.txt.
. /tmp/layout/common.sh
set -x
D1=$(disk DISK1); D2=$(disk DISK2); D3=$(disk BIG); D4=$(disk SAME)
for d in "$D1" "$D2"; do
    sfdisk -q "$d" <<SF
label: gpt
size=1MiB, type=21686148-6449-6E6F-744E-656564454649, name=bios_grub
type=A19D880F-05FC-4D3B-A006-743F0F84911E, name=raid
SF
done
mdadm --create /dev/md0 --run --level=1 --raid-devices=2 --metadata=1.2 \
    --name=layout5:0 --bitmap=internal "$(part "$D1" 2)" "$(part "$D2" 2)"
pvcreate -q /dev/md0
vgcreate -q vg0 /dev/md0
lvcreate -q -y -n root -L 400M vg0
lvcreate -q -y -n home -L 320M vg0
lvcreate -q -y -n swap -L 64M vg0
mkfs.ext4 -q -L root /dev/vg0/root
mkfs.xfs -q -L home /dev/vg0/home
mkswap -L swap /dev/vg0/swap >/dev/null
printf '%s %s\n%s %s\n' "$D1" "$D3" "$D2" "$D4" > "$OUT/map.txt"
DISKS="DISK1 DISK2"
RECOVER_ARGS="--map $D1=$D3 --map $D2=$D4"
. /tmp/layout/cycle.sh
