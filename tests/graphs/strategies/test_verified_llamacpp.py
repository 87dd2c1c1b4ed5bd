"""``best_of_n`` and ``refine`` with the execution verifier: PAL on the real embedded model, real sandbox."""

from __future__ import annotations

import pytest

from ponder.core.settings import load_settings
from ponder.graphs.strategies.base import StrategyContext
from ponder.graphs.strategies.best_of_n import BestOfN
from ponder.graphs.strategies.refine import Refine
from ponder.graphs.strategies.single import Single

QUESTION = "Tom has 3 boxes with 12 apples each. He eats 5 apples. How many apples are left?"


@pytest.mark.integration
def test_best_of_n_and_refine_score_pal_programs_by_running_them(tmp_path):
    from ponder.models.spec import load_model

    settings = load_settings(model="embedded", out_dir=tmp_path, agent="pal", max_tokens=160, max_steps=2)
    backend = load_model("embedded", settings)
    ctx = StrategyContext(settings=settings, model=backend, agent="pal", answer_kind="number")
    best = BestOfN(Single(), 3, "execution").run(QUESTION, ctx)
    scores = best.metadata["scores"]
    assert len(best.trajectories) == 3 and best.metadata["verifier"] == "execution"
    assert set(scores) <= {0.0, 0.25, 0.5, 1.0} and scores[best.metadata["picked"]] == max(scores)
    assert best.usage.model_calls == sum(t.usage.model_calls for t in best.trajectories)  # execution: no model
    assert sorted({t.metadata["sample"] for t in best.trajectories}) == [0, 1, 2]
    refined = Refine(Single(), 1, "execution", accept=1.0).run(QUESTION, ctx)
    assert 1 <= len(refined.attempts) <= 2
    assert refined.metadata["scores"][refined.metadata["picked"]] == max(refined.metadata["scores"])
    if len(refined.attempts) == 2:  # the revision read the verifier's verdict on the first program
        assert "refine_feedback" in refined.trajectories[-1].metadata
