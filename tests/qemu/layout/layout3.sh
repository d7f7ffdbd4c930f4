# Layout 3: LUKS2 + LVM + btrfs with subvolumes and a default subvolume.
. /tmp/layout/common.sh
set -x
D1=$(disk DISK1)
sfdisk -q "$D1" <<SF
label: gpt
type=CA7D7CCB-63ED-4C53-861C-1742536059CC, name=crypt
SF
printf 'layout3-test-key' > /tmp/key
# pbkdf2 with few iterations: argon2id would want 1 GiB of the VM's RAM.
cryptsetup luksFormat -q --type luks2 --label cryptdata --pbkdf pbkdf2 \
    --pbkdf-force-iterations 1000 --key-file /tmp/key "$(part "$D1" 1)"
cryptsetup open --key-file /tmp/key "$(part "$D1" 1)" cryptdata
pvcreate -q /dev/mapper/cryptdata
vgcreate -q vg1 /dev/mapper/cryptdata
lvcreate -q -y -n data -L 400M vg1
mkfs.btrfs -q -L data /dev/vg1/data
after_recover() {
    mkdir -p /mnt/t/data
    mount -o subvolid=5 /dev/vg1/data /mnt/t/data
}
after_recover
btrfs -q subvolume create /mnt/t/data/@
btrfs -q subvolume create /mnt/t/data/@home
btrfs subvolume set-default /mnt/t/data/@
DISKS="DISK1"
RECOVER_ARGS="--key-file /tmp/key"
. /tmp/layout/cycle.sh
