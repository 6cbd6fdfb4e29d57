"""Which folders a converter may create or replace (no TensorFlow import: the binaries check
``--output_dir`` before loading anything).

A converter writes a new dataset into a temporary sibling of its output folder and renames it
into place. An existing output folder is replaced only when all of these hold:

- ``overwrite`` was asked for;
- it is a folder holding a converted dataset (its ``metadata.json``), i.e. something this
  project made;
- it is not the source folder, nor a folder that contains the source folder;
- it was named explicitly: never an empty path, ``.``, the current folder or one above it.

An empty folder (made beforehand) is used as if it did not exist.

The last two are checked even without ``overwrite`` so that the error never suggests a flag
that would destroy the user's data.
"""

from __future__ import annotations

import os
from typing import Optional, Sequence

from gnas_keras_pipelines.convert_errors import ConversionError

METADATA_FILE = "metadata.json"  # = records.METADATA_FILE (records imports TensorFlow)


def _contains(outer: str, inner: str) -> bool:
    """Whether real path `inner` is `outer` or lies below it."""
    return inner == outer or inner.startswith(outer.rstrip(os.sep) + os.sep)


def check_output_dir(output_dir: str, overwrite: bool = False,
                     protected: Sequence[Optional[str]] = ()) -> str:
    """Validates `output_dir` for a converter; returns its absolute path.

    Args:
      output_dir: the folder to create (or replace).
      overwrite: whether an existing converted dataset there may be replaced.
      protected: folders that must survive (the source folder); `output_dir` may be inside
        them but must be neither one of them nor above one of them.
    Raises:
      ConversionError (kind ``unsafe_output``) naming `output_dir` and the reason.
    """
    if output_dir is None or not str(output_dir).strip():
        raise ConversionError("--output_dir", None, "is empty; name a new folder for the "
                              "converted dataset", kind="unsafe_output")
    absolute = os.path.abspath(os.path.expanduser(output_dir))
    real = os.path.realpath(absolute)
    here = os.path.realpath(os.getcwd())
    if _contains(real, here):
        raise ConversionError(output_dir, None, "is the current folder or one above it; name a "
                              "new folder for the converted dataset", kind="unsafe_output")
    for keep in protected:
        if keep and _contains(real, os.path.realpath(os.path.expanduser(keep))):
            what = "the source folder" if real == os.path.realpath(keep) else \
                f"a folder that contains the source folder {keep}"
            raise ConversionError(output_dir, None, f"is {what}; name a new folder for the "
                                  "converted dataset", kind="unsafe_output")
    if os.path.lexists(absolute):
        if not os.path.isdir(absolute):
            raise ConversionError(output_dir, None, "exists and is not a folder; name a new "
                                  "folder for the converted dataset", kind="unsafe_output")
        if not os.path.islink(absolute) and not os.listdir(absolute):
            return absolute  # an empty folder made beforehand: nothing to lose
        if not os.path.isfile(os.path.join(absolute, METADATA_FILE)):
            raise ConversionError(output_dir, None, "exists and holds no converted dataset "
                                  f"(no {METADATA_FILE}); it is never replaced, name a new "
                                  "folder", kind="unsafe_output")
        if not overwrite:
            raise ConversionError(output_dir, None, "already holds a converted dataset; pass "
                                  "--overwrite to replace it", kind="output_exists")
    return absolute
