"""ponder's lowest layer: errors, records, answers, io, shared types, settings, prompts (nothing above it)."""
