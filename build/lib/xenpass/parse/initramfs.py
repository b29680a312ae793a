"""Find the modprobe configuration embedded in an initramfs image.

The image is read the way the kernel's unpacker (init/initramfs.c, ``unpack_to_rootfs``) reads it: a
sequence of segments, each an uncompressed newc cpio archive or one compressed stream whose output is a
series of newc archives, with NUL padding between them. Later members override earlier ones. Only the
modprobe-related files are kept in memory; decompressed output is streamed and capped.
"""

from __future__ import annotations

import bz2
import lzma
import posixpath
import re
import stat
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

__all__ = ["InitramfsContent", "InitramfsMember", "detect_compression", "read_initramfs"]


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
)
# Formats the kernel (or this reader) does not unpack, named so the error says why.
_UNSUPPORTED: tuple[tuple[bytes, str], ...] = (
    (b"\x04\x22\x4d\x18", "lz4 not supported: frame format (magic 04224d18); the kernel unpacks only the "
                          "legacy format (lz4 -l)"),
    (b"\x89LZO", "lzo not supported: no lzo decompressor available"),
)

_MODPROBE_DIRS = ("etc/modprobe.d/", "run/modprobe.d/", "lib/modprobe.d/", "usr/lib/modprobe.d/",
                  "usr/local/lib/modprobe.d/")
_WANTED_FILES = frozenset({"etc/modprobe.conf", "conf/modules", "etc/modules"})

_IN_CHUNK = 1 << 20  # compressed bytes fed per call
_OUT_CHUNK = 1 << 20  # decompressed bytes produced per call: bounds memory against bombs
_HEADER_LEN = 110
_PATH_MAX = 4096  # the kernel skips entries whose name is longer
_LINK_KEEP = 1 << 20  # hard-linked files up to this size keep data, as a wanted link may follow


def detect_compression(data: bytes) -> str | None:
    """Name the segment type starting at data[0] by its magic, or None."""
    head = bytes(data[:6])
    return next((kind for magic, kind in _MAGICS if head.startswith(magic)), None)


def read_initramfs(data: bytes, max_output: int = 512 * 2**20) -> InitramfsContent:
    """Read every segment of an initramfs image; never raises, problems go in ``error``."""
    reader = _ImageReader(bytes(data), max_output)
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


def _normalise(raw: bytes) -> str:
    # The kernel extracts relative to "/", where ".." stays at the root.
    name = raw.decode("utf-8", errors="replace")
    return posixpath.normpath("/" + name).lstrip("/")


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


class _Tree:
    """The rootfs as far as it matters: wanted regular files, plus hard-link bookkeeping."""

    def __init__(self) -> None:
        self.files: dict[str, InitramfsMember] = {}
        self.count = 0
        self.links: dict[tuple[int, int, int, int], list[str]] = {}
        self.link_data: dict[tuple[int, int, int, int], bytes] = {}
        self.crc_format = False  # a 070702 archive was seen
        self.modules: dict[str, str] = {}  # path -> file name, for every regular `*.ko*` member

    def begin(self, entry: _Entry) -> bool:
        """Account for an entry; return True when its data must be kept."""
        self.count += 1
        base = entry.name.rsplit("/", 1)[-1]
        if stat.S_ISREG(entry.mode) and ".ko" in base:
            self.modules[entry.name] = base
        else:
            self.modules.pop(entry.name, None)
        if not stat.S_ISREG(entry.mode):
            self.files.pop(entry.name, None)  # the kernel replaces a file by a dir/symlink of the same name
            return False
        return _is_wanted(entry.name) or (entry.nlink >= 2 and entry.size <= _LINK_KEEP)

    def finish(self, entry: _Entry, data: bytes | None) -> None:
        body = data or b""
        if stat.S_ISREG(entry.mode) and entry.nlink >= 2:
            body = self._link(entry, body)
        if stat.S_ISREG(entry.mode) and _is_wanted(entry.name):
            self.files[entry.name] = InitramfsMember(entry.name, entry.mode, entry.mtime, body)

    def trailer(self) -> None:
        self.links.clear()  # the kernel forgets links at each TRAILER!!!
        self.link_data.clear()

    def _link(self, entry: _Entry, body: bytes) -> bytes:
        # newc writers put the data on one link only (GNU cpio: the last); all names share the inode.
        key = (entry.major, entry.minor, entry.ino, stat.S_IFMT(entry.mode))
        names = self.links.setdefault(key, [])
        if entry.size or not names:
            self.link_data[key] = body
        names.append(entry.name)
        shared = self.link_data[key]
        for name in names:
            old = self.files.get(name)
            if old is not None:
                self.files[name] = InitramfsMember(old.name, old.mode, old.mtime, shared)
        return shared


