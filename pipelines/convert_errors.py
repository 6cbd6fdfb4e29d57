"""The one error type of the dataset converters.

A `ConversionError` always names the file and, where the file has lines, the 1-based line
(``list_attr_celeba.txt:5: expected 40 values, got 39``). For files without lines (.mat files,
images) ``where`` is a short location such as ``label row 17`` or is left out.
"""

from __future__ import annotations

from typing import Optional, Union


class ConversionError(Exception):
    """Bad or missing source data.

    Attributes:
      path: the offending file (as found on disk).
      where: 1-based line number, a location string (``train.age[3]``) or None.
      reason: what is wrong, without the location.
      kind: a short category (``missing_image``, ``bad_image``, ``malformed_line``,
        ``bad_label``, ``unknown_image``, ...). With ``--skip_bad`` the converters skip the
        item and count it under this name in `metadata.skipped`.
    """

    def __init__(self, path: str, where: Optional[Union[int, str]], reason: str,
                 kind: str = "bad_input"):
        # One line, always: messages of other libraries (scipy, h5py) may span several.
        reason = " ".join(line.strip() for line in str(reason).splitlines() if line.strip())
        self.path = path
        self.where = where
        self.reason = reason
        self.kind = kind
        location = path if where is None else f"{path}:{where}"
        super().__init__(f"{location}: {reason}")


class DatasetError(ConversionError):
    """A converted dataset (``metadata.json`` and its shards) is missing, incomplete or does
    not match its metadata. Raised by `pipelines.records.check_dataset` before any work
    starts; a subclass of `ConversionError` so every binary reports it as one line."""
