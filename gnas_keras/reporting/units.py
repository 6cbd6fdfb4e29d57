"""Numbers for people: durations, counts and byte sizes in short human form.

    duration(3725)            -> "1h02m05s"
    count(11_884)             -> "11.9 k"      count(4.2e57 as an int) -> "4.20e+57"
    size_in_bytes(3_500_000)  -> "3.3 MiB"

No TensorFlow: `flags.describe` and the progress bar use these before (or without) it.
"""

from __future__ import annotations

from gnas_keras.space.search_space import scientific

# k, M, G, T: the SI prefixes for counts (parameters, MACs); beyond 1e15 scientific notation.
_PREFIXES = ("", " k", " M", " G", " T")


def duration(seconds: float) -> str:
    """Seconds as ``12m03s`` or ``1h02m05s`` (rounded to the second)."""
    seconds = int(round(seconds))
    m, s = divmod(seconds, 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


def count(n: int) -> str:
    """A count with three significant digits and an SI prefix (``11.9 k``, ``2.31 G``); a
    count of 1e15 or more in scientific notation (`gnas_keras.space.search_space.scientific`: exact for
    integers of any size, such as the number of trees of a space)."""
    n = int(n)
    if n < 1000:
        return str(n)
    if n >= 10 ** 15:
        return scientific(n)
    value, prefix = float(n), 0
    while value >= 999.5 and prefix < len(_PREFIXES) - 1:
        value, prefix = value / 1000, prefix + 1
    return f"{value:.3g}{_PREFIXES[prefix]}"


def size_in_bytes(n: int) -> str:
    """Bytes in binary units (``512 B``, ``3.3 MiB``, ``1.2 GiB``)."""
    value, unit = float(n), "B"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1023.95 or unit == "TiB":
            break
        value /= 1024
    return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
