"""Find the modprobe configuration embedded in an initramfs image.

The image is read the way Linux 6.1's unpacker (init/initramfs.c, ``unpack_to_rootfs``, with the
decompressors of lib/) reads it: a sequence of segments, each uncompressed newc (070701 or 070702) cpio data or
one compressed stream whose output is a series of newc entries, with NUL padding between them. Entries are
applied as the kernel's syscalls apply them (parents through symlinks, hard links sharing an inode, a file of
another type removed first), so the result is the rootfs the kernel leaves. Every rule here was checked against
the real kernel booted in QEMU on the edge images of tests/support/edge_images.py (lab/README.md has the table).
Only the modprobe-related files are kept in memory; decompressed output is streamed and bounded.
"""

from __future__ import annotations

import bz2
import hashlib
import lzma
import re
import stat
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from xenpass.parse.lzo1x import LzoError, lzo1x_decompress

__all__ = ["MAX_OUTPUT", "InitramfsContent", "InitramfsMember", "detect_compression", "read_initramfs"]


@dataclass(frozen=True)
class InitramfsMember:
    name: str  # normalised: no leading "./" or "/"
    mode: int
    mtime: int
    data: bytes  # only for wanted members, else b""


@dataclass(frozen=True)
class InitramfsContent:
    segments: tuple[str, ...]  # "cpio" or the compression of each segment, in image order
    member_count: int  # cpio entries seen, TRAILER!!! excluded, overridden ones included
    config_files: dict[str, str]  # normalised path -> text, for the wanted files in force at the end
    error: str | None
    members: tuple[InitramfsMember, ...] = ()  # the wanted files with their metadata, sorted by name
    modules: tuple[str, ...] = ()  # distinct file names of the kernel modules in the image (`*.ko*`), sorted
    reader: str | None = None  # who read it, when not this module (the host's unmkinitramfs, lsinitrd)
    inventory: dict[str, tuple[int, str]] = field(default_factory=dict)  # read_initramfs(inventory=True) only

    def modprobe_text(self) -> str:
        """The modprobe.d-style files, each under a "# path" header, for display."""
        parts = [f"# {name}\n{_with_newline(text)}" for name, text in sorted(self.config_files.items())
                 if _is_modprobe_conf(name)]
        return "".join(parts)


class _FormatError(Exception):
    """The image cannot be read further; the message becomes ``InitramfsContent.error``."""


