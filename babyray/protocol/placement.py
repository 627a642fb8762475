"""Placement groups: driver <-> GCS, GCS <-> global scheduler, and the global scheduler's
two-phase reservation of bundles on local schedulers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from babyray.ids import JobID, NodeID
from babyray.protocol import Reply, pickle_through_init


@dataclass(frozen=True, slots=True)
class PlacementGroupReply(Reply):
    """GCS -> requester: the group's record (None if unknown), or an error text."""

    record: dict | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class CreatePlacementGroup:
    """Driver or worker -> GCS: record a group (state PENDING) and have it placed.

    Replied with PlacementGroupReply; ``error`` set if the name is taken."""

    reply: ClassVar[type[Reply]] = PlacementGroupReply

    req_id: str
    pg_id: str
    bundles: tuple
    strategy: str
    name: str
    lifetime: str | None
    job_id: JobID
    reply_to: Any = None


@dataclass(frozen=True, slots=True)
class RemovePlacementGroup:
    """Anyone -> GCS: remove a group (kill its actors and tasks, free its bundles)."""

    reply: ClassVar[type[Reply]] = PlacementGroupReply

    req_id: str
    pg_id: str
    reply_to: Any = None


@dataclass(frozen=True, slots=True)
class GetPlacementGroup:
    """Anyone -> GCS: the record of the group named ``name`` (not removed), or of ``pg_id``."""

    reply: ClassVar[type[Reply]] = PlacementGroupReply

    req_id: str
    name: str = ""
    pg_id: str = ""
    reply_to: Any = None


@dataclass(frozen=True, slots=True)
class PlacePlacementGroup:
    """GCS -> global scheduler: find nodes for every bundle of a group and reserve them.

    ``kept`` (rescheduling a group after a node died): the node of each bundle still reserved,
    "" for each bundle to place again; empty: place every bundle."""

    pg_id: str
    bundles: tuple
    strategy: str
    kept: tuple = ()


@dataclass(frozen=True, slots=True)
class ForgetPlacementGroup:
    """GCS -> global scheduler: the group was removed; stop placing it."""

    pg_id: str


@dataclass(frozen=True, slots=True)
class PlacementGroupPlaced:
    """Global scheduler -> GCS: every bundle is reserved; ``nodes`` is the node of each."""

    pg_id: str
    nodes: tuple


@dataclass(frozen=True, slots=True)
class PrepareBundles:
    """Global scheduler -> local scheduler: take these bundles' resources if they are free.

    ``bundles`` is ((index, {resource: amount}), ...). Replied with BundlesPrepared."""

    pg_id: str
    bundles: tuple


@dataclass(frozen=True, slots=True)
class BundlesPrepared:
    """Local scheduler -> global scheduler: whether the node reserved the bundles."""

    pg_id: str
    node_id: NodeID
    ok: bool


@dataclass(frozen=True, slots=True)
class CommitBundles:
    """Global scheduler -> local scheduler: every node took its bundles; make them usable."""

    pg_id: str


@dataclass(frozen=True, slots=True)
class ReturnBundles:
    """Global scheduler or GCS -> local scheduler: give the group's bundles back to the node,
    killing the workers that use them."""

    pg_id: str


pickle_through_init(globals())
