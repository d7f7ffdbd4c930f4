# Lists every file under the given roots (each on its own file system) for
# the harness to compare: DIR.meta (NUL-separated: path, "type mode uid gid
# size mtime nlink inode", link target), DIR.sha (sha256sum --zero) and
# DIR.xattr (getfattr(1) text, names octal-escaped). Usage: list.sh DIR ROOT...
set -euo pipefail
dir=$1
shift
prune=( \( -path /proc -o -path /sys -o -path /dev -o -path /run -o -path /tmp
        -o -path /backup -o -path /mnt -o -path /media -o -path /var/tmp
        -o -path /lost+found -o -path /home/lost+found \) -prune -o )
find "$@" -xdev "${prune[@]}" -printf '%p\0%y %m %U %G %s %T@ %n %i\0%l\0' > "$dir.meta"
find "$@" -xdev "${prune[@]}" -type f -print0 | xargs -0 -r sha256sum --zero > "$dir.sha"
find "$@" -xdev "${prune[@]}" -print0 \
    | xargs -0 -r getfattr --no-dereference --dump --match=- --encoding=hex --absolute-names \
    > "$dir.xattr" 2>/dev/null || true
echo "listed $(tr -cd '\0' < "$dir.sha" | wc -c) files under $*"
