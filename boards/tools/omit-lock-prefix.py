#!/usr/bin/env python3
"""Rewrite every LOCK-prefixed instruction of a 32-bit x86 ELF binary as a
NOP followed by the same instruction without LOCK, in place.

Why: the Intel Quark X1000 (Galileo) re-executes the preceding instruction,
or faults, when a LOCK-prefixed instruction meets a page fault (Intel BSP
known issue 71538). Buildroot and Yocto assemble everything for it with
`-momit-lock-prefix=yes`; LLVM's integrated assembler has no such option,
so the linked binary is patched instead. The Quark is single-core, so an
x86 read-modify-write instruction is atomic without LOCK (an interrupt
cannot split it).

Instruction boundaries come from `objdump -d` (linear sweep of the code
sections). The LOCK byte is taken out of the instruction's prefixes and a
one-byte NOP (0x90) put in front, so every instruction keeps its address
and length and jump targets stay valid. Afterwards the binary is
disassembled again: no LOCK may be left, and exactly one NOP per patched
instruction may have appeared.

Usage: omit-lock-prefix.py BINARY   (prints how many instructions it patched)
Exit codes: 0 done, 1 the check failed or the file is not a 32-bit x86 ELF.
"""
import os
import re
import struct
import subprocess
import sys

LEGACY_PREFIXES = {0xF0, 0xF2, 0xF3, 0x2E, 0x36, 0x3E, 0x26, 0x64, 0x65, 0x66, 0x67}
LINE = re.compile(r"^\s*([0-9a-f]+):\t((?:[0-9a-f]{2} )+)\s*\t?(.*)$")


def disassemble(path):
    """(address, bytes, text) of every instruction objdump finds."""
    out = subprocess.run(["objdump", "-d", "-w", path], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"objdump failed on {path}: {out.stderr.strip()}")
    insns = []
    for line in out.stdout.splitlines():
        m = LINE.match(line)
        if m:
            insns.append((int(m.group(1), 16), bytes.fromhex(m.group(2).replace(" ", "")),
                          m.group(3).strip()))
    return insns


def load_segments(data):
    """PT_LOAD segments of a 32-bit little-endian x86 ELF: (vaddr, offset, filesz)."""
    if data[:4] != b"\x7fELF" or data[4] != 1 or data[5] != 1:
        raise SystemExit("not a 32-bit little-endian ELF file")
    (e_machine,) = struct.unpack_from("<H", data, 18)
    if e_machine != 3:
        raise SystemExit(f"not an i386 ELF file (e_machine {e_machine})")
    e_phoff, = struct.unpack_from("<I", data, 28)
    e_phentsize, e_phnum = struct.unpack_from("<HH", data, 42)
    segs = []
    for i in range(e_phnum):
        p_type, p_offset, p_vaddr, _, p_filesz = struct.unpack_from("<IIIII", data, e_phoff + i * e_phentsize)
        if p_type == 1:
            segs.append((p_vaddr, p_offset, p_filesz))
    return segs


def file_offset(segs, addr):
    for vaddr, offset, filesz in segs:
        if vaddr <= addr < vaddr + filesz:
            return offset + (addr - vaddr)
    raise SystemExit(f"address {addr:#x} is in no loaded segment")


def main():
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    path = sys.argv[1]
    data = bytearray(open(path, "rb").read())
    segs = load_segments(data)
    before = disassemble(path)
    patched = 0
    for addr, raw, _ in before:
        n = 0
        while n < len(raw) and raw[n] in LEGACY_PREFIXES:
            n += 1
        prefixes = raw[:n]
        if 0xF0 not in prefixes:
            continue
        new = bytes([0x90]) + bytes(b for b in prefixes if b != 0xF0) + raw[n:]
        assert len(new) == len(raw) and prefixes.count(0xF0) == 1, (hex(addr), raw.hex())
        off = file_offset(segs, addr)
        assert data[off:off + len(raw)] == raw, f"bytes at {addr:#x} differ from objdump's"
        data[off:off + len(raw)] = new
        patched += 1
    tmp = path + ".lockless"
    with open(tmp, "wb") as f:
        f.write(data)
    after = disassemble(tmp)
    locks = [a for a, raw, text in after if text.startswith("lock") or
             0xF0 in raw[:next((i for i, b in enumerate(raw) if b not in LEGACY_PREFIXES), len(raw))]]
    if locks or len(after) != len(before) + patched:
        raise SystemExit(f"check failed: {len(locks)} LOCK left, {len(after)} instructions "
                         f"after vs {len(before)} + {patched} before")
    os.chmod(tmp, os.stat(path).st_mode)
    os.replace(tmp, path)
    print(f"{patched} LOCK-prefixed instructions rewritten as NOP + instruction")


if __name__ == "__main__":
    main()
