"""Run strategies: how many times, and how, an agent attempts a task, as objects that wrap each other.

``spec.py`` (``RunSpec``, the options), ``base.py`` (the ``Strategy`` protocol, ``Outcome``, ``StrategyContext``),
``single.py``, ``trials.py`` (``Trials``, ``WithMemory``), ``self_consistency.py`` and ``build.py``
(``build_strategy``, ``run_spec``). Import from the modules (this package imports nothing, so the
self-consistency package can use them without an import cycle).
"""
