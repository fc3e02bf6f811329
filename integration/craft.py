"""A crafted TCP SYN from another host: what a packet not built by a kernel can reach.

``python craft.py IFACE DST_MAC SRC_IP DST_IP DST_PORT`` sends one SYN in an Ethernet
frame straight to ``DST_MAC`` (the host's uplink), whatever ``DST_IP`` is (127.0.0.1
included, which no kernel would send out of an interface).  Whether it got anywhere is
for the receiver to tell: an answer may never come back (the host will not send a reply
from 127.0.0.1 out of an interface), but the SYN itself arriving is the exposure.
"""

import os
import socket
import struct
import sys

ETH_P_IP = 0x0800
SYN = 0x02


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def syn(src: bytes, dst: bytes, sport: int, dport: int) -> bytes:
    tcp = struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 5 << 4, SYN, 64240, 0, 0)
    pseudo = src + dst + struct.pack("!BBH", 0, socket.IPPROTO_TCP, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", checksum(pseudo + tcp)) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 1, 0x4000, 64, 6, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    return ip + tcp


def main() -> int:
    iface, dst_mac, src_ip, dst_ip, dport = sys.argv[1:6]
    src, dst = socket.inet_aton(src_ip), socket.inet_aton(dst_ip)
    sport = 40000 + os.getpid() % 20000
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_IP)) as s:
        s.bind((iface, 0))
        own_mac = s.getsockname()[4]
        frame = bytes.fromhex(dst_mac.replace(":", "")) + own_mac + struct.pack("!H", ETH_P_IP)
        s.send(frame + syn(src, dst, sport, int(dport)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
