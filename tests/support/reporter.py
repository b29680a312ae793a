"""A stand-in for the part of pytest's terminalreporter that the terminal reports use."""

from __future__ import annotations


class Reporter:
    def __init__(self, isatty: bool = False) -> None:
        self.isatty = isatty
        self.text = ""

    def write(self, text: str) -> None:
        self.text += text

    def write_line(self, text: str) -> None:
        self.text += text + "\n"
