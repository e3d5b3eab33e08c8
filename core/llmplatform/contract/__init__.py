"""The contract between the control plane (api, render, operator, CLI) and the data plane
(gateway): the versioned gateway config, the API-key hash, the Redis usage-key scheme and the
shared names (group, kinds, plurals, labels, tiers, classifications).

Why a leaf package: the gateway must be able to load its config without loading the rendering
core, the resource types or CEL, and the operator must read the gateway's usage counters without
importing the gateway. Both import this package and never each other. It imports only pydantic
and the standard library (tests/unit/test_import_boundaries.py checks it).
"""
