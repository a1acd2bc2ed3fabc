"""Where ``controlroom serve NAME`` finds each service: ``engine/services/{name}.py`` defines
``{Name}Service`` (imported only when that service runs)."""

from __future__ import annotations

import importlib

from engine.services.base import Service
from engine.services.settings import SERVICE_NAMES


def service_class(name: str) -> type[Service]:
    if name not in SERVICE_NAMES:
        raise ValueError(f"unknown service {name!r} (one of {', '.join(SERVICE_NAMES)})")
    module = importlib.import_module(f"engine.services.{name}")
    cls = getattr(module, f"{name.capitalize()}Service")
    if not (isinstance(cls, type) and issubclass(cls, Service)):
        raise TypeError(f"engine.services.{name}.{name.capitalize()}Service is not a Service")
    return cls
