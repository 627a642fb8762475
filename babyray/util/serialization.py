"""``ray.util.serialization``: custom serializers for classes that do not pickle.

A registration applies to the process that makes it, as in Ray: a task or actor that returns
or puts such a value registers the serializer itself. A value serialized with one carries its
deserializer, so the process reading it needs no registration.
"""

from __future__ import annotations

from babyray.serialization import deregister_serializer, register_serializer

__all__ = ["deregister_serializer", "register_serializer"]
