"""The head's directory: tells joining members and drivers where the GCS and head parts are.

``HeadDirectory`` runs on the head admin under a Thespian global name, holding the head's
ClusterInfo. A process joining from another admin cannot look a global name up there
(names are per admin: see docs/design.md, "Thespian: convention members are lost late;
names are per admin"), so it creates a ``DirectoryProbe`` with the requirement
``babyray_head``: Thespian places the probe on the head admin, where it finds the directory
by its global name, forwards the lookup, and exits.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from babyray.actors.base import PartActor
from babyray.protocol import cluster as cm

DIRECTORY_NAME = "babyray_head_directory"
HEAD_CAPABILITY = "babyray_head"


class HeadDirectory(PartActor):
    component = "head_directory"
    handlers = {cm.SetClusterInfo: "on_set", cm.LookupCluster: "on_lookup"}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.info: cm.ClusterInfo | None = None
        self.waiting: list[tuple[Any, cm.LookupCluster]] = []

    def on_set(self, msg: cm.SetClusterInfo, sender: Any) -> None:
        self.info = msg.info
        for waiter, request in self.waiting:
            self.reply(request, waiter, cm.ClusterInfoReply(request.req_id, self.info))
        self.waiting = []
        self.post(sender, cm.Started("head_directory", 0))

    def on_lookup(self, msg: cm.LookupCluster, sender: Any) -> None:
        if self.info is None:
            self.waiting.append((sender, msg))
        else:
            self.reply(msg, sender, cm.ClusterInfoReply(msg.req_id, self.info))


class DirectoryProbe(PartActor):
    """Created from another admin with ``{HEAD_CAPABILITY: True}``; lives for one lookup.

    It relays the directory's answer, and the requester stops it (an actor that stops
    itself right after a send may drop that send while its target is still being created).
    """

    component = "directory_probe"
    handlers = {cm.LookupCluster: "on_lookup", cm.ClusterInfoReply: "on_reply"}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.requests: dict[str, Any] = {}

    @staticmethod
    def actorSystemCapabilityCheck(capabilities: dict, requirements: dict) -> bool:
        return bool(capabilities.get(HEAD_CAPABILITY))

    def on_lookup(self, msg: cm.LookupCluster, sender: Any) -> None:
        self.requests[msg.req_id] = msg.reply_to or sender
        directory = self.createActor(HeadDirectory, globalName=DIRECTORY_NAME)
        self.post(directory, dataclasses.replace(msg, reply_to=self.myAddress))

    def on_reply(self, msg: cm.ClusterInfoReply, sender: Any) -> None:
        requester = self.requests.pop(msg.req_id, None)
        if requester is not None:
            self.post(requester, msg)
