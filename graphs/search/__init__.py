"""Test-time search over agent steps: the stepper, the search tree record, beam search and LATS."""
