"""Hypothesis profiles for the property tests: a quick default and a ``long`` soak.

Choose with the environment: ``HYPOTHESIS_PROFILE=long .venv/bin/pytest tests/property``
(budgets are multiplied in ``strategies.budget``; see that module's docstring).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

# XSLT and the store make example times uneven on a loaded 2-core machine: no deadline.
settings.register_profile(
    "lienthong", deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.register_profile(
    "long",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    print_blob=True,
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or "lienthong")
