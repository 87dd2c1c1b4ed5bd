"""Self-consistency over whole agent trajectories: fan-out, votes, early stopping, batched decoding."""

from ponder.graphs.self_consistency.graph import SCConfig, build_sc_graph
from ponder.graphs.self_consistency.normalize import NormalizeContext, answer_key, register_normalizer
from ponder.graphs.self_consistency.records import SampleRecord, SelfConsistencyResult
from ponder.graphs.self_consistency.run import run_self_consistency
from ponder.graphs.self_consistency.stopping import Budget

__all__ = ["Budget", "NormalizeContext", "SCConfig", "SampleRecord", "SelfConsistencyResult", "answer_key",
           "build_sc_graph", "register_normalizer", "run_self_consistency"]
