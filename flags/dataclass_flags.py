"""absl flags derived from config dataclasses, so that every setting is written once (in
`gnas_keras.config` or a method's config): the flag is the field's name, its default the
field's default, its help ``metadata["help"]``, an enum when ``metadata["choices"]`` is set.

Nested dataclass fields are flattened (``RunConfig.candidates.train_steps`` is
``--train_steps``); `RunConfig.methods` gives one group of flags per registered method,
listed under the method's module in ``--helpfull`` (e.g. ``gnas_keras.methods.gnas (--method=gnas)``). Flag names must therefore be unique
across the sections (`define` raises otherwise).
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, Dict, Iterable, Optional

from absl import flags

FLAGS = flags.FLAGS


def _type(cls, field: dataclasses.Field):
    hints = typing.get_type_hints(cls)
    return hints[field.name]


def _define(name: str, tp, default: Any, help_text: str, choices, module: str) -> None:
    origin = typing.get_origin(tp)
    if choices:
        flags.DEFINE_enum(name, default, list(choices), help_text, module_name=module)
    elif tp is bool:
        flags.DEFINE_bool(name, default, help_text, module_name=module)
    elif tp is int:
        flags.DEFINE_integer(name, default, help_text, module_name=module)
    elif tp is float:
        flags.DEFINE_float(name, default, help_text, module_name=module)
    elif tp is str:
        flags.DEFINE_string(name, default, help_text, module_name=module)
    elif origin is typing.Union and type(None) in typing.get_args(tp) \
            and bool in typing.get_args(tp):  # Optional[bool]: default / true / false
        flags.DEFINE_enum(name, "default" if default is None else str(default).lower(),
                          ["default", "true", "false"], help_text, module_name=module)
    elif origin in (tuple, list):  # comma-separated
        flags.DEFINE_list(name, [str(v) for v in default], help_text, module_name=module)
    else:
        raise TypeError(f"no flag type for field {name}: {tp}")


def _value(name: str, tp) -> Any:
    value = getattr(FLAGS, name)
    origin = typing.get_origin(tp)
    if origin is typing.Union and bool in typing.get_args(tp):
        return None if value == "default" else value == "true"
    if origin in (tuple, list):
        item = typing.get_args(tp)[0]
        try:
            return tuple(item(v) for v in value)
        except ValueError:
            raise ValueError(f"{name}: {item.__name__} values expected, got {value}") from None
    return value


def define(config, module: str, skip: Iterable[str] = (),
           choices: Optional[Dict[str, Iterable[str]]] = None,
           only: Optional[Iterable[str]] = None) -> None:
    """Defines a flag for every field of the dataclass instance `config` (nested dataclass
    fields flattened, listed as ``<module>.<field>``; a dict of dataclasses, like
    `RunConfig.methods`, one group per key, listed under the section's module)
    except those named in `skip`, or, with `only`, just the fields named there. `choices`
    makes string fields enums whose values live elsewhere (datasets, spaces, methods)."""
    skip, choices = set(skip), choices or {}
    only = None if only is None else set(only)
    for field in dataclasses.fields(config):
        if field.name in skip:
            continue
        value = getattr(config, field.name)
        if dataclasses.is_dataclass(value):
            define(value, f"{module}.{field.name}", skip, choices, only)
        elif isinstance(value, dict):
            for key, section in value.items():
                define(section, f"{type(section).__module__} (--method={key})", skip, choices,
                       only)
        elif only is not None and field.name not in only:
            continue
        else:
            _define(field.name, _type(type(config), field), value,
                    field.metadata.get("help", ""),
                    choices.get(field.name, field.metadata.get("choices")), module)


def build(cls, skip: Iterable[str] = (), **fixed):
    """An instance of dataclass `cls` from the flags `define` made (nested sections and
    method dicts rebuilt); `fixed` sets fields that have no flag."""
    skip = set(skip)
    kwargs = {}
    default = cls()
    for field in dataclasses.fields(cls):
        if field.name in fixed:
            kwargs[field.name] = fixed[field.name]
        elif field.name in skip:
            continue
        else:
            value = getattr(default, field.name)
            if dataclasses.is_dataclass(value):
                kwargs[field.name] = build(type(value), skip)
            elif isinstance(value, dict):
                kwargs[field.name] = {k: build(type(v), skip) for k, v in value.items()}
            else:
                kwargs[field.name] = _value(field.name, _type(cls, field))
    return cls(**kwargs)


# The model a binary describes or times without data (`flags.describe`, the benchmarks): these
# RunConfig settings, with the paper's Table 2 model on CelebA's crop as those binaries'
# defaults (a search takes the attribute count and crop from its data instead).
MODEL_INPUT = {"space": "shallow_thin", "num_attributes": 40, "crop_height": 192,
               "crop_width": 168}


def define_model_input(config, module: str, spaces: Iterable[str]) -> None:
    """Defines `MODEL_INPUT`'s flags from `config`'s fields (help text and type from there),
    with `MODEL_INPUT`'s defaults (no ``--space=auto`` here: there is no data to pick by)."""
    define(dataclasses.replace(config, **MODEL_INPUT), module,
           choices={"space": sorted(spaces)}, only=MODEL_INPUT)
