"""Firmware models as state machines: pure, no sockets, no SQLite, no parsing of MADs.

* :mod:`hcasim.devices.cx3` - the ConnectX-3 / ConnectX-3 Pro Secure Host firmware: CR-space
  and its lock, the tools HCR (HW_ACCESS), semaphores, the flash gateway, and where a key
  set by ``flint set_key`` becomes active (driver restart, host reboot);
* :mod:`hcasim.devices.hw_key` - the 64-bit key: parsing, its digest, its place in an image;
* :mod:`hcasim.devices.fs2`, :mod:`hcasim.devices.flash`,
  :mod:`hcasim.devices.firmware_ini` - the FS2 flash image, the flash device, firmware ini;
* :mod:`hcasim.devices.mlx5` - the mlx5 crypto engine in wrapped import mode.

What a device does on the wire (SMP firewall, M_Key hiding) is in :mod:`hcasim.hosts`.
"""
