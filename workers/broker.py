"""Reading the Redis broker: queue depth and the ids of trials that have a message somewhere.

kombu's Redis transport keeps a queue as a list named after it and every delivered but unacknowledged
message in the hash ``unacked``. The reaper uses the ids to
find queued trials whose message was lost (a Redis restart without persistence); ``caviar status``
shows the depth.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import redis

__all__ = ["BrokerView", "redis_client", "queue_depth", "message_ids"]

#: kombu's hash of delivered, unacknowledged messages.
UNACKED_KEY = "unacked"


def redis_client(broker_url: str, timeout: float = 5.0) -> redis.Redis:
    """A redis-py client for ``broker_url`` (``rediss://`` verifies the certificate unless told otherwise)."""
    return redis.Redis.from_url(broker_url, socket_timeout=timeout, socket_connect_timeout=timeout)


def _task_id(raw: bytes | str) -> str | None:
    try:
        message = json.loads(raw)
    except (ValueError, TypeError):
        return None
    if isinstance(message, list):  # unacked entries are [message, exchange, routing_key]
        message = message[0] if message else {}
    headers = message.get("headers") if isinstance(message, dict) else None
    task_id = headers.get("id") if isinstance(headers, dict) else None
    return task_id if isinstance(task_id, str) else None


@dataclass(frozen=True)
class BrokerView:
    """What the broker holds for one queue at one moment.

    Attributes:
        queued: messages waiting in the queue.
        unacked: messages delivered to a worker and not yet acknowledged (running or prefetched).
    """

    queued: int
    unacked: int


def queue_depth(client: redis.Redis, queue: str) -> BrokerView:
    """Waiting and delivered-but-unacknowledged message counts."""
    return BrokerView(queued=int(client.llen(queue)), unacked=int(client.hlen(UNACKED_KEY)))


def message_ids(client: redis.Redis, queue: str) -> set[str]:
    """Task ids of every message waiting in ``queue`` or delivered and not yet acknowledged."""
    ids: set[str] = set()
    for raw in client.lrange(queue, 0, -1):
        task_id = _task_id(raw)
        if task_id:
            ids.add(task_id)
    for raw in client.hvals(UNACKED_KEY):
        task_id = _task_id(raw)
        if task_id:
            ids.add(task_id)
    return ids
