# The server's network (issue 18): waits for the static address
# server-etc.sh gives lan0, records links and addresses, pings the gateway
# (QEMU's user network answers ICMP echo to its own address even with
# restrict=on; no ping in a minbase system, so perl-base's raw socket).
# Usage: bash net.sh OUT NAME -> OUT/ip-NAME.json (`ip -j addr show`),
# OUT/ping-NAME.txt. The harness compares them (xtask/src/qemu/e2e/compare.rs).
set -uo pipefail
out=$1 name=$2
. /run/e2e/in/env
if [ -f /etc/systemd/network/10-lan0.network ]; then
    # networkd sets the address once udev has named the NIC (coldplug is
    # slow under TCG): up to 60 s.
    t0=$(date +%s)
    for _ in $(seq 120); do
        ip -4 -o addr show | grep -q " inet $SERVER_ADDR " && break
        sleep 0.5
    done
    echo "MKR-E2E-TIME net-wait-$name $(( $(date +%s) - t0 ))"
fi
ip -br link
ip -br addr
ip -j addr show > "$out/ip-$name.json"
perl -e '
use strict; use Socket;
my $gw = $ARGV[0];
socket(my $s, PF_INET, SOCK_RAW, 1) or die "socket: $!\n";
my $id = $$ & 0xffff;
my $p = pack("C C n n n a*", 8, 0, 0, $id, 1, "mkrescue-e2e");
my $sum = 0; $sum += $_ for unpack("n*", $p);
$sum = ($sum >> 16) + ($sum & 0xffff); $sum += $sum >> 16;
substr($p, 2, 2) = pack("n", ~$sum & 0xffff);
send($s, $p, 0, sockaddr_in(0, inet_aton($gw))) or die "send to $gw: $!\n";
my $end = time + 5;
while ((my $left = $end - time) > 0) {
    my $rin = ""; vec($rin, fileno($s), 1) = 1;
    select(my $rout = $rin, undef, undef, $left) or last;
    recv($s, my $b, 1500, 0) // last;
    my $ihl = (ord($b) & 15) * 4;
    my ($type, $code, $ck, $rid) = unpack("C C n n", substr($b, $ihl, 6));
    if ($type == 0 && $rid == $id) { print "echo reply from $gw\n"; exit 0 }
}
die "no echo reply from $gw within 5 s\n";
' "$SERVER_GW" > "$out/ping-$name.txt" 2>&1
cat "$out/ping-$name.txt"
