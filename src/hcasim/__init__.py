"""hcasim: a virtual InfiniBand lab whose HCAs model NVIDIA device security firmware."""

__version__ = "0.1.0"
