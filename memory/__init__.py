"""Memory (Reflexion reflections, ExpeL experience) in Chroma: lands with the memory issue."""
