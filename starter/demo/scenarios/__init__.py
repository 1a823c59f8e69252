"""The demo's scenarios, one module per capability; each defines ``SCENARIO`` (see ``base``)."""

import importlib
import pkgutil

from starter.demo.scenario import Scenario


def discover() -> list[Scenario]:
    """Every ``SCENARIO`` defined by a module of this package, by phase, then order, then name."""
    found: list[Scenario] = []
    for module in pkgutil.iter_modules(__path__):
        scenario = getattr(importlib.import_module(f"{__name__}.{module.name}"), "SCENARIO", None)
        if isinstance(scenario, Scenario):
            found.append(scenario)
    return sorted(found, key=lambda s: (s.phase, s.order, s.name))
