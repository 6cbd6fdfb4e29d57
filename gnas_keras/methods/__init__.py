"""Search methods as plug-ins: the registry.

A method is one module that defines a `base.Method` (usually named ``METHOD``) and one line
below that registers it. The contract (`gnas_keras.methods.base`):

    @dataclasses.dataclass
    class MyConfig:                       # optional: the method's own settings; each field
        steps: int = setting(10, "help")  # becomes a flag (--steps), grouped per method

    def search(context: SearchContext) -> SearchResult:
        # context.config, context.method_config (a MyConfig), context.space, the data's
        # attributes, context.rng, context.supernet / loop / val_data (uses_supernet=True),
        # context.train_data and strategy (to train tree networks), context.logger (progress
        # events), context.saved_state + context.checkpoint(state, boundary) (resuming).
        return SearchResult(architecture, model=None, report={...})

    METHOD = Method("mine", search, MyConfig, uses_supernet=False,
                    trackables=lambda context: {"controller": ...})

Modules here import no TensorFlow at import time (configs and flags stay cheap).
"""

from __future__ import annotations

from typing import Any, Dict, Tuple

from gnas_keras.methods import (affinity, branching, fixed, galm, gnas, random_search,
                                soft_routing, transfer)
from gnas_keras.methods.base import Method

REGISTRY: Dict[str, Method] = {}


def register(method: Method) -> None:
    if method.name in REGISTRY:
        raise ValueError(f"method {method.name!r} is registered twice")
    REGISTRY[method.name] = method


register(gnas.METHOD)
register(random_search.METHOD)
register(branching.METHOD)
register(galm.METHOD)
register(affinity.METHOD)
register(soft_routing.METHOD)
register(transfer.METHOD)
for _fixed in fixed.METHODS:
    register(_fixed)


def get_method(name: str) -> Method:
    if name not in REGISTRY:
        raise ValueError(f"unknown method {name!r}; known: {tuple(REGISTRY)}")
    return REGISTRY[name]


def default_configs() -> Dict[str, Any]:
    """{method name: its config with defaults} for every method that has settings."""
    return {m.name: m.config_type() for m in REGISTRY.values() if m.config_type is not None}


def fixed_methods() -> Tuple[str, ...]:
    return tuple(m.name for m in REGISTRY.values() if m.fixed)
