"""LZO1X decompression, translated from the kernel's lib/lzo/lzo1x_decompress_safe.c (Linux 6.1).

Pure Python so that lzo initramfs images (which the kernel unpacks: CONFIG_RD_LZO=y on Debian) need no extra
library; each call handles one lzop block of at most 256 KiB.
"""

from __future__ import annotations

__all__ = ["LzoError", "lzo1x_decompress"]

_M2_MAX_OFFSET = 0x0800
_MIN_ZERO_RUN = 4
_LITERAL, _COPY, _MATCH_NEXT = 1, 2, 3


class LzoError(ValueError):
    """The block is not valid LZO1X data (the kernel's lzo1x_decompress_safe fails on it too)."""


class _Block:
    def __init__(self, src: bytes, limit: int):
        self.src, self.ip, self.out, self.limit = src, 0, bytearray(), limit

    def need_in(self, count: int) -> None:
        if len(self.src) - self.ip < count:
            raise LzoError("input overrun")

    def need_out(self, count: int) -> None:
        if self.limit - len(self.out) < count:
            raise LzoError("output overrun")

    def byte(self) -> int:
        self.need_in(1)
        value = self.src[self.ip]
        self.ip += 1
        return value

    def le16(self) -> int:
        self.need_in(2)
        return self.src[self.ip] | self.src[self.ip + 1] << 8

    def long_count(self, base: int) -> int:
        """A length continued by zero bytes (255 each) and a final byte."""
        zeros = 0
        while self.byte() == 0:
            zeros += 1
        self.ip -= 1
        return zeros * 255 + base + self.byte()

    def literal(self, count: int) -> None:
        self.need_out(count)
        self.need_in(count)
        self.out += self.src[self.ip:self.ip + count]
        self.ip += count

    def copy(self, pos: int, count: int) -> None:
        if pos < 0:
            raise LzoError("lookbehind overrun")
        self.need_out(count)
        while count:  # the source may overlap what is being written: copy in growing runs
            take = min(count, len(self.out) - pos)
            self.out += self.out[pos:pos + take]
            pos, count = pos + take, count - take


def lzo1x_decompress(src: bytes, limit: int) -> bytes:
    """Decompress one LZO1X block producing at most `limit` bytes; raise LzoError as the kernel would fail."""
    b = _Block(src, limit)
    if len(src) < 3:
        raise LzoError("input overrun")
    version = 0
    if len(src) >= 5 and src[0] == 17:
        version, b.ip = src[1], 2
    state, nxt, pos, t, action = 0, 0, 0, 0, 0
    if src[b.ip] > 17:
        t = b.byte() - 17
        action, nxt = (_MATCH_NEXT, t) if t < 4 else (_LITERAL, 0)
    while True:
        if not action:
            t = b.byte()
            out_len = len(b.out)
            if t < 16 and state == 0:
                t = (b.long_count(15) if t == 0 else t) + 3
                action = _LITERAL
            elif t < 16 and state != 4:
                nxt = t & 3
                pos = out_len - 1 - (t >> 2) - (b.byte() << 2)
                b.copy(pos, 2)
                action = _MATCH_NEXT
            elif t < 16:
                nxt, pos, t = t & 3, out_len - (1 + _M2_MAX_OFFSET) - (t >> 2) - (b.byte() << 2), 3
                action = _COPY
            elif t >= 64:
                nxt, pos = t & 3, out_len - 1 - ((t >> 2) & 7) - (b.byte() << 3)
                t, action = (t >> 5) + 1, _COPY
            elif t >= 32:
                t = (t & 31) + 2
                if t == 2:
                    t = b.long_count(31) + 2
                word = b.le16()
                b.ip += 2
                nxt, pos, action = word & 3, out_len - 1 - (word >> 2), _COPY
            else:
                word = b.le16()
                if (word & 0xFFFC) == 0xFFFC and (t & 0xF8) == 0x18 and version:
                    b.need_in(3)
                    run = ((t & 7) | (src[b.ip + 2] << 3)) + _MIN_ZERO_RUN
                    b.need_out(run)
                    b.out += bytes(run)
                    nxt, action = word & 3, _MATCH_NEXT
                    b.ip += 3
                else:
                    pos = out_len - ((t & 8) << 11)
                    t = (t & 7) + 2
                    if t == 2:
                        t = b.long_count(7) + 2
                        word = b.le16()
                    b.ip += 2
                    pos, nxt = pos - (word >> 2), word & 3
                    if pos == out_len:  # the end-of-stream marker
                        if t != 3 or b.ip != len(src):
                            raise LzoError("bad end of stream" if t != 3 else "input not consumed")
                        return bytes(b.out)
                    pos, action = pos - 0x4000, _COPY
        if action == _LITERAL:
            b.need_in(t + 3)
            b.literal(t)
            state, action = 4, 0
            continue
        if action == _COPY:
            b.copy(pos, t)
        state = t = nxt
        b.need_in(t + 3)
        b.literal(t)
        action = 0
