"""Tiny ELF64 little-endian files built byte by byte, so no test depends on the host's binaries.

Layout per the System V gABI (ELF header, program headers, section headers) and its dynamic
section (DT_NEEDED = 1, DT_STRTAB = 5, DT_STRSZ = 10): enough for edgekit's `elf_abi` and
`elf_needed`, and for binutils' `readelf -d`. Not executable.
"""

from __future__ import annotations

import struct
from pathlib import Path

EM_X86_64 = 62
EM_AARCH64 = 183

_EHDR = struct.Struct("<16sHHIQQQIHHHHHH")  # 64 bytes
_PHDR = struct.Struct("<IIQQQQQQ")  # 56 bytes
_SHDR = struct.Struct("<IIQQQQIIQQ")  # 64 bytes


def write_elf(path: Path, *, machine: int, needed: tuple[str, ...] = ()) -> Path:
    """Write an ELF64 shared object for `machine` whose dynamic section needs `needed`."""
    dynstr = b"\0" + b"".join(n.encode() + b"\0" for n in needed)
    shstrtab = b"\0.dynstr\0.dynamic\0.shstrtab\0"
    phoff = _EHDR.size
    dynstr_off = phoff + 2 * _PHDR.size
    dynamic_off = (dynstr_off + len(dynstr) + 7) // 8 * 8
    entries: list[tuple[int, int]] = []
    offset = 1
    for name in needed:
        entries.append((1, offset))  # DT_NEEDED: an offset into the string table
        offset += len(name.encode()) + 1
    entries += [(5, dynstr_off), (10, len(dynstr)), (0, 0)]  # DT_STRTAB (vaddr = offset), DT_STRSZ, DT_NULL
    dynamic = b"".join(struct.pack("<qQ", tag, value) for tag, value in entries)
    shstr_off = dynamic_off + len(dynamic)
    shoff = (shstr_off + len(shstrtab) + 7) // 8 * 8
    size = shoff + 4 * _SHDR.size
    ident = b"\x7fELF" + bytes([2, 1, 1]) + bytes(9)  # 64-bit, little-endian, version 1
    ehdr = _EHDR.pack(ident, 3, machine, 1, 0, phoff, shoff, 0, _EHDR.size, _PHDR.size, 2, _SHDR.size, 4, 3)
    phdrs = _PHDR.pack(1, 4, 0, 0, 0, size, size, 0x1000)  # PT_LOAD the whole file at vaddr 0 (R)
    phdrs += _PHDR.pack(2, 4, dynamic_off, dynamic_off, dynamic_off, len(dynamic), len(dynamic), 8)  # PT_DYNAMIC
    shdrs = _SHDR.pack(0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    shdrs += _SHDR.pack(1, 3, 2, dynstr_off, dynstr_off, len(dynstr), 0, 0, 1, 0)  # .dynstr, SHT_STRTAB
    shdrs += _SHDR.pack(9, 6, 2, dynamic_off, dynamic_off, len(dynamic), 1, 0, 8, 16)  # .dynamic, link 1
    shdrs += _SHDR.pack(18, 3, 0, 0, shstr_off, len(shstrtab), 0, 0, 1, 0)  # .shstrtab
    data = bytearray(size)
    for off, blob in ((0, ehdr), (phoff, phdrs), (dynstr_off, dynstr), (dynamic_off, dynamic)):
        data[off : off + len(blob)] = blob
    data[shstr_off : shstr_off + len(shstrtab)] = shstrtab
    data[shoff : shoff + len(shdrs)] = shdrs
    path.write_bytes(bytes(data))
    path.chmod(0o755)
    return path
