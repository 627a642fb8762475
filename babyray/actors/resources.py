"""Resource arithmetic on dicts like ``{"CPU": 2, "GPU": 0, "custom": 1}``."""
from __future__ import annotations


def fits(available: dict, request: dict) -> bool:
    return all(available.get(name, 0.0) >= amount - 1e-9 for name, amount in request.items() if amount > 0)


def acquire(available: dict, request: dict) -> None:
    for name, amount in request.items():
        available[name] = available.get(name, 0.0) - amount


def release(available: dict, request: dict) -> None:
    for name, amount in request.items():
        available[name] = available.get(name, 0.0) + amount