_BOUNDARY, _HEADER, _NAME, _BODY, _SKIP = range(5)
_NONZERO = re.compile(rb"[^\x00]")


class _CpioStream:
    """Incremental newc parser fed with chunks; mirrors the kernel's state machine."""

    def __init__(self, tree: _Tree, segment: int, offset: int = 0, stop_at_boundary: bool = False):
        self.tree = tree
        self.segment = segment
        self.offset = offset  # stream offset of the next byte, for the 4-byte alignment rules
        self.stop_at_boundary = stop_at_boundary  # uncompressed: hand non-cpio bytes back to the image loop
        self.state = _BOUNDARY
        self.pending = bytearray()
        self.need = 0
        self.entry: _Entry | None = None
        self.body: bytearray | None = None
        self.left = 0
        self.skip = 0
        self.in_archive = False
        self.stopped = False

    def complete(self) -> bool:
        """True when the stream ended cleanly after a TRAILER!!!."""
        return self.state == _BOUNDARY and not self.in_archive

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

    def _boundary(self, buf: bytes, i: int, n: int) -> int:
        match = _NONZERO.search(buf, i, n)
        if match is None:
            return n
        j = match.start()
        offset = self.offset + j - i
        if buf[j] != 0x30:  # '0' starts the next header
            if self.stop_at_boundary:
                self.stopped = True
                return j
            raise _FormatError(f"junk in compressed archive in segment {self.segment} at offset {offset}")
        if offset % 4:
            raise _FormatError(f"broken padding in segment {self.segment}: cpio header at offset {offset}")
        self.state, self.need, self.in_archive = _HEADER, _HEADER_LEN, True
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
            raise _FormatError(f"old cpio format 070707 in segment {self.segment}: the kernel needs newc (070701)")
        if magic not in (b"070701", b"070702"):
            raise _FormatError(f"no cpio magic in segment {self.segment} (found {magic!r})")
        try:
            fields = [int(raw[k:k + 8], 16) for k in range(6, _HEADER_LEN, 8)]
        except ValueError:
            raise _FormatError(f"bad cpio header in segment {self.segment}") from None
        ino, mode, _uid, _gid, nlink, mtime, size, major, minor, _rmaj, _rmin, namesize, _check = fields
        self.entry = _Entry("", mode, mtime, nlink, ino, major, minor, size)
        name_len = _pad4(_HEADER_LEN + namesize) - _HEADER_LEN
        if namesize == 0 or namesize > _PATH_MAX:  # the kernel ignores such entries
            self.state, self.skip = _SKIP, name_len + _pad4(size)
        else:
            self.state, self.need = _NAME, name_len
        if magic == b"070702":
            self.tree.crc_format = True

    def _on_name(self, raw: bytes) -> None:
        entry = self.entry
        assert entry is not None
        raw_name = raw.split(b"\x00", 1)[0]
        self.state, self.left, self.skip = _BODY, entry.size, _pad4(entry.size) - entry.size
        if raw_name == b"TRAILER!!!":
            self.entry, self.body = None, None
            self.tree.trailer()
        else:
            entry.name = _normalise(raw_name)
            self.body = bytearray() if self.tree.begin(entry) else None
        if self.left == 0:  # settle now: an archive may end right here, with no byte left to trigger it
            self._end_body()

    def _body(self, buf: bytes, i: int, n: int) -> int:
        take = min(self.left, n - i)
        if self.body is not None:
            self.body += buf[i:i + take]
        self.left -= take
        if self.left == 0:
            self._end_body()
        return i + take

    def _end_body(self) -> None:
        if self.entry is None:
            self.in_archive = False  # that was the trailer
        else:
            self.tree.finish(self.entry, None if self.body is None else bytes(self.body))
        self.entry, self.body = None, None
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
        # Uncompressed: one archive per segment, the image loop finds the next one.
        self.stopped = self.stop_at_boundary and not self.in_archive


# --- decompressors: generators yielding output chunks and returning the end offset of their input ---

_Decoder = Callable[[bytes, int, int], Iterator[bytes]]


