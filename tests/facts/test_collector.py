"""The collector's framing: exact payloads, truncation and garbage never crash, one command per host."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from xenpass.facts.collector import parse_output, render_script

T = "abc123"


def frame(kind: str, name: str, payload: str, rc: int = 0) -> str:
    return f"==XP:{T}:BEGIN {kind} {name}\n{payload}\n==XP:{T}:END {rc}\n"


def test_payloads_are_exact_including_missing_final_newline():
    out = frame("file", "/etc/modules", "xen_pciback hide=(01:00.0)\n") + frame("file", "/etc/x", "no newline")
    facts = parse_output(out, T, "h")
    assert facts.file("/etc/modules") == "xen_pciback hide=(01:00.0)\n"
    assert facts.file("/etc/x") == "no newline"


def test_empty_payload_and_command_exit_code():
    out = frame("cmd", "xl pci-assignable-list", "", rc=0) + frame("cmd", "lspci -k", "boom", rc=127)
    facts = parse_output(out, T, "h")
    assert facts.output("xl pci-assignable-list") == ""
    assert facts.commands["lspci -k"].rc == 127


def test_a_payload_that_looks_like_a_frame_of_another_run_is_content():
    fake = "==XP:zzz:END 0\n==XP:zzz:BEGIN file /etc/shadow"
    facts = parse_output(frame("file", "/etc/modules", fake), T, "h")
    assert facts.file("/etc/modules") == fake


def batch(files: dict[str, str], rc: int = 0) -> str:
    """What `cat SEP f1 SEP f2 SEP` prints in collect.sh: names, then each file followed by the separator."""
    sep = f"\n==XP:{T}:NEXT"
    return frame("files", "", "\n".join(files) + sep + "".join(c + sep for c in files.values()), rc).replace(
        "BEGIN files \n", "BEGIN files\n")


def test_files_read_by_one_cat_keep_every_byte():
    files = {"/etc/modules": "xen-pciback\n", "/etc/modprobe.d/a.conf": "no newline\0\udcff<b>",
             "/etc/xen/empty.cfg": "", "/etc/fake": f"==XP:zzz:NEXT\n==XP:{T}:NEX"}
    facts = parse_output(batch(files), T, "h")
    assert {path: facts.file(path) for path in files} == files
    assert all(facts.files[path].sha256 for path in files)


def test_a_batch_cat_could_not_finish_is_unknown_for_every_file():
    facts = parse_output(batch({"/etc/modules": "xen-pciback\n", "/etc/modprobe.d/a.conf": "blacklist x\n"}, rc=1),
                         T, "h")
    assert facts.file("/etc/modules") is None and facts.files["/etc/modules"].unreadable
    assert facts.files["/etc/modprobe.d/a.conf"].unreadable


def test_truncated_output_is_flagged_not_fatal():
    out = frame("file", "/etc/modules", "a\n")[:-20]
    facts = parse_output(out, T, "h")
    assert facts.truncated


def test_stat_lines_fill_metadata_and_boot_listing():
    out = frame("cmd", "stat", "1760000000 42 644 0 0 /etc/modules\n1760000100 9 600 0 0 /boot/initramfs-lts") + \
        frame("file", "/etc/modules", "x\n")
    facts = parse_output(out, T, "h")
    assert facts.files["/etc/modules"].mtime == 1760000000
    assert facts.boot["/boot/initramfs-lts"].size == 9


def test_pci_and_flags():
    out = f"==XP:{T}:FACT pci 0000:01:00.0|0x1000|0x0072|0x010700|pci:v00001000d00000072|pciback|/sys/devices/x\n" \
          f"==XP:{T}:FACT release 6.6.31-0-lts\n==XP:{T}:FACT runlevel boot/modules\n"
    facts = parse_output(out, T, "h")
    assert facts.pci["0000:01:00.0"].driver == "pciback"
    assert facts.release == "6.6.31-0-lts"
    assert facts.flag_values("runlevel") == ["boot/modules"]


def test_script_quotes_extra_paths():
    script = render_script(T, ["/etc/xen/it's here.cfg"])
    assert "EXTRA_FILES='/etc/xen/it'\"'\"'s here.cfg'" in script


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(st.text(), st.sampled_from([f"==XP:{T}:BEGIN file /x\n", f"\n==XP:{T}:END 0\n",
                                                       f"==XP:{T}:FACT pci a|b\n", f"==XP:{T}:BEGIN base64 /b\n"]))))
def test_parse_output_never_raises(chunks):
    parse_output("".join(chunks), T, "h")


def test_comment_lines_are_not_sent_and_no_here_document_loses_a_line():
    """render_script drops lines starting with `#`: safe only while no here-document body holds one."""
    import re
    from importlib import resources

    source = resources.files("xenpass.facts").joinpath("collect.sh").read_text()
    for marker in re.findall(r"<<-?'?(\w+)", source):
        body = source.split(f"<<{marker}\n", 1)[1].split(f"\n{marker}\n", 1)[0]
        assert not [line for line in body.splitlines() if line.lstrip().startswith("#")], marker
    script = render_script(T)
    assert "# xenpass collector" not in script and len(script) < 0.8 * len(source)
