# Layout 4: an LVM thin pool with two thin volumes (ext4 and swap).
. /tmp/layout/common.sh
set -x
D1=$(disk DISK1)
sfdisk -q "$D1" <<SF
label: gpt
type=E6D6D379-F507-44C2-A23C-238F2A3DF928, name=lvm
SF
pvcreate -q "$(part "$D1" 1)"
vgcreate -q vg0 "$(part "$D1" 1)"
# No thin_check in the rescue system; the pool is new.
NOCHECK='global{thin_check_executable=""}'
lvcreate -q -y --config "$NOCHECK" --type thin-pool -n pool -L 400M vg0
lvcreate -q -y --config "$NOCHECK" -n thin1 -V 600M --thinpool vg0/pool
lvcreate -q -y --config "$NOCHECK" -n thin2 -V 128M --thinpool vg0/pool
mkfs.ext4 -q -L thin1 /dev/vg0/thin1
mkswap -L thin2 /dev/vg0/thin2 >/dev/null
DISKS="DISK1"
. /tmp/layout/cycle.sh
