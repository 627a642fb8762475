"""``inspect_serializability``: find what keeps an object from pickling, as Ray's does.

It tries to serialize the object as babyray does (cloudpickle, with the serializers
``register_serializer`` gave); when that fails it looks inside (a function's globals
and closure variables, an object's attributes and methods) down to ``depth`` levels,
printing what it tries, and returns ``(serializable, failures)``.
"""

from __future__ import annotations

import inspect
from typing import Any, Iterator

from babyray import serialization


class FailureTuple:
    """One object that does not serialize: the object, its name and the object holding it."""

    def __init__(self, obj: Any, name: str | None, parent: Any) -> None:
        self.obj = obj
        self.name = name
        self.parent = parent

    def __repr__(self) -> str:
        return f"FailTuple({self.name} [obj={self.obj}, parent={self.parent}])"


class _Printer:
    def __init__(self, print_file: Any) -> None:
        self.level = 0
        self.print_file = print_file

    def print(self, message: str) -> None:
        print("    " * self.level + message, file=self.print_file)


def inspect_serializability(
    base_obj: Any, name: str | None = None, depth: int = 3, print_file: Any = None
) -> tuple[bool, set[FailureTuple]]:
    """Whether ``base_obj`` serializes, and the innermost objects found that do not.

    Prints its search to ``print_file`` (stdout by default).
    """
    printer = _Printer(print_file)
    title = f"Checking Serializability of {base_obj}"
    rule = "=" * min(len(title), 80)
    for line in (rule, title, rule):
        printer.print(line)
    failures: set[FailureTuple] = set()
    ok = _inspect(base_obj, name, depth, None, failures, printer, top=True)
    if not ok:
        if not failures:
            failures.add(FailureTuple(base_obj, name, None))
        printer.print(rule)
        found = "\n".join(str(f) for f in failures)
        printer.print(
            f"Variable: \n\n\t{found}\n\nwas found to be non-serializable. There may be multiple "
            "other undetected variables that were non-serializable. "
        )
        printer.print(
            "Consider either removing the instantiation/imports of these variables or moving the "
            "instantiation into the scope of the function/class. "
        )
    printer.print(rule)
    return ok, failures


def _inspect(
    obj: Any, name: str | None, depth: int, parent: Any, failures: set, printer: _Printer, top: bool = False
) -> bool:
    """True if ``obj`` pickles; else add the culprits found within ``depth`` to ``failures``."""
    if not top:
        printer.print(f"Serializing '{name}' {obj}...")
    try:
        serialization.serialize(obj)  # as a value travels: registered serializers count
        return True
    except Exception as exc:
        printer.print(f"!!! FAIL serialization: {exc.__cause__ or exc}")
    if depth <= 0:
        failures.add(FailureTuple(obj, name, parent))
        return False
    before, examined = len(failures), False
    for kind, members in _parts(obj):
        if members:
            examined = True
            printer.print(f"Detected {len(members)} {kind}. Checking serializability...")
        printer.level += 1
        try:
            for member_name, member in members.items():
                if not _inspect(member, member_name, depth - 1, obj, failures, printer):
                    break
        finally:
            printer.level -= 1
        if len(failures) > before:
            break
    if len(failures) == before:  # nothing inside is to blame: the object itself is
        if examined:
            printer.print(
                f"WARNING: Did not find non-serializable object in {obj}. This may be an oversight."
            )
        failures.add(FailureTuple(obj, name, parent))
    return False


def _parts(obj: Any) -> Iterator[tuple[str, dict]]:
    """What ``obj`` refers to that pickling it would pickle too."""
    if inspect.isfunction(obj):
        closure = inspect.getclosurevars(obj)
        yield "global variables", dict(closure.globals)
        yield "nonlocal variables", dict(closure.nonlocals)
        return
    try:
        members = inspect.getmembers(obj)
    except Exception:  # an object whose attributes raise: nothing to look into
        return
    yield (
        "members",
        {
            n: m
            for n, m in members
            if not (n.startswith("__") and n.endswith("__")) and not inspect.isbuiltin(m)
        },
    )
