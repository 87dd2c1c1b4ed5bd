"""Splitting episodes into shards and the first-record-wins merge (pure: no Ray)."""

from __future__ import annotations

import pytest

from ponder.envs.sharding import FirstWins, shard_count, singles, split


@pytest.mark.parametrize(("todo", "slots", "requested", "expected"), [
    (0, 4, None, 0), (100, 2, None, 8), (5, 2, None, 5), (100, 0, None, 4), (100, 2, 3, 3), (2, 2, 9, 2),
])
def test_shard_count(todo, slots, requested, expected):
    assert shard_count(todo, slots, requested) == expected


def test_split_deals_round_robin_and_covers_every_item_once():
    items = [(i, f"e{i}") for i in range(10)]
    shards = split(items, 3, first_id=5)
    assert [s.id for s in shards] == [5, 6, 7]
    assert [[i for i, _ in s.items] for s in shards] == [[0, 3, 6, 9], [1, 4, 7], [2, 5, 8]]
    assert sorted(x for s in shards for x in s.items) == items and not any(s.single for s in shards)
    assert len(split(items[:2], 5)) == 2  # never an empty shard


def test_singles_are_one_item_shards():
    shards = singles([(4, "a"), (7, "b")], first_id=10)
    assert [(s.id, s.items, s.single) for s in shards] == [(10, ((4, "a"),), True), (11, ((7, "b"),), True)]


def test_first_record_wins_and_drain_hands_each_item_once():
    merge = FirstWins()
    assert merge.put({"episode_id": "a", "score": 1.0}, ["t1"], {"search.jsonl": ["s1"]})
    assert not merge.put({"episode_id": "a", "score": 0.0}, ["t2"], {"search.jsonl": ["s2"]})  # a duplicate
    assert merge.put({"episode_id": "b"}, [])
    merge.put_side({"trajectories.jsonl": ["x"], "empty.jsonl": []})
    assert merge.done(["a", "b", "c"]) == ["a", "b"]
    items, side = merge.drain()
    assert items == [({"episode_id": "a", "score": 1.0}, ["t1"]), ({"episode_id": "b"}, [])]
    assert side == {"search.jsonl": ["s1"], "trajectories.jsonl": ["x"]}
    assert merge.drain() == ([], {}) and merge.dropped == 1
    assert not merge.put({"episode_id": "b"}, [])  # still known after the drain


def test_a_shard_bounds_llamacpp_threads_to_its_cpus_unless_pinned():
    from ponder.core.settings import load_settings
    from ponder.envs.ray_shard import cpu_bound

    settings = load_settings()
    assert settings.llamacpp_threads is None
    assert cpu_bound(settings, 2.0).llamacpp_threads == 2
    assert cpu_bound(settings, 0.5).llamacpp_threads == 1
    assert cpu_bound(settings, None) is settings  # Ray reported no CPU: llama.cpp's own default
    pinned = settings.model_copy(update={"llamacpp_threads": 6})
    assert cpu_bound(pinned, 2.0).llamacpp_threads == 6
