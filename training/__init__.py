"""Self-improvement: trajectories and gold rationales as training data, supervised fine-tuning, GGUF export, STaR.

Layer: above ``envs`` (the STaR loop runs evaluations), below ``cli``. Heavy imports (torch, transformers, trl,
peft, gguf) happen inside functions, so importing this package is cheap.
"""
