from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xenpass.parse.bdf import Bdf
from xenpass.parse.hide import HideSlot, HideValue, format_hide, parse_hide, slot_for

RANGE_ERROR = "xen-pciback fails to load with EINVAL"


def test_domain_example() -> None:
    value = parse_hide("(0000:01:00.0)(02:00.0)")
    assert value == HideValue("(0000:01:00.0)(02:00.0)", (HideSlot(0, 1, 0, 0), HideSlot(0, 2, 0, 0)), None)


def test_seed_line() -> None:
    # node03: `xen_pciback hide=(01:00.0)` in /etc/modules
    assert parse_hide("(01:00.0)").slots == (HideSlot(0, 1, 0, 0),)


@pytest.mark.parametrize("text", ["(01:00.0) (02:00.0)", " (01:00.0)\t(02:00.0) ", "(01:00.0)\n(02:00.0)\n"])
def test_whitespace_around_groups_is_accepted(text: str) -> None:
    # " (%x:%x.%x) %n": format whitespace matches any run of input whitespace
    assert parse_hide(text) == HideValue(text, (HideSlot(0, 1, 0, 0), HideSlot(0, 2, 0, 0)), None)


def test_domain_doc_error_message() -> None:
    value = parse_hide("(0000:82.0.0)")
    assert value.slots == ()
    assert value.error == 'Error parsing pci_devs_to_hide at "(0000:82.0.0)"'


def test_error_reports_the_rest_and_keeps_earlier_slots() -> None:
    value = parse_hide("(01:00.0)(02:00)(03:00.0)")
    assert value.slots == (HideSlot(0, 1, 0, 0),)
    assert value.error == 'Error parsing pci_devs_to_hide at "(02:00)(03:00.0)"'


@pytest.mark.parametrize(
    ("text", "slot"),
    [
        ("(01:00.*)", HideSlot(0, 1, 0, None)),
        ("(01:*.*)", HideSlot(0, 1, None, None)),
        ("(0000:01:00.*)", HideSlot(0, 1, 0, None)),
        ("(0001:01:*.*)", HideSlot(1, 1, None, None)),
        ("(0X1:0x2.3)", HideSlot(0, 1, 2, 3)),  # simple_strtoul base 16 takes a 0x prefix
        ("( 1: 2. 3)", HideSlot(0, 1, 2, 3)),  # %x skips whitespace before the number
        ("(0000:01:ffffffff.0)", HideSlot(0, 1, None, 0)),  # int -1: every slot, function 0
        ("(01:00.80000000)", HideSlot(0, 1, 0, None)),  # negative int: every function
        ("(01:00.100000000)", HideSlot(0, 1, 0, 0)),  # wraps modulo 2**32
    ],
)
def test_kernel_sscanf_quirks(text: str, slot: HideSlot) -> None:
    assert parse_hide(text) == HideValue(text, (slot,), None)


@pytest.mark.parametrize("text", ["(01:00.0 )", "(01 :00.0)", "(01:00.0", "01:00.0", "(01:00.0)x", "  ",
                                  "(1:2:3:4.5)", "(01:*.0)", "(*:00.0)", "[01:00.0]"])
def test_parse_errors(text: str) -> None:
    value = parse_hide(text)
    assert value.error is not None and value.error.startswith('Error parsing pci_devs_to_hide at "')


@pytest.mark.parametrize("text", ["(01:00.8)", "(01:20.0)", "(0000:100:00.0)", "(10000:00:00.0)",
                                  "(ffffffff:00:00.0)", "(01:00.0)(01:00.8)"])
def test_range_errors(text: str) -> None:
    value = parse_hide(text)
    assert value.error is not None and RANGE_ERROR in value.error
    assert all(s.func != 8 for s in value.slots)


def test_func_8_and_slot_0x20_name_the_group() -> None:
    assert "'(01:00.8)'" in (parse_hide("(01:00.8)").error or "")
    assert "'(0000:01:20.0)'" in (parse_hide(" (0000:01:20.0) ").error or "")


def test_empty_value_is_no_error() -> None:
    assert parse_hide("") == HideValue("", (), None)


def test_nul_ends_the_c_string() -> None:
    assert parse_hide("(01:00.0)\0junk").error is None


def test_str_forms() -> None:
    assert str(HideSlot(0, 1, 0, 0)) == "(0000:01:00.0)"
    assert str(HideSlot(0, 1, 0, None)) == "(0000:01:00.*)"
    assert str(HideSlot(0, 1, None, None)) == "(0000:01:*.*)"


def test_format_hide() -> None:
    assert format_hide([HideSlot(0, 1, 0, 0), HideSlot(0, 2, 0, 0)]) == "(0000:01:00.0)(0000:02:00.0)"
    assert format_hide([]) == ""


def test_matches_and_covering_slot_walks_bridges() -> None:
    device, bridge, root = Bdf(0, 3, 0, 0), Bdf(0, 2, 0, 0), Bdf(0, 0, 0x1C, 4)
    value = parse_hide("(05:00.0)(02:00.*)")
    assert value.covering_slot([device, bridge, root]) == HideSlot(0, 2, 0, None)
    assert value.covering_slot([device]) is None
    assert HideSlot(0, 0, None, None).matches(root)
    assert not HideSlot(1, 0, None, None).matches(root)
    assert slot_for(device) == HideSlot(0, 3, 0, 0)


slots = st.builds(
    HideSlot,
    st.integers(0, 0xFFFF),
    st.integers(0, 0xFF),
    st.none() | st.integers(0, 0x1F),
    st.none() | st.integers(0, 7),
)


@settings(max_examples=150)
@given(st.lists(slots, max_size=6))
def test_round_trip(generated: list[HideSlot]) -> None:
    value = parse_hide(format_hide(generated))
    assert value.error is None
    assert value.slots == tuple(generated)


@settings(max_examples=150)
@given(st.lists(slots, min_size=1, max_size=4), st.lists(st.sampled_from([" ", "\t", "\n"]), max_size=3))
def test_round_trip_with_whitespace(generated: list[HideSlot], blank: list[str]) -> None:
    sep = "".join(blank)
    assert parse_hide(sep + sep.join(str(s) for s in generated) + sep).slots == tuple(generated)


@settings(max_examples=300)
@given(st.text())
def test_never_raises(text: str) -> None:
    value = parse_hide(text)
    assert value.raw == text


@settings(max_examples=300)
@given(st.text(alphabet="()0123456789abcdefxX:.* \t"))
def test_near_grammar_yields_only_valid_slots(text: str) -> None:
    value = parse_hide(text)
    for slot in value.slots:
        assert 0 <= slot.domain <= 0xFFFF and 0 <= slot.bus <= 0xFF
        assert slot.slot is None or 0 <= slot.slot <= 0x1F
        assert slot.func is None or 0 <= slot.func <= 7
    assert value.error is not None or not text.strip(" \t\n\v\f\r") or value.slots