def _truncated(kind: str, segment: int) -> _FormatError:
    return _FormatError(f"truncated {kind} stream in segment {segment}")


def _gunzip(data: bytes, pos: int, segment: int) -> Iterator[bytes]:
    dec = zlib.decompressobj(16 + zlib.MAX_WBITS)  # one gzip member, like the kernel
    i = pos
    while not dec.eof:
        if dec.unconsumed_tail:
            chunk = dec.unconsumed_tail
        elif i < len(data):
            chunk, i = data[i:i + _IN_CHUNK], min(i + _IN_CHUNK, len(data))
        else:
            raise _truncated("gzip", segment)
        out = dec.decompress(chunk, _OUT_CHUNK)
        if out:
            yield out
    return i - len(dec.unused_data) - len(dec.unconsumed_tail)


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
_LZ4_BOUND = _LZ4_BLOCK + _LZ4_BLOCK // 255 + 16  # LZ4_compressBound(8 MiB)


def _unlz4(data: bytes, pos: int, segment: int) -> Iterator[bytes]:
    # Legacy format: magic, then [LE32 size][block] with 8 MiB per block; no end marker, so the stream
    # ends at EOF, at padding, at an impossible size, or after a short (hence last) block.
    try:
        from lz4 import block
    except ImportError as exc:
        raise _FormatError(f"lz4 not supported: {exc}") from None
    i, last_full = pos + 4, True
    while i + 4 <= len(data):
        word = data[i:i + 4]
        if word == _LZ4_MAGIC:  # concatenated lz4 -l streams, skipped by the kernel too
            i, last_full = i + 4, True
            continue
        size = int.from_bytes(word, "little")
        if not last_full or size == 0 or size > _LZ4_BOUND:
            break
        if i + 4 + size > len(data):
            if detect_compression(data[i:i + 6]):  # a full last block followed by a short next segment
                break
            raise _truncated("lz4", segment)
        try:
            out = block.decompress(data[i + 4:i + 4 + size], uncompressed_size=_LZ4_BLOCK)
        except block.LZ4BlockError:
            if detect_compression(data[i:i + 6]):  # likewise, with a longer next segment
                break
            raise _FormatError(f"corrupt lz4 block in segment {segment} at offset {i}") from None
        i, last_full = i + 4 + size, len(out) == _LZ4_BLOCK
        yield out
    return i


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
}


class _ImageReader:
    """Walks the segments of one image, feeding cpio data into a shared _Tree."""

    def __init__(self, data: bytes, max_output: int):
        self.data = data
        self.max_output = max_output
        self.produced = 0
        self.tree = _Tree()
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
        if self.tree.crc_format:
            raise _FormatError("cpio format 070702 (newc with crc) found: the kernel unpacks only 070701")

    def _segment(self, pos: int) -> int:
        data = self.data
        if data[pos] == 0x30:  # the kernel's test for an uncompressed archive, which must be 4-aligned
            if pos % 4:
                raise _FormatError(f"broken padding: cpio archive at unaligned offset {pos}")
            return self._plain(pos)
        kind = detect_compression(data[pos:pos + 6])
        decoder = _DECODERS.get(kind or "")
        if decoder is None:
            raise _FormatError(self._unknown(pos))
        self.segments.append(kind or "")
        return self._compressed(decoder, pos)

    def _plain(self, pos: int) -> int:
        self.segments.append("cpio")
        stream = _CpioStream(self.tree, len(self.segments), offset=pos, stop_at_boundary=True)
        end = stream.feed(self.data, pos)
        if not stream.complete():
            raise _FormatError(f"truncated cpio archive in segment {len(self.segments)}")
        return end

    def _compressed(self, decoder: _Decoder, pos: int) -> int:
        segment = len(self.segments)
        stream = _CpioStream(self.tree, segment)
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
                raise _FormatError(f"decompressed output exceeds {self.max_output} bytes in segment {segment}")
            stream.feed(chunk)
        if not stream.complete():
            raise _FormatError(f"truncated cpio archive in segment {segment}")
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
        files = dict(sorted(self.tree.files.items()))
        return InitramfsContent(
            segments=tuple(self.segments),
            member_count=self.tree.count,
            config_files={name: m.data.decode("utf-8", errors="replace") for name, m in files.items()},
            error=self.error,
            members=tuple(files.values()),
            modules=tuple(sorted(set(self.tree.modules.values()))),
        )

