"""The search space and its trees: presets (`search_space`), routings (`tree`), the found
architecture (`architecture`) and what it costs (`cost`). No TensorFlow."""
