"""Clients of a running lab, and the tools that sit on a host.

* :mod:`hcasim.api.client` - the control protocol client (one connection, one session);
* :mod:`hcasim.api.mst` - an mst device file opened through the lab (what flint drives);
* :mod:`hcasim.api.ibsim_client` - a MAD client of the ibsim endpoint, as libumad2sim is;
* :mod:`hcasim.api.officer` - the crypto officer's host-side tool (register accesses);
* :mod:`hcasim.api.crypto_lab` - a one-device crypto lab in this process, for tests.

The pyverbs-shaped crypto API applications use is :mod:`hcasim.mlx5dv`, at the same level,
with its own transport to the daemon (:mod:`hcasim.mlx5dv.socket_transport`, over
:mod:`hcasim.api.client`); nothing here imports it but :mod:`hcasim.api.crypto_lab`.
"""
