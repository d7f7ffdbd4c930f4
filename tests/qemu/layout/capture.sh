# Builds a layout with every kind of thing the capture reads, then records
# the raw output of each capture source into $OUT/fixtures (committed as
# tests/fixtures/layout/, see its README.md).
. /tmp/layout/common.sh
set -x
D1=$(disk DISK1); D2=$(disk DISK2); D3=$(disk DISK3)

# DISK1, DISK2: GPT, bios_grub + ESP + Linux RAID (layout 2 with an ESP).
for d in "$D1" "$D2"; do
    sfdisk -q "$d" <<SF
label: gpt
size=1MiB, type=21686148-6449-6E6F-744E-656564454649, name=bios
size=64MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=esp
type=A19D880F-05FC-4D3B-A006-743F0F84911E, name=raid
SF
done
mkfs.vfat -F 32 -n ESP -i 1234ABCD "$(part "$D1" 2)" >/dev/null
mdadm --create /dev/md0 --run --level=1 --raid-devices=2 --metadata=1.2 \
    --name=capture:0 --bitmap=internal "$(part "$D1" 3)" "$(part "$D2" 3)"
pvcreate -q /dev/md0
vgcreate -q vg0 /dev/md0
lvcreate -q -y -n root -L 320M vg0
lvcreate -q -y -n home -L 320M vg0
lvcreate -q -y -n swap -L 64M vg0
lvcreate -q -y --config 'global{thin_check_executable=""}' --type thin-pool -n pool -L 200M vg0
lvcreate -q -y --config 'global{thin_check_executable=""}' -n thin1 -V 300M --thinpool vg0/pool
lvcreate -q -y --config 'global{thin_check_executable=""}' -n thin2 -V 100M --thinpool vg0/pool
mkfs.ext4 -q -L root -O metadata_csum,64bit /dev/vg0/root
mkfs.xfs -q -L home /dev/vg0/home
mkswap -L swap /dev/vg0/swap >/dev/null
mkfs.ext2 -q -L thin1 /dev/vg0/thin1

# DISK3: msdos label, LUKS2 + LVM + btrfs with subvolumes, and a plain ext3.
sfdisk -q "$D3" <<SF
label: dos
size=800MiB, type=83
type=83, bootable
SF
printf 'capture-only-passphrase' > /tmp/key
cryptsetup luksFormat -q --type luks2 --label cryptdata --pbkdf pbkdf2 \
    --pbkdf-force-iterations 1000 --key-file /tmp/key "$(part "$D3" 1)"
cryptsetup open --key-file /tmp/key "$(part "$D3" 1)" cryptdata
pvcreate -q /dev/mapper/cryptdata
vgcreate -q vg1 /dev/mapper/cryptdata
lvcreate -q -y -n data -L 400M vg1
mkfs.btrfs -q -L data /dev/vg1/data
mkfs.ext3 -q -L old "$(part "$D3" 2)"

# The mount tree.
mkdir -p /mnt/t
mount /dev/vg0/root /mnt/t
mkdir -p /mnt/t/home /mnt/t/boot/efi /mnt/t/data /mnt/t/old
mount /dev/vg0/home /mnt/t/home
mount "$(part "$D1" 2)" /mnt/t/boot/efi
mount /dev/vg1/data /mnt/t/data
btrfs -q subvolume create /mnt/t/data/@
btrfs -q subvolume create /mnt/t/data/@home
btrfs -q subvolume create /mnt/t/data/@home/snap
btrfs subvolume set-default /mnt/t/data/@
mount -o noatime "$(part "$D3" 2)" /mnt/t/old
swapon /dev/vg0/swap

F=$OUT/fixtures
mkdir -p "$F"
# Names in the fixtures are the guest's kernel names; record which is which.
echo "DISK1=$D1 DISK2=$D2 DISK3=$D3" > "$F/disks.txt"
lsblk --json --bytes -O > "$F/lsblk.json"
for s in DISK1 DISK2 DISK3; do sfdisk --json "$(disk $s)" > "$F/sfdisk-$s.json"; done
for dev in $(lsblk -rnp -o NAME | sort -u); do
    n=$(echo "${dev#/dev/}" | tr / _)
    blkid -p -o export "$dev" > "$F/blkid-$n.txt" 2>/dev/null || true
    [ -s "$F/blkid-$n.txt" ] || rm -f "$F/blkid-$n.txt"
done
mdadm --detail --export /dev/md0 > "$F/mdadm-detail-export-md0.txt"
mdadm --detail /dev/md0 > "$F/mdadm-detail-md0.txt"
pvs --reportformat json --units b --nosuffix -o pv_name,pv_uuid,vg_name,pv_size,dev_size,pe_start > "$F/pvs.json"
vgs --reportformat json --units b --nosuffix -o vg_name,vg_uuid,vg_extent_size,vg_size,pv_count,lv_count > "$F/vgs.json"
lvs -a --reportformat json --units b --nosuffix -o lv_name,vg_name,lv_uuid,lv_size,segtype,stripes,stripe_size,pool_lv,data_lv,metadata_lv,lv_metadata_size,lv_attr,chunk_size,devices,lv_role > "$F/lvs.json"
cryptsetup luksDump "$(part "$D3" 1)" > "$F/luksdump-luks2.txt"
dumpe2fs -h /dev/vg0/root > "$F/dumpe2fs-ext4.txt" 2>/dev/null
dumpe2fs -h "$(part "$D3" 2)" > "$F/dumpe2fs-ext3.txt" 2>/dev/null
dumpe2fs -h /dev/vg0/thin1 > "$F/dumpe2fs-ext2.txt" 2>/dev/null
xfs_info /dev/vg0/home > "$F/xfs_info.txt"
btrfs subvolume list -a -p -u -q /mnt/t/data > "$F/btrfs-subvolume-list.txt"
btrfs subvolume get-default /mnt/t/data > "$F/btrfs-get-default.txt"
findmnt --json -o TARGET,SOURCE,FSTYPE,OPTIONS,FSROOT > "$F/findmnt.json"
cat /proc/swaps > "$F/proc-swaps.txt"

# A LUKS1 header as well (luksDump differs between versions).
lvcreate -q -y -n l1 -L 16M vg1
cryptsetup luksFormat -q --type luks1 --pbkdf-force-iterations 1000 --key-file /tmp/key /dev/vg1/l1
cryptsetup luksDump /dev/vg1/l1 > "$F/luksdump-luks1.txt"
lvremove -q -y vg1/l1
set +x
finish
