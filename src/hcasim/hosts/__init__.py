"""The host side of a device: what sits between a firmware model and the wire or the host.

Pure, no sockets: each module binds a firmware model of :mod:`hcasim.devices` to the fabric
of :mod:`hcasim.fabric` through its :class:`~hcasim.fabric.subnet.NodeFirmware` hooks, or
models the host's driver.

* :mod:`hcasim.hosts.cx3_wire` - a ConnectX-3 on the wire: the SMP firewall (QP0 owned by
  the firmware once the key is active), M_Key hiding and GUID0 protection in SMP replies,
  the vendor ConfigSpaceAccess MADs, and the driver events of port changes;
* :mod:`hcasim.hosts.mlx4_driver` - the host's mlx4 driver: MAD_DEMUX at load, the secure
  host mode it learns, the events it receives and the kernel log it writes;
* :mod:`hcasim.hosts.config_space` - CR-space reads and writes carried by a vendor MAD,
  applied to a ConnectX-3 as its gateway would;
* :mod:`hcasim.hosts.cx6_wire` - a ConnectX-6 Dx on the wire: access registers (the crypto
  officer's) through vendor MADs.
"""
