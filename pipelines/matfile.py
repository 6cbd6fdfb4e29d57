"""Reads MATLAB .mat files of either flavour into one plain-Python form.

MATLAB writes ``-v7`` (and older) files that `scipy.io.loadmat` reads, and ``-v7.3`` files that
are HDF5 (`h5py`): there arrays are stored transposed, strings are uint16 character arrays, and
cell arrays are arrays of object references into ``#refs#``. `load_mat` hides the difference
and returns, for every variable:

- numeric / logical array -> `numpy.ndarray` in MATLAB's shape (rows x columns),
- char array             -> `str` (one row) or list of `str` (several rows),
- cell array             -> `numpy.ndarray` of dtype object in MATLAB's shape, elements
                            converted the same way,
- 1x1 struct             -> `dict` of field name -> converted value (struct arrays -> object
                            array of dicts).
"""

from __future__ import annotations

from typing import Any, Dict, List, Sequence

import h5py
import numpy as np
import scipy.io

from gnas_keras_pipelines import text
from gnas_keras_pipelines.convert_errors import ConversionError


def load_mat(path: str, required: Sequence[str] = ()) -> Dict[str, Any]:
    """Loads all variables of a .mat file; raises `ConversionError` if one of `required` is
    missing or the file is not a MATLAB file."""
    try:
        if h5py.is_hdf5(path):
            with h5py.File(path, "r") as f:
                out = {name: _from_h5(f, f[name]) for name in f
                       if not name.startswith("#")}
        else:
            raw = scipy.io.loadmat(path, squeeze_me=False, chars_as_strings=True)
            out = {name: _from_scipy(v) for name, v in raw.items() if not name.startswith("__")}
    except FileNotFoundError:
        raise ConversionError(path, None, "missing file", kind="missing_file") from None
    except ConversionError:
        raise
    except Exception as err:  # scipy/h5py raise many types for corrupt files
        raise ConversionError(path, None, f"not a readable MATLAB file ({err})",
                              kind="malformed_file") from None
    missing = [name for name in required if name not in out]
    if missing:
        raise ConversionError(path, None, f"variable {missing[0]!r} missing (file has "
                              f"{', '.join(sorted(out)) or 'no variables'})",
                              kind="malformed_file")
    return out


def _from_scipy(value: Any) -> Any:
    if isinstance(value, str):
        return value
    if not isinstance(value, np.ndarray):
        return value
    if value.dtype.names:  # struct
        structs = np.empty(value.shape, dtype=object)
        for index in np.ndindex(value.shape):
            structs[index] = {field: _from_scipy(value[index][field])
                              for field in value.dtype.names}
        return structs.flat[0] if structs.size == 1 else structs
    if value.dtype.kind == "U":  # char: one string per row after chars_as_strings
        rows = [str(s) for s in value.ravel()]
        return rows[0] if len(rows) == 1 else ("" if not rows else rows)
    if value.dtype == object:  # cell
        cells = np.empty(value.shape, dtype=object)
        for index in np.ndindex(value.shape):
            cells[index] = _from_scipy(value[index])
        return cells
    return value


def _from_h5(f: h5py.File, node: Any) -> Any:
    matlab_class = node.attrs.get("MATLAB_class", b"")
    matlab_class = matlab_class.decode() if isinstance(matlab_class, bytes) else matlab_class
    if isinstance(node, h5py.Group):  # a 1x1 struct
        return {name: _from_h5(f, node[name]) for name in node}
    if node.attrs.get("MATLAB_empty", 0):
        return "" if matlab_class == "char" else np.zeros((0, 0))
    data = node[()]
    if matlab_class == "char":
        rows = ["".join(chr(c) for c in row) for row in np.atleast_2d(data.T)]
        return rows[0] if len(rows) == 1 else rows
    if matlab_class == "cell" or data.dtype == h5py.ref_dtype:
        refs = np.atleast_2d(data).T
        cells = np.empty(refs.shape, dtype=object)
        for index in np.ndindex(refs.shape):
            cells[index] = _from_h5(f, f[refs[index]])
        return cells
    if matlab_class == "logical":
        return np.atleast_2d(data).T.astype(bool)
    return np.atleast_2d(data).T


def strings(value: Any, path: str, name: str) -> List[str]:
    """A cell array (any shape) of strings as a list, in MATLAB's column-major order.

    Each string goes through `pipelines.text.clean` (byte-order mark, the space padding of
    MATLAB char matrices, stray CR)."""
    if isinstance(value, str):
        return [text.clean(value)]
    if isinstance(value, list):
        return [text.clean(v) for v in value]
    if not isinstance(value, np.ndarray) or value.dtype != object:
        raise ConversionError(path, None, f"{name!r} should be a cell array of strings",
                              kind="malformed_file")
    out = []
    for i, element in enumerate(value.ravel(order="F")):
        if isinstance(element, np.ndarray) and element.dtype == object and element.size == 1:
            element = element.flat[0]  # cells nested one level ({ {'a'} })
        if not isinstance(element, str):
            raise ConversionError(path, f"{name}[{i + 1}]", f"expected a string, got "
                                  f"{type(element).__name__}", kind="malformed_file")
        out.append(text.clean(element))
    return out


def matrix(value: Any, path: str, name: str) -> np.ndarray:
    """A numeric 2-D array (float64)."""
    if not isinstance(value, np.ndarray) or value.dtype == object or value.ndim != 2:
        raise ConversionError(path, None, f"{name!r} should be a numeric matrix",
                              kind="malformed_file")
    return value.astype(np.float64)


def vector(value: Any, path: str, name: str) -> np.ndarray:
    """A numeric row or column vector, flattened (float64)."""
    value = matrix(value, path, name)
    if min(value.shape) > 1:
        raise ConversionError(path, None, f"{name!r} should be a vector, has shape "
                              f"{value.shape}", kind="malformed_file")
    return value.ravel()
