"""Conversation state on plain Redis / Valkey, expiring a fixed time after the last activity.

`langgraph-checkpoint-plainredis` stores each channel's value in its own key per version and, with `ttl`, expires
only the keys written in the latest step: a channel that stops changing (say, the ticket id set on turn 1) would
expire while the conversation is still going. `SlidingRedisSaver` re-expires every key the latest checkpoint
references on each write, so the whole thread lives until `ttl` seconds after its last turn, then all of it goes.

Usage (one per app, sharing nothing with other clients because it needs `decode_responses=False`):

    saver = make_checkpointer(settings.redis_url, settings.session_ttl_seconds)
    graph = build_graph(checkpointer=saver)
    ...
    await saver.aclose()

Keys are not escaped by the library (thread "a:b" + namespace "c" would collide with thread "a" + namespace "b:c"),
which is one more reason session ids are server-issued random tokens (api/sessions.py).
"""

from __future__ import annotations

from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import ChannelVersions, Checkpoint, CheckpointMetadata
from langgraph_checkpoint_plainredis import AsyncRedisSaver

from tools.redis_client import connect

KEY_PREFIX = "chat"


class SlidingRedisSaver(AsyncRedisSaver):
    """AsyncRedisSaver whose TTL slides for the whole thread, not only for the channels that just changed."""

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        saved = await super().aput(config, checkpoint, metadata, new_versions)
        if self.ttl:
            thread_id: str = config["configurable"]["thread_id"]
            ns: str = config["configurable"].get("checkpoint_ns", "")
            keys = self._blob_keys(thread_id, ns, dict(checkpoint.get("channel_versions") or {}))
            pipe = self.client.pipeline(transaction=False)
            for key in keys:
                pipe.expire(key, self.ttl)
            await pipe.execute()
        return saved


def make_checkpointer(
    redis_url: str, ttl_seconds: int | None, prefix: str = KEY_PREFIX, **kwargs: Any
) -> SlidingRedisSaver:
    kwargs.setdefault("client", connect(redis_url, protocol=2))  # bytes, as the saver expects; retried
    return SlidingRedisSaver(url=redis_url, ttl=ttl_seconds or None, prefix=prefix, **kwargs)
