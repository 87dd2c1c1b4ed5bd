"""Serving ponder's graphs over HTTP (``langgraph dev``)."""
