"""The offline demo: a simulator of the networks, the February 2024 scenario, and `tpmon demo`."""
