"""The naive way: an idiomatic testinfra suite, one host.file/host.run per assertion (the benchmark's baseline).

Same seven rules in spirit as checks/, written as users usually write testinfra tests.
"""

BDF = "0000:01:00.0"


def test_hide_entry(host):
    assert host.file("/etc/modules").contains(r"^xen_pciback hide=.*01:00\.0")


def test_native_driver_blacklisted(host):
    assert host.file("/etc/modprobe.d/blacklist.conf").contains("^blacklist mpt3sas")


def test_initramfs_newer_than_blacklist(host):
    assert host.file("/boot/initramfs-lts").mtime >= host.file("/etc/modprobe.d/blacklist.conf").mtime


def test_driver_in_use_is_pciback(host):
    assert host.file(f"/sys/bus/pci/devices/{BDF}/driver").linked_to.endswith("/pciback")


def test_device_is_assignable(host):
    assert BDF in host.run("xl pci-assignable-list").stdout


def test_domu_config_names_device(host):
    assert host.file("/etc/xen/nas.cfg").contains("01:00.0")


def test_xen_reports_iommu(host):
    assert "directio" in host.run("xl info").stdout
