"""Wire formats only: MAD and SMP framing, attributes, vendor MADs, ibsim socket structs.

Pure and declarative: every layout is a field table (:mod:`hcasim.ib.layout`) from which
encoding, decoding and dumping follow.  Nothing here does I/O or decides policy.

* :mod:`hcasim.ib.mad` - common MAD header, LID-routed and directed-route SMPs, PerfMgt
  GMPs, management classes, methods, status codes, attribute ids;
* :mod:`hcasim.ib.smp_attrs` - NodeDescription, NodeInfo, SwitchInfo, GUIDInfo, PortInfo,
  P_KeyTable, SLtoVL, VLArbitration, LFT, MFT, SMInfo, Notice (and trap 256 details);
* :mod:`hcasim.ib.perf` - ClassPortInfo and PortCounters;
* :mod:`hcasim.ib.vendor` - the Mellanox ConfigSpaceAccess vendor MAD;
* :mod:`hcasim.ib.simproto` - ibsim's ``sim_ctl`` and ``sim_request`` socket structs;
* :mod:`hcasim.ib.build` - requests built the way the diagnostic tools build them.
"""
