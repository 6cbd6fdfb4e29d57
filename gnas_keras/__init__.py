"""gnas-keras: tree-shaped multi-attribute networks found by search (GNAS and its peers)."""

__version__ = "0.9.0"  # the one place the version is written (pyproject.toml reads it)
