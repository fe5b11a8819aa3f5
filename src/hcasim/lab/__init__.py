"""The lab daemon: one process that owns every device's state, and the services it runs.

This is where I/O lives: the SQLite store (:mod:`~hcasim.lab.store`), the lab home
(:mod:`~hcasim.lab.home`), the lab definition (:mod:`~hcasim.lab.spec`) and the device
registry (:mod:`~hcasim.lab.device_models`), the hosts and devices built from them
(:mod:`~hcasim.lab.lab`), the control endpoint and its protocol (:mod:`~hcasim.lab.control`,
:mod:`~hcasim.lab.protocol`), and the services the daemon starts in a fixed order
(:mod:`~hcasim.lab.daemon`): the ibsim endpoint (:mod:`~hcasim.lab.ibsim_server`), the crypto
service (:mod:`~hcasim.lab.crypto_service`) and OpenSM (:mod:`~hcasim.lab.sm_service`).
"""
