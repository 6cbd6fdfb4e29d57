"""report.json as a typed record: what a run found and how well it did.

`RunReport.to_dict` writes the keys every earlier report.json had, in the same order, so the
readers (`flags.evaluate`, the model card, the tests) see the same file.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Optional

from gnas_keras.space.architecture import Architecture


@dataclasses.dataclass
class TreeSummary:
    """Attribute groups at every layer below the heads (layer name -> groups of attribute
    names) and, for a dataset with planted groups, the adjusted Rand index to them: at the
    architecture's group layer (`ari_layer`) and at every layer (`ari_by_layer`)."""

    groups: Dict[str, List[List[str]]]
    ari: Optional[float] = None
    ari_layer: Optional[int] = None
    ari_by_layer: Optional[Dict[str, float]] = None

    def to_dict(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {"groups": self.groups}
        if self.ari is not None:
            out.update(ari_layer=self.ari_layer, ari=self.ari, ari_by_layer=self.ari_by_layer)
        return out


@dataclasses.dataclass
class RunReport:
    """One run's report.json.

    Attributes:
      method_entries: the method's own entries (GNAS ``rounds``, random search ``trials``,
        GALM ``galm``, ...), merged into the top level as before.
      test_metrics: mean F1, balanced accuracy and AUC, and their per-attribute values.
      thresholds: per attribute, the export's decision threshold (None without an export).
      provenance: where the tree came from, one sentence (`Provenance.sentence`: searched or
        kept from its start, and which start), as the model card states it.
    """

    method: str
    dataset: str
    data_dir: str
    search_space: Dict[str, Any]
    attribute_names: List[str]
    architecture: Architecture
    trees: TreeSummary
    mean_test_error: float
    test_error: Dict[str, float]
    parameters: int
    macs_per_image: int
    supernet_parameters: Optional[int]
    search_seconds: float
    method_entries: Dict[str, Any]
    comparisons_from_scratch: Dict[str, Dict]
    compare_steps: int
    numerical_errors: List[Dict]
    test_metrics: Dict[str, Any]
    preprocessing: Dict[str, Any]
    input_shape: List[int]
    export: str
    thresholds: Optional[Dict[str, float]]
    config: Dict[str, Any]
    provenance: str = ""

    def to_dict(self) -> Dict[str, Any]:
        names, architecture = self.attribute_names, self.architecture
        return {
            "method": self.method, "dataset": self.dataset, "data_dir": self.data_dir,
            "search_space": self.search_space, "num_attributes": len(names),
            "attribute_names": names,
            "tree": [list(p) for p in architecture.parents],
            "architecture": architecture.to_dict(),
            "tree_text": architecture.render(names),
            "provenance": self.provenance,
            **self.trees.to_dict(),
            "mean_test_error": self.mean_test_error, "test_error": self.test_error,
            "parameters": self.parameters, "macs_per_image": self.macs_per_image,
            "supernet_parameters": self.supernet_parameters,
            "search_seconds": self.search_seconds,
            "rounds": [], "trials": [], **self.method_entries,
            "comparisons_from_scratch": self.comparisons_from_scratch,
            "compare_steps": self.compare_steps,
            "numerical_errors": self.numerical_errors,
            **self.test_metrics,
            "preprocessing": self.preprocessing, "input_shape": self.input_shape,
            "export": self.export, "decision_thresholds": self.thresholds,
            "config": self.config,
        }
