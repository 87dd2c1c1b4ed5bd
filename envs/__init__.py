"""Environments and the evaluation runner: land with the evaluation issue."""
