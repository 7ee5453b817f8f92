"""bpf(2): load a program and attach it to a cgroup (linux/bpf.h).

cgroup v2 has no devices.allow file: the device allow-list is a small eBPF
program of type BPF_PROG_TYPE_CGROUP_DEVICE that the kernel runs on every
open or mknod of a device node, returning 1 (allow) or 0 (deny).
"""
import ctypes
import os
import struct

from . import check, libc

SYS_bpf = {"x86_64": 321, "aarch64": 280, "riscv64": 280}[os.uname().machine]

BPF_PROG_LOAD = 5
BPF_PROG_ATTACH = 8
BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6
BPF_F_ALLOW_MULTI = 2

# Instruction encoding: class | size/op | mode/source
LDX_MEM_W = 0x61          # BPF_LDX | BPF_W | BPF_MEM: dst = *(u32 *)(src + off)
ALU32_AND_K = 0x54        # dst &= imm
ALU32_RSH_K = 0x74        # dst >>= imm
ALU32_MOV_X = 0xbc        # dst = src
ALU64_MOV_K = 0xb7        # dst = imm
JMP_JNE_K = 0x55          # if dst != imm: pc += off
JMP_EXIT = 0x95


def insn(code, dst=0, src=0, off=0, imm=0):
    """One 8-byte instruction: struct bpf_insn."""
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def _bpf(cmd, attr):
    buf = ctypes.create_string_buffer(attr.ljust(128, b"\0"), 128)
    return check(libc.syscall(ctypes.c_long(SYS_bpf), ctypes.c_int(cmd), buf,
                              ctypes.c_uint(128)), "bpf")


def load_device_program(instructions):
    """Load a CGROUP_DEVICE program; returns its descriptor."""
    code = ctypes.create_string_buffer(b"".join(instructions))
    license = ctypes.create_string_buffer(b"Apache-2.0")
    attr = struct.pack("<IIQQ", BPF_PROG_TYPE_CGROUP_DEVICE, len(instructions),
                       ctypes.addressof(code), ctypes.addressof(license))
    try:
        return _bpf(BPF_PROG_LOAD, attr)
    except OSError as e:
        # Load again with the verifier's log on, to say why.
        log = ctypes.create_string_buffer(1 << 16)
        try:
            os.close(_bpf(BPF_PROG_LOAD, attr + struct.pack("<IIQ", 1, len(log),
                                                             ctypes.addressof(log))))
        except OSError:
            pass
        why = log.value.decode(errors="replace").strip().splitlines()[-1:] or [""]
        raise OSError(e.errno, f"{e.strerror} {why[0]}", "bpf(BPF_PROG_LOAD)") from None


def attach_to_cgroup(prog_fd, cgroup_fd):
    attr = struct.pack("<IIII", cgroup_fd, prog_fd, BPF_CGROUP_DEVICE, BPF_F_ALLOW_MULTI)
    _bpf(BPF_PROG_ATTACH, attr)
