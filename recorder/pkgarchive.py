"""Reading an evidence package (a ZIP of stored members) in place, without extracting.

Before anything is read, every member is checked: a safe name (no absolute path, no
``..``, no backslash, no control character), not a link, not a directory, stored (never
compressed: nothing is inflated, so no decompression bomb), not encrypted, its data
inside the file and overlapping no other member's (the local header agrees with the
central directory). What fails makes the input unusable (``PackageError``); a verifier
writes nothing anywhere. Members are then read by offset (``os.pread``), in any process.
"""

from __future__ import annotations

import itertools
import os
import stat
import struct
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from recorder.errors import EvidenceError

MAX_MEMBERS = 1_000_000
MAX_DOCUMENT_BYTES = 512 * 1024 * 1024
"""manifest.json, events.jsonl and the like are read whole: not beyond this."""
READ_BLOCK = 1 << 20
_LOCAL = struct.Struct("<4s22xHH")
_LOCAL_SIGNATURE = b"PK\x03\x04"


class PackageError(EvidenceError):
    """The input is not a usable package. Codes: ``not_a_package``, ``unsafe_name``,
    ``link_member``, ``compressed_member``, ``encrypted_member``, ``bad_layout``,
    ``too_large``."""


@dataclass(frozen=True)
class Member:
    name: str
    offset: int
    """Where the member's bytes start in the file."""
    size: int


def safe_name(name: str) -> bool:
    parts = name.split("/")
    return (
        0 < len(name) <= 255
        and not name.startswith("/")
        and "\\" not in name
        and not any(ord(c) < 32 or c == "\x7f" for c in name)
        and ":" not in parts[0]
        and all(part not in ("", ".", "..") for part in parts)
    )


def _check(info: zipfile.ZipInfo) -> None:
    name = info.filename
    if info.orig_filename != name or not safe_name(name):
        raise PackageError("unsafe_name", repr(info.orig_filename))
    if stat.S_ISLNK(info.external_attr >> 16):
        raise PackageError("link_member", name)
    if info.flag_bits & 0x1:
        raise PackageError("encrypted_member", name)
    if info.compress_type != zipfile.ZIP_STORED or info.compress_size != info.file_size:
        raise PackageError("compressed_member", name)


class Archive:
    def __init__(self, path: Path, members: dict[str, Member], size: int) -> None:
        self.path = path
        self.members = members
        self.size = size

    @classmethod
    def open(cls, path: Path) -> Archive:
        try:
            if not path.is_file():
                raise PackageError("not_a_package", f"{path} is not a file")
            size = path.stat().st_size
            with zipfile.ZipFile(path) as archive:
                infos = archive.infolist()
        except PackageError:
            raise
        except (
            zipfile.BadZipFile,
            NotImplementedError,  # a version or flag zipfile does not read
            OSError,
            ValueError,
            EOFError,
            struct.error,
        ) as exc:
            raise PackageError("not_a_package", str(exc)) from exc
        if len(infos) > MAX_MEMBERS:
            raise PackageError("too_large", f"{len(infos)} members")
        members: dict[str, Member] = {}
        for info in infos:
            _check(info)
            if info.filename in members:
                raise PackageError("bad_layout", f"{info.filename} twice")
            members[info.filename] = Member(info.filename, info.header_offset, info.file_size)
        with path.open("rb") as handle:
            located = {name: _locate(handle.fileno(), m, size) for name, m in members.items()}
        _no_overlap(list(located.values()), {m.name: m.offset for m in members.values()})
        return cls(path, located, size)

    def read(self, name: str, limit: int = MAX_DOCUMENT_BYTES) -> bytes:
        member = self.members[name]
        if member.size > limit:
            raise PackageError("too_large", f"{name}: {member.size} bytes")
        with self.path.open("rb") as handle:
            return os.pread(handle.fileno(), member.size, member.offset)

    def blocks(self, name: str) -> Iterator[bytes]:
        yield from read_blocks(self.path, self.members[name])


def read_blocks(path: Path, member: Member) -> Iterator[bytes]:
    """The member's bytes, block by block (in any process: only path and offsets)."""
    with path.open("rb") as handle:
        done = 0
        while done < member.size:
            block = os.pread(
                handle.fileno(), min(READ_BLOCK, member.size - done), member.offset + done
            )
            if not block:
                raise PackageError("not_a_package", f"{member.name} cut short")
            done += len(block)
            yield block


def _locate(fd: int, member: Member, size: int) -> Member:
    """The member with the offset of its data, from its local header."""
    if member.offset < 0:
        raise PackageError("not_a_package", f"{member.name}: header before the start of the file")
    header = os.pread(fd, _LOCAL.size, member.offset)
    if len(header) != _LOCAL.size:
        raise PackageError("not_a_package", f"{member.name}: local header cut short")
    signature, name_length, extra_length = _LOCAL.unpack(header)
    name = os.pread(fd, name_length, member.offset + _LOCAL.size)
    if signature != _LOCAL_SIGNATURE or name != member.name.encode("utf-8"):
        raise PackageError("not_a_package", f"{member.name}: local header disagrees")
    start = member.offset + _LOCAL.size + name_length + extra_length
    if start + member.size > size:
        raise PackageError("not_a_package", f"{member.name}: data beyond the end of the file")
    return Member(member.name, start, member.size)


def _no_overlap(members: list[Member], headers: dict[str, int]) -> None:
    """Each member's header and data lie before the next member's header."""
    ordered = sorted(members, key=lambda m: headers[m.name])
    for member, following in itertools.pairwise(ordered):
        if member.offset + member.size > headers[following.name]:
            raise PackageError("not_a_package", f"{member.name} overlaps {following.name}")
