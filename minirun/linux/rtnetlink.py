"""rtnetlink: the messages ``ip link``/``ip addr``/``ip route`` send to the kernel.

A container's network is made of five requests on a NETLINK_ROUTE socket:
make a bridge, make a veth pair with one end in another namespace, attach an
end to the bridge and bring it up, give an interface an address, add a
default route. Each request is a header, a fixed struct, then
type-length-value attributes, some nested (linux/netlink.h, rtnetlink.h,
if_link.h, veth.h); the kernel answers each with an error code (0 = done).

Python's socket module speaks AF_NETLINK; only the byte layouts are written
here. (pyroute2 does all of this and far more, but costs 175-300 ms to import
on a small VM, more than a whole container start: see the README.)

A socket belongs to the network namespace it was made in, so one made in a
thread that has joined a container's namespace (``setns``) talks to that
container's kernel network stack.
"""
import ipaddress
import os
import socket
import struct

# linux/netlink.h
NLM_F_REQUEST, NLM_F_ACK, NLM_F_EXCL, NLM_F_CREATE = 0x1, 0x4, 0x200, 0x400
NLMSG_ERROR = 2
# linux/rtnetlink.h: message types, route table/protocol/scope/type
RTM_NEWLINK, RTM_DELLINK, RTM_NEWADDR, RTM_NEWROUTE = 16, 17, 20, 24
RT_TABLE_MAIN, RTPROT_BOOT, RT_SCOPE_UNIVERSE, RTN_UNICAST = 254, 3, 0, 1
RTA_GATEWAY = 5
# linux/if_link.h, linux/veth.h, linux/if_addr.h
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MASTER, IFLA_LINKINFO, IFLA_NET_NS_FD = 1, 3, 10, 18, 28
IFLA_INFO_KIND, IFLA_INFO_DATA = 1, 2
VETH_INFO_PEER = 1
IFA_ADDRESS, IFA_LOCAL = 1, 2
IFA_F_NODAD = 0x02                     # IPv6: usable at once, no duplicate detection wait
IFF_UP = 0x1

_HEADER = struct.Struct("=IHHII")      # nlmsghdr: length, type, flags, sequence, port
_IFINFO = struct.Struct("=BxHiII")     # ifinfomsg: family, type, index, flags, change
_IFADDR = struct.Struct("=BBBBI")      # ifaddrmsg: family, prefix length, flags, scope, index
_RTMSG = struct.Struct("=BBBBBBBBI")   # rtmsg: family, dst/src length, tos, table, protocol,
#                                        scope, type, flags


def attr(kind, payload):
    """One rtattr: length, type, payload padded to 4 bytes."""
    if isinstance(payload, str):
        payload = payload.encode() + b"\0"
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * (-length % 4)


def u32(value):
    return struct.pack("=I", value)


def ifinfo(index=0, up=False, *attrs):
    flags = IFF_UP if up else 0
    return _IFINFO.pack(socket.AF_UNSPEC, 0, index, flags, flags) + b"".join(attrs)


class Netlink:
    """A NETLINK_ROUTE socket in the calling thread's network namespace."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                                  socket.NETLINK_ROUTE)
        self.sock.bind((0, 0))
        self.seq = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.sock.close()

    def request(self, kind, body, flags=0):
        """Send one request and wait for the kernel's answer; OSError if it refused."""
        self.seq += 1
        self.sock.send(_HEADER.pack(_HEADER.size + len(body), kind,
                                    NLM_F_REQUEST | NLM_F_ACK | flags, self.seq, 0) + body)
        while True:
            data = self.sock.recv(65536)
            offset = 0
            while offset < len(data):
                length, msg_type, _, seq, _ = _HEADER.unpack_from(data, offset)
                if msg_type == NLMSG_ERROR and seq == self.seq:
                    error = -struct.unpack_from("=i", data, offset + _HEADER.size)[0]
                    if error:
                        raise OSError(error, os.strerror(error))
                    return
                offset += (length + 3) & ~3

    # -- links ------------------------------------------------------------------------
    def add_bridge(self, name):
        """ip link add NAME type bridge"""
        self.request(RTM_NEWLINK, ifinfo(0, False, attr(IFLA_IFNAME, name), attr(
            IFLA_LINKINFO, attr(IFLA_INFO_KIND, "bridge"))), NLM_F_CREATE | NLM_F_EXCL)

    def add_veth(self, name, peer, peer_netns_fd):
        """ip link add NAME type veth peer name PEER netns FD"""
        peer_info = ifinfo(0, False, attr(IFLA_IFNAME, peer), attr(IFLA_NET_NS_FD,
                                                                   u32(peer_netns_fd)))
        linkinfo = attr(IFLA_INFO_KIND, "veth") + attr(IFLA_INFO_DATA,
                                                       attr(VETH_INFO_PEER, peer_info))
        self.request(RTM_NEWLINK, ifinfo(0, False, attr(IFLA_IFNAME, name),
                                         attr(IFLA_LINKINFO, linkinfo)),
                     NLM_F_CREATE | NLM_F_EXCL)

    def set_link(self, name, up=True, master=None, mac=None):
        """ip link set NAME [master BRIDGE] [address MAC] up"""
        attrs = []
        if master is not None:
            attrs.append(attr(IFLA_MASTER, u32(socket.if_nametoindex(master))))
        if mac is not None:
            attrs.append(attr(IFLA_ADDRESS, bytes.fromhex(mac.replace(":", ""))))
        self.request(RTM_NEWLINK, ifinfo(socket.if_nametoindex(name), up, *attrs))

    def delete_link(self, name):
        """ip link del NAME"""
        self.request(RTM_DELLINK, ifinfo(0, False, attr(IFLA_IFNAME, name)))

    # -- addresses and routes -----------------------------------------------------------
    def add_address(self, name, address, prefixlen):
        """ip addr add ADDRESS/PREFIX dev NAME (IPv6: nodad, as Docker adds them: on a bridge
        minirun numbers itself there is nobody to clash with, and DAD would hold the address
        back for a second)"""
        ip = ipaddress.ip_address(address)
        index = socket.if_nametoindex(name)
        if ip.version == 4:
            body = _IFADDR.pack(socket.AF_INET, prefixlen, 0, RT_SCOPE_UNIVERSE, index) \
                + attr(IFA_LOCAL, ip.packed) + attr(IFA_ADDRESS, ip.packed)
        else:
            body = _IFADDR.pack(socket.AF_INET6, prefixlen, IFA_F_NODAD, RT_SCOPE_UNIVERSE,
                                index) + attr(IFA_ADDRESS, ip.packed)
        self.request(RTM_NEWADDR, body, NLM_F_CREATE | NLM_F_EXCL)

    def add_default_route(self, gateway):
        """ip [-6] route add default via GATEWAY"""
        ip = ipaddress.ip_address(gateway)
        family = socket.AF_INET if ip.version == 4 else socket.AF_INET6
        self.request(RTM_NEWROUTE, _RTMSG.pack(family, 0, 0, 0, RT_TABLE_MAIN,
                                               RTPROT_BOOT, RT_SCOPE_UNIVERSE, RTN_UNICAST, 0)
                     + attr(RTA_GATEWAY, ip.packed), NLM_F_CREATE | NLM_F_EXCL)
