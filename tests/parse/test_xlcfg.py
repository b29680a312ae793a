from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from xenpass.parse.bdf import Bdf
from xenpass.parse.xlcfg import PciSpec, format_pci_line, parse_pci_spec, parse_xl_cfg

SAS_VM = """# /etc/xen/sas-vm.cfg
name = "sas-vm"
type = 'hvm'
memory = 4096; vcpus = 2
disk = [ 'phy:/dev/vg0/sas-vm,xvda,w',
         'file:/srv/iso/alpine.iso,hdc:cdrom,r', ]
vif = [ 'bridge=br0' ]
# the seed's line
pci = [ '01:00.0' ]
on_crash = "restart"
"""


def test_seed_config() -> None:
    cfg = parse_xl_cfg(SAS_VM)
    assert cfg.errors == ()
    assert cfg.name == "sas-vm"
    assert cfg.pci == (PciSpec("01:00.0", Bdf(0, 1, 0, 0), False, None, {}, None),)
    assert cfg.pci_raw == "pci = [ '01:00.0' ]"


def test_no_pci_key() -> None:
    cfg = parse_xl_cfg('name = "x"\n')
    assert (cfg.pci, cfg.pci_raw, cfg.errors) == (None, None, ())


def test_list_spans_lines_with_comments_and_trailing_comma() -> None:
    text = 'pci = [\n  "0000:01:00.0@3,permissive=1", # hba\n\n  \'02:00.*,seize=1,rdm_policy=relaxed\',\n]\n'
    cfg = parse_xl_cfg(text)
    assert cfg.errors == ()
    first, second = cfg.pci or ()
    assert (first.bdf, first.vslot, first.options) == (Bdf(0, 1, 0, 0), 3, {"permissive": "1"})
    assert second.func_wildcard and second.covers(Bdf(0, 2, 0, 5)) and not second.covers(Bdf(0, 2, 1, 0))
    assert cfg.pci_raw == text.rstrip("\n")


def test_last_assignment_wins_and_plus_equals_appends() -> None:
    cfg = parse_xl_cfg("pci = ['05:00.0']\npci = ['01:00.0']\npci += ['02:00.0']\n")
    assert [s.bdf for s in cfg.pci or ()] == [Bdf(0, 1, 0, 0), Bdf(0, 2, 0, 0)]
    assert cfg.pci_raw == "pci = ['01:00.0']\npci += ['02:00.0']"


def test_pci_as_single_string_is_ignored_by_xl() -> None:
    cfg = parse_xl_cfg("pci = '01:00.0'\n")
    assert cfg.pci == ()
    assert any("should be a list" in e for e in cfg.errors)


def test_nested_list_stops_xl_reading_items() -> None:
    cfg = parse_xl_cfg("pci = [ '01:00.0', ['x'], '02:00.0' ]\n")
    assert [s.bdf for s in cfg.pci or ()] == [Bdf(0, 1, 0, 0)]
    assert cfg.errors


def test_other_keys_do_not_confuse_it() -> None:
    text = ('name="h0"; type="hvm"\nextra = "pci=[\'09:00.0\'] console=hvc0"\nusbdevice=["tablet"]\n'
            'cpus = "0-3"\nviridian = [ "defaults", ]\npci_permissive = 1\n')
    cfg = parse_xl_cfg(text)
    assert (cfg.name, cfg.pci, cfg.errors) == ("h0", None, ())


def test_escapes_in_strings() -> None:
    cfg = parse_xl_cfg("name = 'it\\'s'\n")
    assert (cfg.name, cfg.errors) == ("it's", ())


def test_lexical_errors_make_xl_refuse_the_file() -> None:
    for text in ['pci = [ "01:00.0" ]\r\n', 'PCI = [ "01:00.0" ]\n', 'pci = [ "01:00.0" ] # no newline',
                 "pci = ( '01:00.0' )\n", 'name = "unterminated\n', "memory = 2048 MB\n", "a = 1 b = 2\n"]:
        assert parse_xl_cfg(text).errors, text


def test_crlf_still_shows_the_pci_evidence() -> None:
    cfg = parse_xl_cfg("name = 'x'\r\npci = [ '01:00.0' ]\r\n")
    assert [s.bdf for s in cfg.pci or ()] == [Bdf(0, 1, 0, 0)]
    assert any("lexical error" in e for e in cfg.errors)


def test_pci_spec_forms() -> None:
    assert parse_pci_spec("0000:01:00.0").bdf == Bdf(0, 1, 0, 0)
    assert parse_pci_spec("bdf=0000:03:00.1,vslot=4").bdf == Bdf(0, 3, 0, 1)
    assert parse_pci_spec("bdf=0000:03:00.1,vslot=4").vslot == 4
    assert parse_pci_spec("01:00.0,msitranslate=1,power_mgmt=0").options == {"msitranslate": "1", "power_mgmt": "0"}
    named = parse_pci_spec("name=hba")
    assert (named.bdf, named.error, named.covers(Bdf(0, 1, 0, 0))) == (None, None, False)


def test_pci_spec_errors() -> None:
    for spec in ["01:00.8", "01:20.0", "0000:82.0.0", "01:00.0@20", "01:00.0,foo=1", "01:00.0 ,seize=1",
                 "01:00.0,name=x", "01:00.0,rdm_policy=loose", "", "seize=1", " 01:00.0", "1:2:3:4.5"]:
        assert parse_pci_spec(spec).error, spec


def test_covers() -> None:
    spec = parse_pci_spec("01:00.0")
    assert spec.covers(Bdf(0, 1, 0, 0)) and not spec.covers(Bdf(0, 1, 0, 1))


def test_format_pci_line() -> None:
    assert format_pci_line(["01:00.0", "02:00.0"]) == "pci = [ '01:00.0', '02:00.0' ]"
    assert format_pci_line([]) == "pci = []"
    line = format_pci_line(["01:00.0", "name=it's"])
    assert [s.raw for s in parse_xl_cfg(line + "\n").pci or ()] == ["01:00.0", "name=it's"]


@settings(max_examples=300)
@given(st.text())
def test_never_raises(text: str) -> None:
    cfg = parse_xl_cfg(text)
    for spec in cfg.pci or ():
        assert spec.error is not None or spec.bdf is not None or "name" in spec.options


@settings(max_examples=200)
@given(st.text(alphabet="pciname=[]'\",;#+\n\t :.0123456789abf*@"))
def test_never_raises_near_grammar(text: str) -> None:
    parse_xl_cfg(text)
