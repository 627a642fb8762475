"""Which of a node's GPUs each worker holds: ids 0..n-1, handed out as Ray does.

I/O-free. A lease of one GPU or more takes whole GPUs (lowest free ids first); a fraction
shares one GPU with other fractions, packed onto the GPU already most used. The local
scheduler leases with a worker's resources and releases with them. A worker blocked in
``get`` keeps its ids while its resources are lent out, so a task started meanwhile may get
fewer ids than it asked for.
"""

from __future__ import annotations

import math
from typing import Hashable


class GpuIds:
    def __init__(self, count: int) -> None:
        self.free = {gpu: 1.0 for gpu in range(count)}  # id -> share still free
        self.leases: dict[Hashable, dict[int, float]] = {}  # holder -> {id: share held}

    def lease(self, holder: Hashable, amount: float) -> tuple[int, ...]:
        """Give ``holder`` GPUs for ``amount`` (replacing its lease); returns their ids."""
        self.release(holder)
        if amount <= 0:
            return ()
        if amount >= 1:
            ids = [gpu for gpu, free in sorted(self.free.items()) if free >= 1.0][: math.ceil(amount)]
            shares = {gpu: 1.0 for gpu in ids}
        else:
            fits = [gpu for gpu, free in sorted(self.free.items()) if free >= amount - 1e-9]
            shares = {min(fits, key=lambda gpu: self.free[gpu]): amount} if fits else {}
        for gpu, share in shares.items():
            self.free[gpu] -= share
        self.leases[holder] = shares
        return tuple(sorted(shares))

    def ids(self, holder: Hashable) -> tuple[int, ...]:
        return tuple(sorted(self.leases.get(holder, ())))

    def release(self, holder: Hashable) -> None:
        for gpu, share in self.leases.pop(holder, {}).items():
            self.free[gpu] = min(1.0, self.free[gpu] + share)
