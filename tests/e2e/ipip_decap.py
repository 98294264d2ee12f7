#!/usr/bin/env python3
"""A real server's ipip / ip6tnl interface in user space, for the TUN end-to-end test.

Usage: ipip_decap.py TUNDEV

Reads the IPv4-in-IPv4 (protocol 4) and IPv6-in-IPv6 (next header 41) packets that arrive for
this namespace's own addresses, through raw sockets, and writes the inner packet into the TUN
device TUNDEV (made beforehand with `ip tuntap add dev TUNDEV mode tun`, holding the VIP), so
the kernel receives the client's original packet addressed to the VIP, as it would from tunl0
or ip6tnl0. Stands in for the kernel's ipip and ip6_tunnel modules, which the test machines
may not have.

The raw sockets also keep the kernel from answering the outer packets itself: without a handler
for the protocol, a packet no raw socket took is answered with ICMP protocol unreachable (IPv4)
or parameter problem (IPv6).

Prints "ready" once both sockets are open and the TUN device is attached; runs until killed.
Standard library only.
"""

import fcntl
import os
import select
import socket
import struct
import sys

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
IPPROTO_IPIP = 4
IPPROTO_IPV6 = 41


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: ipip_decap.py TUNDEV")
    tun = os.open("/dev/net/tun", os.O_RDWR)
    ifr = struct.pack("16sH22x", sys.argv[1].encode(), IFF_TUN | IFF_NO_PI)
    fcntl.ioctl(tun, TUNSETIFF, ifr)
    # IPv4 raw sockets deliver the whole packet, outer header included.
    v4 = socket.socket(socket.AF_INET, socket.SOCK_RAW, IPPROTO_IPIP)
    # IPv6 raw sockets deliver the payload after the outer header: the inner packet.
    v6 = socket.socket(socket.AF_INET6, socket.SOCK_RAW, IPPROTO_IPV6)
    for s in (v4, v6):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    print("ready", flush=True)
    while True:
        readable, _, _ = select.select([v4, v6], [], [])
        for s in readable:
            packet = s.recv(65535)
            if s is v4:
                if len(packet) < 20 or packet[0] >> 4 != 4:
                    continue
                header = (packet[0] & 0x0F) * 4
                total = struct.unpack_from("!H", packet, 2)[0]
                inner = packet[header:total]
                if len(inner) < 20 or inner[0] >> 4 != 4:
                    continue
            else:
                inner = packet
                if len(inner) < 40 or inner[0] >> 4 != 6:
                    continue
            try:
                os.write(tun, inner)
            except OSError as e:
                print(f"ipip_decap: writing {len(inner)} bytes to {sys.argv[1]}: {e}", file=sys.stderr)


if __name__ == "__main__":
    main()
