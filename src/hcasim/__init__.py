"""hcasim: a virtual InfiniBand lab whose HCAs model NVIDIA device security firmware."""

from hcasim.native import guard as _guard

__version__ = "0.1.0"

_guard()  # a compiled MAD path that no longer matches its sources is not used
