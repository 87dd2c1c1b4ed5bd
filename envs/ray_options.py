"""What ``ponder eval --executor ray`` was asked for: the cluster to join and how the episodes are sharded."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class RayOptions(BaseModel):
    """How a Ray evaluation runs (the run's own options stay in :class:`~ponder.envs.context.EvalOptions`).

    Attributes:
        address: ``None`` starts a local Ray instance for this run; ``auto`` joins the cluster this machine is
            part of; ``HOST:PORT`` joins that cluster's head (GCS address); ``ray://HOST:PORT`` uses Ray Client.
        shards: Number of shards the episodes still to play are split into (``None``: several per worker slot
            of the cluster, so stragglers matter less).
        max_retries: Times a shard whose worker process or node died is retried (its finished episodes are
            never replayed); an episode that keeps killing its worker becomes an ``env_error`` record.
    """

    model_config = ConfigDict(frozen=True)

    address: str | None = None
    shards: int | None = Field(None, ge=1, le=100_000)
    max_retries: int = Field(3, ge=0, le=20)
