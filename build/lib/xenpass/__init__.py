"""xenpass: prove that Xen dom0 hosts are prepared for PCI passthrough, and fix them when they are not."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("xenpass")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"