_MAGICS: tuple[tuple[bytes, str], ...] = (
    (b"070701", "cpio"),
    (b"070702", "cpio"),
    (b"\x1f\x8b", "gzip"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x5d\x00\x00", "lzma"),
    (b"\x02\x21\x4c\x18", "lz4"),
    (b"BZh", "bzip2"),
    (b"\x89LZO", "lzo"),
)
# Formats the kernel (or this reader) does not unpack, named so the error says why.
_UNSUPPORTED: tuple[tuple[bytes, str], ...] = (
    (b"\x04\x22\x4d\x18", "lz4 not supported: frame format (magic 04224d18); the kernel unpacks only the "
                          "legacy format (lz4 -l)"),
)

_MODPROBE_DIRS = ("etc/modprobe.d/", "run/modprobe.d/", "lib/modprobe.d/", "usr/lib/modprobe.d/",
                  "usr/local/lib/modprobe.d/")
_WANTED_FILES = frozenset({"etc/modprobe.conf", "conf/modules", "etc/modules"})

# The kernel unpacks into a RAM-backed rootfs with no size limit of its own: a 600 MiB file unpacks in a 1.5 GiB
# guest (lab/README.md). Output is streamed and only the modprobe files are kept, so memory stays small whatever
# the size; this bound only limits the time a decompression bomb costs (600 MiB took 3-8 s here). 4 GiB is far
# above any dom0 initramfs (Debian's are 30-300 MiB inflated); past it the image is judged unknown, not failed.
MAX_OUTPUT = 4 << 30
_IN_CHUNK = 1 << 20  # compressed bytes fed per call
_OUT_CHUNK = 1 << 20  # decompressed bytes produced per call: bounds memory against bombs
_HEADER_LEN = 110
_PATH_MAX = 4096  # the kernel skips entries whose name is longer
_LINK_KEEP = 1 << 20  # hard-linked files up to this size keep data, as a wanted link may follow


def detect_compression(data: bytes) -> str | None:
    """Name the segment type starting at data[0] by its magic, or None."""
    head = bytes(data[:6])
    return next((kind for magic, kind in _MAGICS if head.startswith(magic)), None)


def read_initramfs(data: bytes, max_output: int = MAX_OUTPUT, inventory: bool = False) -> InitramfsContent:
    """Read every segment of an initramfs image; never raises, problems go in ``error``.

    With `inventory`, the result also lists every regular file the kernel would leave (size and sha256).
    """
    reader = _ImageReader(bytes(data), max_output, inventory)
    try:
        reader.run()
    except _FormatError as exc:
        reader.error = str(exc)
    except Exception as exc:  # hostile input must not crash the checker
        reader.error = f"internal error reading initramfs: {exc!r}"
    return reader.result()


def _with_newline(text: str) -> str:
    return text if not text or text.endswith("\n") else text + "\n"


def _is_modprobe_conf(name: str) -> bool:
    return name == "etc/modprobe.conf" or name.startswith(_MODPROBE_DIRS)


def _is_wanted(name: str) -> bool:
    return name in _WANTED_FILES or name.startswith(_MODPROBE_DIRS)


def _pad4(n: int) -> int:
    return (n + 3) & ~3


@dataclass(slots=True)
class _Entry:
    name: str
    mode: int
    mtime: int
    nlink: int
    ino: int
    major: int
    minor: int
    size: int
    check: int | None  # the 070702 data checksum, None for 070701
    target: str = ""  # a symlink's target


class _Inode:
    """One regular file's content as the kernel leaves it; hard-linked names share one object."""

    __slots__ = ("data", "digest", "names", "size")

    def __init__(self) -> None:
        self.size = 0
        self.digest: str | None = None  # sha256, kept only for an inventory
        self.data: bytes | None = b""  # None when not kept (neither wanted nor a small link)
        self.names: set[str] = set()


_MAX_SYMLINKS = 40  # the kernel's MAXSYMLINKS: deeper chains fail with ELOOP


def _kind(mode: int) -> str:
    return "f" if stat.S_ISREG(mode) else "d" if stat.S_ISDIR(mode) else "l" if stat.S_ISLNK(mode) else "o"


_NO_LINK = _Inode()  # maybe_link() returned -1: the kernel writes nothing for this entry


class _Tree:
    """The rootfs as far as it matters: regular files (as inodes, for hard links), plus link bookkeeping."""

    def __init__(self, inventory: bool) -> None:
        self.inventory = inventory
        self.inodes: dict[str, _Inode] = {}  # name -> regular file
        self.meta: dict[str, tuple[int, int]] = {}  # name -> (mode, mtime) of the last entry written there
        self.count = 0
        self.links: dict[tuple[int, int, int, int], str] = {}  # the kernel's link hash: first name per inode
        self.modules: dict[str, str] = {}  # path -> file name, for every regular `*.ko*` member
        self.nodes: dict[str, str] = {}  # path -> "d" dir, "f" file, "l" symlink, "o" device/fifo/socket
        self.targets: dict[str, str] = {}  # symlink path -> target
        self.last_linked = False  # the last regular entry was hard-linked to an earlier name (maybe_link() == 1)

    def begin(self, entry: _Entry) -> _Inode | None:
        """Apply one entry as do_name()/do_symlink() do; return the inode a regular file's data goes to."""
        self.count += 1
        raw = entry.name
        path = self._resolve(raw)
        self.last_linked = False
        if path is None:  # a missing parent, or a parent that is no directory: every syscall fails
            return None
        entry.name = path
        kind = _kind(entry.mode)
        if raw.endswith("/") or raw.rsplit("/", 1)[-1] in (".", "..") or not path:
            return None  # names a directory that exists: mkdir gets EEXIST, anything else fails
        if not self._clean(path, kind):
            return None
        if kind == "f":
            return self._regular(entry, raw)
        if kind == "l":
            self.nodes[path], self.targets[path] = "l", entry.target
        elif kind == "d":
            self.nodes.setdefault(path, "d")  # mkdir; EEXIST keeps the directory there
        elif self._linked(entry, raw) is None:  # mknod only when maybe_link() returned 0
            self.nodes.setdefault(path, "o")
        return None

    def _regular(self, entry: _Entry, raw: str) -> _Inode | None:
        path = entry.name
        base = path.rsplit("/", 1)[-1]
        if ".ko" in base:
            self.modules[path] = base
        inode = self._linked(entry, raw)
        self.last_linked = inode is not None
        if inode is _NO_LINK:
            return None
        if inode is None:  # open(O_TRUNC) on an existing file writes into its inode (and its other names)
            inode = self.inodes.get(path) or _Inode()
            self._attach(path, inode)
        self.nodes[path] = "f"
        self.meta[path] = (entry.mode, entry.mtime)
        return inode

    def _clean(self, path: str, kind: str) -> bool:
        """clean_path(): an existing node of another type goes (a directory only when empty)."""
        old = self.nodes.get(path)
        if old is None or (old == kind and kind != "l"):
            return True
        if old == "d" and any(n.startswith(path + "/") for n in self.nodes):
            return False  # rmdir fails; creating the new node then fails too
        self._drop(path)
        return True

    def _resolve(self, raw: str) -> str | None:
        """The path a syscall reaches for `raw`, relative to the rootfs: parents followed through symlinks."""
        parts = raw.split("/")
        parent = self._walk([], parts[:-1], 0)
        if parent is None:
            return None
        last = parts[-1]
        if last in ("", "."):
            return "/".join(parent)
        if last == "..":
            return "/".join(parent[:-1])
        return "/".join([*parent, last])

    def _walk(self, cur: list[str], parts: list[str], depth: int) -> list[str] | None:
        for part in parts:
            if part in ("", "."):
                continue
            if part == "..":
                cur = cur[:-1]  # ".." at the root stays there
                continue
            path = "/".join([*cur, part])
            kind = self.nodes.get(path)
            if kind == "l" and depth < _MAX_SYMLINKS:
                target = self.targets[path]
                found = self._walk([] if target.startswith("/") else cur, target.split("/"), depth + 1)
                if found is None or self.nodes.get("/".join(found), "d" if not found else None) != "d":
                    return None
                cur = found
            elif kind == "d":
                cur = [*cur, part]
            else:
                return None
        return cur

    def keeps(self, inode: _Inode, entry: _Entry) -> bool:
        return any(_is_wanted(n) for n in inode.names) or (entry.nlink >= 2 and entry.size <= _LINK_KEEP)

    def trailer(self) -> None:
        self.links.clear()  # free_hash(): the kernel forgets links at each TRAILER!!!

    def _linked(self, entry: _Entry, raw: str) -> _Inode | None:
        # maybe_link(): the first name of an (ino, major, minor, type) is remembered, later ones link to it
        if entry.nlink < 2:
            return None
        key = (entry.major, entry.minor, entry.ino, stat.S_IFMT(entry.mode))
        first = self.links.setdefault(key, raw)
        if first is raw:
            return None
        self._clean(entry.name, "")  # clean_path(collected, 0): whatever is there goes, even the first name
        first_path = self._resolve(first)
        if entry.name in self.nodes or first_path is None:
            return _NO_LINK
        if self.nodes.get(first_path) == "o":
            self.nodes[entry.name] = "o"  # a second name for a device node or fifo
            return _NO_LINK
        target = self.inodes.get(first_path)
        if target is None:  # init_link() fails: the first name is gone or is no longer a file
            return _NO_LINK
        self._attach(entry.name, target)
        return target

    def _attach(self, name: str, inode: _Inode) -> None:
        self.inodes[name] = inode
        inode.names.add(name)

    def _drop(self, name: str) -> None:
        self.nodes.pop(name, None)
        self.targets.pop(name, None)
        self.modules.pop(name, None)
        inode = self.inodes.pop(name, None)
        if inode is not None:
            inode.names.discard(name)
        self.meta.pop(name, None)

    def members(self) -> dict[str, InitramfsMember]:
        wanted = {n: i for n, i in self.inodes.items() if _is_wanted(n)}
        return {n: InitramfsMember(n, *self.meta[n], i.data or b"") for n, i in sorted(wanted.items())}


class _Body:
    """The data of one regular file being written: kept, hashed and checksummed as needed."""

    def __init__(self, tree: _Tree, inode: _Inode, entry: _Entry, linked_empty: bool):
        self.inode, self.entry = inode, entry
        self.rewrite = not linked_empty  # a hard link with no data opens without O_TRUNC: content stays
        self.keep = tree.keeps(inode, entry)
        self.parts: list[bytes] = []
        self.hasher = hashlib.sha256() if tree.inventory else None
        self.sum = 0

    def add(self, chunk: bytes) -> None:
        if self.keep:
            self.parts.append(chunk)
        if self.hasher is not None:
            self.hasher.update(chunk)
        if self.entry.check is not None:
            self.sum += sum(chunk)

    def close(self, written: int) -> None:
        """The kernel truncated the file to its size first: bytes never written read as zeros."""
        if not self.rewrite:
            return
        if written < self.entry.size:
            self.entry.check = None  # cut short: the kernel never reached its checksum test
        for left in range(self.entry.size - written, 0, -_OUT_CHUNK):
            self.add(bytes(min(left, _OUT_CHUNK)))
        inode = self.inode
        inode.size = self.entry.size
        inode.data = b"".join(self.parts) if self.keep else None
        inode.digest = self.hasher.hexdigest() if self.hasher is not None else None

    def checksum_ok(self) -> bool:
        return self.entry.check is None or (self.sum & 0xFFFFFFFF) == self.entry.check


_BOUNDARY, _HEADER, _NAME, _BODY, _SKIP = range(5)
_NONZERO = re.compile(rb"[^\x00]")


class _CpioStream:
    """Incremental newc parser fed with chunks; mirrors the kernel's state machine (init/initramfs.c)."""

    def __init__(self, tree: _Tree, segment: int, offset: int = 0, plain: bool = False, first: bool = False):
        self.tree = tree
        self.segment = segment
        self.offset = offset  # stream offset of the next byte, for the 4-byte alignment rules
        self.plain = plain  # uncompressed: hand non-cpio bytes back to the image loop
        self.first = first  # the image's first segment: the kernel starts in state Start, where no zero may lead
        self.state = _BOUNDARY
        self.pending = bytearray()
        self.need = 0
        self.entry: _Entry | None = None
        self.body: _Body | None = None
        self.link_target: bytearray | None = None
        self.left = 0
        self.skip = 0
        self.after_trailer = False
        self.namesize = 0
        self.archives = 0  # archives begun, for naming segments
        self.stopped = False

    def between_entries(self) -> bool:
        """True where the kernel's state is Reset: the only place a compressed stream may end. Before the
        image's first entry the state is Start, so a first stream with no entry fails too."""
        return self.state == _BOUNDARY and (self.archives > 0 or not self.first)

    def feed(self, buf: bytes, start: int = 0) -> int:
        """Consume buf[start:]; return the index of the first byte not consumed."""
        i, n = start, len(buf)
        steps: dict[int, Callable[[bytes, int, int], int]] = {
            _BOUNDARY: self._boundary, _HEADER: self._collect, _NAME: self._collect,
            _BODY: self._body, _SKIP: self._skip,
        }
        while i < n and not self.stopped:
            j = steps[self.state](buf, i, n)
            self.offset += j - i
            i = j
        return i

    def truncated(self) -> None:
        """The plain image ended here: the kernel keeps what it wrote, a file cut short padded with zeros."""
        if self.state == _BODY and self.body is not None:
            self.body.close(self.body.entry.size - self.left)

    def _boundary(self, buf: bytes, i: int, n: int) -> int:
        if self.first and self.archives == 0 and buf[i] == 0:
            raise _FormatError(f"no cpio magic at the start of segment {self.segment} (the kernel starts "
                               "in state Start: a compressed first segment may not begin with zeros)")
        match = _NONZERO.search(buf, i, n)
        if match is None:
            return n
        j = match.start()
        offset = self.offset + j - i
        if offset % 4 and self.archives:  # do_reset(): zeros must end 4-aligned
            raise _FormatError(f"broken padding in segment {self.segment} at offset {offset} (the kernel's "
                               "do_reset)")
        if buf[j] != 0x30:  # '0' starts the next header
            if self.plain:
                self.stopped = True
                return j
            raise _FormatError(f"junk within compressed archive in segment {self.segment} at offset {offset}")
        if self.after_trailer or not self.archives:
            self.archives += 1
            self.after_trailer = False
        self.state, self.need = _HEADER, _HEADER_LEN
        return j

    def _collect(self, buf: bytes, i: int, n: int) -> int:
        take = min(self.need - len(self.pending), n - i)
        self.pending += buf[i:i + take]
        if len(self.pending) == self.need:
            raw, self.pending = bytes(self.pending), bytearray()
            if self.state == _HEADER:
                self._on_header(raw)
            else:
                self._on_name(raw)
        return i + take

    def _on_header(self, raw: bytes) -> None:
        magic = raw[:6]
        if magic == b"070707":
            raise _FormatError(f"old cpio format 070707 in segment {self.segment}: the kernel needs newc "
                               "(\"incorrect cpio method used: use -H newc option\")")
        if magic not in (b"070701", b"070702"):
            raise _FormatError(f"no cpio magic in segment {self.segment} (found {magic!r})")
        fields = [_hex_field(raw[k:k + 8]) for k in range(6, _HEADER_LEN, 8)]
        ino, mode, _uid, _gid, nlink, mtime, size, major, minor, _rmaj, _rmin, namesize, check = fields
        self.entry = _Entry("", mode, mtime, nlink, ino, major, minor, size,
                            check if magic == b"070702" else None)
        name_len = _pad4(_HEADER_LEN + namesize) - _HEADER_LEN
        if _skipped(mode, namesize, size):
            self._skip_entry(name_len + size)
        else:
            self.state, self.need, self.namesize = _NAME, name_len, namesize

    def _skip_entry(self, length: int) -> None:
        self.entry = None
        self.state, self.skip = _SKIP, _pad4(_HEADER_LEN + length) - _HEADER_LEN
        if self.skip == 0:
            self._end_skip()

    def _on_name(self, raw: bytes) -> None:
        entry = self.entry
        assert entry is not None
        if raw[self.namesize - 1] != 0:
            raise _FormatError(f"malformed archive in segment {self.segment}: a name without its NUL (the "
                               "kernel's \"initramfs name without nulterm\" stops unpacking)")
        raw_name = raw[:self.namesize - 1].split(b"\x00", 1)[0]
        self.state, self.left, self.skip = _BODY, entry.size, _pad4(entry.size) - entry.size
        self.body = None
        if raw_name == b"TRAILER!!!":
            self.entry = None
            self.tree.trailer()
            self.after_trailer = True
        elif stat.S_ISLNK(entry.mode):  # do_symlink() runs once the target is collected
            entry.name = raw_name.decode("utf-8", errors="replace")
            self.link_target = bytearray()
        else:
            entry.name = raw_name.decode("utf-8", errors="replace")
            inode = self.tree.begin(entry)
            if inode is not None:
                self.body = _Body(self.tree, inode, entry, linked_empty=entry.size == 0 and self.tree.last_linked)
        if self.left == 0:  # settle now: an archive may end right here, with no byte left to trigger it
            self._end_body()

    def _body(self, buf: bytes, i: int, n: int) -> int:
        take = min(self.left, n - i)
        if self.body is not None:
            self.body.add(buf[i:i + take])
        elif self.link_target is not None:
            self.link_target += buf[i:i + take]
        self.left -= take
        if self.left == 0:
            self._end_body()
        return i + take

    def _end_body(self) -> None:
        body, entry, target = self.body, self.entry, self.link_target
        self.body, self.entry, self.link_target = None, None, None
        if entry is not None and target is not None:
            entry.target = bytes(target).split(b"\x00", 1)[0].decode("utf-8", errors="replace")
            self.tree.begin(entry)
        if body is not None:
            body.close(body.entry.size)
            if not body.checksum_ok():
                raise _FormatError(f"bad data checksum for {body.entry.name} in segment {self.segment} "
                                   "(070702 archive; the kernel stops unpacking there)")
        if self.skip:
            self.state = _SKIP
        else:
            self._end_skip()

    def _skip(self, buf: bytes, i: int, n: int) -> int:
        take = min(self.skip, n - i)
        self.skip -= take
        if self.skip == 0:
            self._end_skip()
        return i + take

    def _end_skip(self) -> None:
        self.state = _BOUNDARY


def _skipped(mode: int, namesize: int, size: int) -> bool:
    """do_header() skips: a bad name size, a symlink target over PATH_MAX, a dir or node carrying data."""
    if namesize == 0 or namesize > _PATH_MAX:
        return True
    if stat.S_ISLNK(mode):
        return size > _PATH_MAX
    return not stat.S_ISREG(mode) and size > 0


def _hex_field(raw: bytes) -> int:
    """simple_strtoul(buf, NULL, 16): the longest hex prefix, 0 when there is none."""
    match = re.match(rb"(?:0[xX])?([0-9a-fA-F]+)", raw)
    return int(match.group(1), 16) if match else 0


# --- decompressors: generators yielding output chunks and returning the end offset of their input ---

_Decoder = Callable[[bytes, int, int], Iterator[bytes]]


def _truncated(kind: str, segment: int) -> _FormatError:
    return _FormatError(f"truncated {kind} stream in segment {segment}")


def _gunzip(data: bytes, pos: int, segment: int) -> Iterator[bytes]:
    # As lib/decompress_inflate.c: 10 header bytes, the FNAME string if flagged (no other flag is honoured),
    # raw deflate, then 8 trailer bytes skipped unread: the CRC32 and size are never checked.
    if len(data) - pos < 10 or data[pos + 2] != 8:
        raise _FormatError(f"not a gzip file in segment {segment} (the kernel needs deflate, method 8)")
    i = pos + 10
    if data[pos + 3] & 0x08:
        end = data.find(b"\x00", i)
        if end < 0:
            raise _FormatError(f"gzip header error in segment {segment}: unterminated file name")
        i = end + 1
    dec = zlib.decompressobj(-zlib.MAX_WBITS)
    while not dec.eof:
        if dec.unconsumed_tail:
            chunk = dec.unconsumed_tail
        elif i < len(data):
            chunk, i = data[i:i + _IN_CHUNK], min(i + _IN_CHUNK, len(data))
        else:
            raise _truncated("gzip", segment)
        try:
            out = dec.decompress(chunk, _OUT_CHUNK)
        except zlib.error as exc:
            raise _FormatError(f"gzip uncompression error in segment {segment}: {exc}") from None
        if out:
            yield out
    end = i - len(dec.unused_data) + 8  # at the end, unconsumed_tail repeats unused_data
    if end > len(data):
        raise _truncated("gzip", segment)
    return end


def _xz_supported(data: bytes, pos: int, segment: int) -> None:
    """Refuse what the kernel's xz_dec (lib/xz, Linux 6.1, CONFIG_XZ_DEC_X86 only) refuses."""
    check = data[pos + 7] if len(data) > pos + 7 else 0
    if check > 1:
        raise _FormatError(f"xz check type {check} in segment {segment}: the kernel's xz decoder supports only "
                           "none and crc32 (\"Input was encoded with settings that are not supported by this "
                           "XZ decoder\"); build with xz --check=crc32")
    head = data[pos + 12:pos + 12 + 1024]  # the first block header
    if len(head) < 2 or head[0] == 0:
        return
    flags, i = head[1], 2
    if flags & 0x3E:
        raise _FormatError(f"xz block flags {flags:#x} in segment {segment}: the kernel's xz decoder supports "
                           "at most two filters")
    for present in (flags & 0x40, flags & 0x80):  # compressed and uncompressed sizes, as varints
        while present and i < len(head) and head[i] & 0x80:
            i += 1
        i += 1 if present else 0
    filters = []
    for _ in range((flags & 0x03) + 1):
        if i + 2 > len(head):
            return
        filters.append(head[i])
        i += 2 + head[i + 1]
    allowed = [[0x21], [0x04, 0x21]]  # LZMA2, or x86 BCJ then LZMA2
    if filters not in allowed:
        raise _FormatError(f"xz filters {[hex(f) for f in filters]} in segment {segment}: the kernel's xz decoder "
                           "takes only LZMA2, optionally after the x86 BCJ filter")


def _buffered(kind: str, dec: lzma.LZMADecompressor | bz2.BZ2Decompressor,
              data: bytes, pos: int, segment: int) -> Iterator[bytes]:
    # lzma/bz2 decompressors keep unread input inside; needs_input says when to feed more.
    i, idle = pos, 0
    while not dec.eof:
        chunk = b""
        if dec.needs_input:
            if i >= len(data):
                raise _truncated(kind, segment)
            chunk, i = data[i:i + _IN_CHUNK], min(i + _IN_CHUNK, len(data))
        out = dec.decompress(chunk, _OUT_CHUNK)
        idle = 0 if out or chunk else idle + 1
        if idle > 3:
            raise _FormatError(f"{kind} decompressor stalled in segment {segment}")
        if out:
            yield out
    return i - len(dec.unused_data)


def _unxz(data: bytes, pos: int, segment: int) -> Iterator[bytes]:
    _xz_supported(data, pos, segment)
    return (yield from _buffered("xz", lzma.LZMADecompressor(lzma.FORMAT_XZ), data, pos, segment))


def _unlzma(data: bytes, pos: int, segment: int) -> Iterator[bytes]:
    return (yield from _buffered("lzma", lzma.LZMADecompressor(lzma.FORMAT_ALONE), data, pos, segment))


def _bunzip2(data: bytes, pos: int, segment: int) -> Iterator[bytes]:
    return (yield from _buffered("bzip2", bz2.BZ2Decompressor(), data, pos, segment))


def _zstd_frame_end(data: bytes, pos: int, segment: int) -> int:
    """End offset of the zstd frame at pos, found by walking block headers (no decompression)."""
    n = len(data)
    if pos + 6 > n:
        raise _truncated("zstd", segment)
    fhd = data[pos + 4]
    if fhd & 0x08:
        raise _FormatError(f"corrupt zstd frame header in segment {segment}")
    single = (fhd >> 5) & 1
    fcs_size = (single, 2, 4, 8)[fhd >> 6]
    i = pos + 5 + (1 - single) + (0, 1, 2, 4)[fhd & 3] + fcs_size
    last = 0
    while not last:
        if i + 3 > n:
            raise _truncated("zstd", segment)
        header = int.from_bytes(data[i:i + 3], "little")
        last, kind, size = header & 1, (header >> 1) & 3, header >> 3
        if kind == 3:
            raise _FormatError(f"corrupt zstd block in segment {segment}")
        i += 3 + (1 if kind == 1 else size)  # an RLE block stores one byte
    i += 4 if fhd & 0x04 else 0  # content checksum
    if i > n:
        raise _truncated("zstd", segment)
    return i


def _unzstd(data: bytes, pos: int, segment: int) -> Iterator[bytes]:
    # One frame per segment, as the kernel's unzstd stops when a frame ends. The frame is delimited first
    # because zstandard's decompressobj has no output cap, while stream_reader.read(n) has one.
    try:
        import zstandard
    except ImportError as exc:
        raise _FormatError(f"zstd not supported: {exc}") from None
    end = _zstd_frame_end(data, pos, segment)
    reader = zstandard.ZstdDecompressor().stream_reader(memoryview(data)[pos:end], read_across_frames=False)
    with reader:
        while out := reader.read(_OUT_CHUNK):
            yield out
    return end


_LZ4_MAGIC = b"\x02\x21\x4c\x18"
_LZ4_BLOCK = 8 << 20


def _unlz4(data: bytes, pos: int, segment: int) -> Iterator[bytes]:
    # Legacy format as lib/decompress_unlz4.c reads it: magic, then [LE32 size][block] with up to 8 MiB out per
    # block. There is no end marker: the stream runs to the end of the image, a zero size word (padding) or
    # fewer than 4 bytes left. A segment right after it, with no zero padding between, is read as one more
    # block and fails ("Decoding failed"), as it does in the kernel (checked in QEMU: lz4-then-gzip).
    try:
        from lz4 import block
    except ImportError as exc:
        raise _FormatError(f"lz4 not supported: {exc}") from None
    i = pos + 4
    while len(data) - i >= 4:
        word = data[i:i + 4]
        if word == _LZ4_MAGIC:  # concatenated lz4 -l streams, skipped by the kernel too
            i += 4
            continue
        size = int.from_bytes(word, "little")
        if size == 0:
            break
        i += 4
        if size > len(data) - i:
            raise _FormatError(f"lz4: data corrupted in segment {segment} (a block of {size} bytes at offset "
                               f"{i - 4} runs past the image; the kernel's unlz4 fails there)")
        try:
            out = block.decompress(data[i:i + size], uncompressed_size=_LZ4_BLOCK)
        except block.LZ4BlockError:
            raise _FormatError(f"lz4: decoding failed in segment {segment} at offset {i - 4} (the kernel's unlz4 "
                               "reads on until zero padding or the end of the image)") from None
        i += size
        yield out
    return i


_LZO_MAGIC = b"\x89LZO\x00\r\n\x1a\n"
_LZO_BLOCK = 256 * 1024


def _lzo_header_end(data: bytes, pos: int, segment: int) -> int:
    """Where the blocks start, as lib/decompress_unlzo.c's parse_header() reads the lzop header."""
    if len(data) - pos < 35 or not data.startswith(_LZO_MAGIC, pos):
        raise _FormatError(f"lzo: invalid header in segment {segment}")
    version = int.from_bytes(data[pos + 9:pos + 11], "big")
    i = pos + 9 + 7 + (1 if version >= 0x0940 else 0)
    i += 8 if int.from_bytes(data[i:i + 4], "big") & 0x800 else 4  # flags, and the filter when flagged
    i += 8 + (4 if version >= 0x0940 else 0)  # mode, mtime (and its high half)
    if i >= len(data):
        raise _FormatError(f"lzo: invalid header in segment {segment}")
    return i + 1 + data[i] + 4  # the name, then the header checksum (not verified)


def _unlzo(data: bytes, pos: int, segment: int) -> Iterator[bytes]:
    # Each block: BE32 output size (0 ends the stream), BE32 input size, one 4-byte checksum, skipped unread.
    i = _lzo_header_end(data, pos, segment)
    while True:
        if i + 4 > len(data):
            raise _truncated("lzo", segment)
        dst_len = int.from_bytes(data[i:i + 4], "big")
        if dst_len == 0:
            return i + 4
        if dst_len > _LZO_BLOCK:
            raise _FormatError(f"lzo: dest len longer than block size in segment {segment}")
        src_len = int.from_bytes(data[i + 4:i + 8], "big")
        block = data[i + 12:i + 12 + src_len]
        if src_len == 0 or src_len > dst_len or len(block) < src_len:
            raise _FormatError(f"lzo: file corrupted in segment {segment}")
        try:
            out = block if src_len == dst_len else lzo1x_decompress(block, dst_len)
        except LzoError as exc:
            raise _FormatError(f"lzo: compressed data violation in segment {segment}: {exc}") from None
        if len(out) != dst_len:
            raise _FormatError(f"lzo: compressed data violation in segment {segment}")
        i += 12 + src_len
        yield out


def _codec_errors() -> tuple[type[Exception], ...]:
    """Exceptions the decompression libraries raise on bad input."""
    errors: list[type[Exception]] = [zlib.error, lzma.LZMAError, OSError, EOFError]
    try:
        import zstandard
        from lz4 import block
    except ImportError:
        return tuple(errors)
    return (*errors, zstandard.ZstdError, block.LZ4BlockError)


_DECODERS: dict[str, _Decoder] = {
    "gzip": _gunzip, "zstd": _unzstd, "xz": _unxz, "lzma": _unlzma, "lz4": _unlz4, "bzip2": _bunzip2,
    "lzo": _unlzo,
}


class _ImageReader:
    """Walks the segments of one image as unpack_to_rootfs() does, feeding cpio data into a shared _Tree."""

    def __init__(self, data: bytes, max_output: int, inventory: bool):
        self.data = data
        self.max_output = max_output
        self.produced = 0
        self.tree = _Tree(inventory)
        self.segments: list[str] = []
        self.error: str | None = None

    def run(self) -> None:
        data, pos = self.data, 0
        if not data:
            raise _FormatError("not an initramfs: empty image")
        while pos < len(data):
            match = _NONZERO.search(data, pos)
            if match is None:
                break  # trailing padding
            pos = match.start()
            pos = self._segment(pos)

    def _segment(self, pos: int) -> int:
        data = self.data
        if data[pos] == 0x30:  # the kernel's test for an uncompressed archive, which must be 4-aligned
            if pos % 4:
                raise _FormatError(f"broken padding: cpio archive at unaligned offset {pos} (the kernel takes it "
                                   "for a compressed stream: \"invalid magic at start of compressed archive\")")
            return self._plain(pos)
        kind = detect_compression(data[pos:pos + 6])
        decoder = _DECODERS.get(kind or "")
        if decoder is None:
            raise _FormatError(self._unknown(pos))
        self.segments.append(kind or "")
        return self._compressed(decoder, pos)

    def _plain(self, pos: int) -> int:
        # The kernel checks nothing at the end of uncompressed data: an archive without TRAILER!!! or cut
        # short keeps every entry written so far (a file cut in its data keeps its size, zero-filled).
        stream = _CpioStream(self.tree, len(self.segments) + 1, offset=pos, plain=True)
        end = stream.feed(self.data, pos)
        self.segments += ["cpio"] * max(1, stream.archives)
        if end == len(self.data):
            stream.truncated()
        return end

    def _compressed(self, decoder: _Decoder, pos: int) -> int:
        segment = len(self.segments)
        stream = _CpioStream(self.tree, segment, first=pos == 0 or not _NONZERO.search(self.data, 0, pos))
        gen = decoder(self.data, pos, segment)
        while True:
            try:
                chunk = next(gen)
            except StopIteration as stop:
                end: int = stop.value
                break
            except _codec_errors() as exc:
                raise _FormatError(f"corrupt {self.segments[-1]} stream in segment {segment}: {exc}") from None
            self.produced += len(chunk)
            if self.produced > self.max_output:
                raise _FormatError(f"decompressed output exceeds {self.max_output} bytes in segment {segment}: "
                                   "more than this reader follows (the kernel's only bound is RAM)")
            stream.feed(chunk)
        if not stream.between_entries():
            raise _FormatError(f"junk at the end of compressed archive in segment {segment}: the stream ends "
                               "inside a cpio entry (the kernel stops unpacking)")
        return end

    def _unknown(self, pos: int) -> str:
        head = self.data[pos:pos + 4]
        for magic, message in _UNSUPPORTED:
            if head.startswith(magic):
                return message
        if len(head) == 4 and head[1:] == b"\x2a\x4d\x18" and head[0] & 0xF0 == 0x50:
            return f"zstd skippable frame at offset {pos} (pzstd output?): the kernel cannot unpack it"
        if pos == 0:
            return f"not an initramfs: unknown magic {head.hex()} at offset 0"
        return f"junk after segment {len(self.segments)}: unknown magic {head.hex()} at offset {pos}"

    def result(self) -> InitramfsContent:
        files = self.tree.members()
        if self.error is None and any(self.tree.inodes[n].data is None for n in files):
            self.error = "a modprobe file shares its data with a large hard-linked file this reader did not keep"
        inventory = {n: (i.size, i.digest or "") for n, i in sorted(self.tree.inodes.items())}
        return InitramfsContent(
            segments=tuple(self.segments),
            member_count=self.tree.count,
            config_files={name: m.data.decode("utf-8", errors="replace") for name, m in files.items()},
            error=self.error,
            members=tuple(files.values()),
            modules=tuple(sorted(set(self.tree.modules.values()))),
            inventory=inventory if self.tree.inventory else {},
        )

