"""The one way the converters read text: annotation files, CSV tables and strings in .mat files.

Real tools write more than plain ASCII with ``\\n``: Windows editors and Excel add a UTF-8
byte-order mark and CRLF line ends, MATLAB pads char matrices with spaces, old Mac tools end
lines with CR alone. Every reader goes through `read_lines` (files) or `clean` (single
strings) so that all of these read the same as the clean file.
"""

from __future__ import annotations

import os
from typing import Iterator, List, Tuple

from gnas_keras_pipelines.convert_errors import ConversionError

BOM = "\ufeff"


def clean(text: str) -> str:
    """A name or path as a tool may have written it -> the name: drops a leading byte-order
    mark and surrounding whitespace (spaces, tabs, CR, LF, NUL padding)."""
    return text.lstrip(BOM).strip(" \t\r\n\x00\x0b\x0c")


def read_lines(path: str) -> Iterator[Tuple[int, str]]:
    """Yields ``(line_number, line)`` for every line of a UTF-8 text file.

    A leading byte-order mark is dropped; LF, CRLF and CR all end a line; trailing whitespace
    is removed (leading whitespace is kept: some formats indent). Line numbers are 1-based and
    count blank lines, so they match what an editor shows.

    Raises:
      ConversionError: ``missing_file``, or ``malformed_line`` for a line that is not UTF-8.
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise ConversionError(path, None, "missing file", kind="missing_file") from None
    except OSError as err:
        raise ConversionError(path, None, f"cannot read ({err.strerror})",
                              kind="missing_file") from None
    for number, raw in enumerate(data.splitlines(), start=1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ConversionError(path, number, "not valid UTF-8 text",
                                  kind="malformed_line") from None
        if number == 1:
            line = line.lstrip(BOM)
        yield number, line.rstrip(" \t\r\n\x00\x0b\x0c")


def read_rows(path: str, sep: str = None) -> Iterator[Tuple[int, List[str]]]:
    """``(line_number, fields)`` for every non-blank line of `read_lines`.

    Fields are split on any run of whitespace (``sep=None``; CelebA pads values with one or two
    spaces) or on `sep` (``","`` for Kaggle CSV), and stripped.
    """
    for number, line in read_lines(path):
        if not line.strip():
            continue
        yield number, (line.split() if sep is None else [clean(x) for x in line.split(sep)])


