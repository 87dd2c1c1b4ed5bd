"""Self-consistency on the real embedded model through the llama.cpp continuous-batching engine."""

from __future__ import annotations

import pytest

from ponder.core.settings import load_settings
from ponder.graphs.self_consistency import SCConfig, run_self_consistency


@pytest.mark.integration
def test_samples_run_concurrently_and_answer_as_they_do_one_after_another(tmp_path):
    """SC×4: the four samples are decoded together, and each gives the text it gives when run alone.

    One model call per sample (``max_steps=1``): the engine promises that a request's text depends only on its
    prompt, parameters and seed. (A later call of the same sample reuses KV cells that were computed in a batch,
    which llama.cpp does not compute bit-for-bit as alone, so multi-step samples may drift apart.)
    """
    from ponder.models.spec import load_model

    settings = load_settings(model="embedded", out_dir=tmp_path, tools=["calculator"], max_tokens=48, max_steps=1)
    backend = load_model("embedded", settings)
    assert backend.backend_name == "llamacpp" and backend.capabilities.continuous_batching
    question = "What is 12 times 7 plus 5?"
    config = {"samples": 4, "temperature": 0.7, "seed": 0}
    together = run_self_consistency(question, config=SCConfig(**config), settings=settings, model=backend,
                                    write=False)
    apart = run_self_consistency(question, config=SCConfig(**config, wave=1), settings=settings, model=backend,
                                 write=False)
    # every sample started before the first one ended: all four were decoded together
    assert max(s.start_s for s in together.samples) < min(s.end_s for s in together.samples)
    assert together.batch_sizes == [] and together.waves == 1
    # one after another: each started after the one before ended
    ordered = sorted(apart.samples, key=lambda s: s.start_s)
    assert all(a.end_s <= b.start_s for a, b in zip(ordered, ordered[1:], strict=False))
    assert [s.seed for s in together.samples] == [s.seed for s in apart.samples] == [0, 1, 2, 3]
    texts = [[step.raw for step in s.trajectory.steps] for s in together.samples]
    assert texts == [[step.raw for step in s.trajectory.steps] for s in apart.samples]
    assert len({t[0] for t in texts}) > 1  # four different samples, not one greedy text
    assert [s.trajectory.final_answer for s in together.samples] == [s.trajectory.final_answer for s in apart.samples]
