"""``model_card.md``: what an export is, beside it (written by `gnas_keras.run` into every
export directory, next to ``saved_model.pb``).

The sections are Mitchell et al.'s ("Model Cards for Model Reporting", FAT* 2019,
https://arxiv.org/abs/1810.03993): model details (date, project version and commit, licence,
the method's paper, how the tree came about), intended use, factors, metrics, evaluation and
training data (with the images' encoding), quantitative analyses (each attribute's test
error with a 95 % Wilson interval, and the mean error on the same test images re-encoded as
JPEG quality 95), ethical considerations, caveats and recommendations. Face and person
attributes get a section on bias and privacy: such labels are subjective, skewed by who is in
the data, and the models can be misused for surveillance.

Everything the card states comes from the run (`CardInputs`); `run._Run.card_evidence`
gathers what the report lacks.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import os
import subprocess
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

# Datasets of faces or people, where the bias and privacy section applies in full.
PEOPLE_DATASETS = ("celeba", "lfwa", "market1501")
# The other public sets and the synthetic one show no people; a dataset of the user's own
# (any other name) may, and its card says what to check then.
NO_PEOPLE_DATASETS = ("synthetic", "awa1", "awa2", "apy", "sun")

# The paper behind each method (the card's citation); fixed trees are this project's baselines.
METHOD_PAPERS = {
    "gnas": "Huang, Li, Cheng, Zhang, Hauptmann: GNAS: A Greedy Neural Architecture Search "
            "Method for Multi-Attribute Learning. ACM Multimedia 2018. "
            "https://arxiv.org/abs/1804.06964",
    "random": "Random search over trees with shared weights, the baseline of Huang et al., "
              "ACM Multimedia 2018 (https://arxiv.org/abs/1804.06964)",
    "branching": "Lu, Kumar, Zhai, Cheng, Javidi, Feris: Fully-adaptive Feature Sharing in "
                 "Multi-Task Networks with Applications in Person Attribute Classification. "
                 "CVPR 2017. https://arxiv.org/abs/1611.05377",
    "galm": "Cheng, Wu, Huang, Li, Hauptmann, Peng: Learning to Transfer: Generalizable "
            "Attribute Learning with Multitask Neural Model Search. ACM Multimedia 2018",
    "affinity": "Fifty, Amid, Zhao, Yu, Anil, Finn: Efficiently Identifying Task Groupings "
                "for Multi-Task Learning. NeurIPS 2021. https://arxiv.org/abs/2109.04617",
    "soft_routing": "Guo, Lee, Ulbricht: Learning to Branch for Multi-Task Learning. ICML 2020",
}
FIXED_TREE_CITATION = ("a fixed tree, a baseline of this project (gnas-keras), no paper of "
                       "its own")
# The checkout (or installed site) this module runs from.
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# z of a two-sided 95 % interval.
Z95 = 1.959963984540054


@dataclasses.dataclass
class Provenance:
    """How the exported tree came about.

    Attributes:
      method: the run's method (``gnas``, ``label_tree``, ...).
      fixed: the method draws its tree without searching (a baseline).
      start: the tree a search started from (``random``, ``label_correlation``, ...), if the
        method records one.
      initial_tree: that start's parents per layer (report.json's ``initial_tree``).
      final_tree: the exported tree's parents per layer.
      rounds: the search's rounds, if it counts them.
    """

    method: str
    fixed: bool = False
    start: Optional[str] = None
    initial_tree: Optional[List[List[int]]] = None
    final_tree: Optional[List[List[int]]] = None
    rounds: Optional[int] = None

    @classmethod
    def from_report(cls, method: str, fixed: bool, start: Optional[str], search_report: Dict,
                    final_tree: List[List[int]]) -> "Provenance":
        """From a method's report.json entries (GNAS: ``initial_tree``, ``rounds``) and the
        exported tree's parents per layer."""
        rounds = search_report.get("rounds")
        return cls(method=method, fixed=fixed, start=start,
                   initial_tree=search_report.get("initial_tree"),
                   final_tree=[list(p) for p in final_tree],
                   rounds=len(rounds) if rounds else None)

    def changed_parents(self) -> Optional[Tuple[int, int]]:
        """(parents that differ from the start, parents in all), or None without a start."""
        if self.initial_tree is None or self.final_tree is None:
            return None
        pairs = [(a, b) for before, after in zip(self.initial_tree, self.final_tree)
                 for a, b in zip(before, after)]
        return sum(a != b for a, b in pairs), len(pairs)

    def sentence(self) -> str:
        """The tree's provenance in one exact sentence."""
        if self.fixed:
            return (f"Kept from its start: the fixed tree `{self.method}`, drawn without a "
                    "search; no parent was changed.")
        changed = self.changed_parents()
        rounds = "" if self.rounds is None else f" after {self.rounds} round(s)"
        start = f"`{self.start}`" if self.start else "recorded"
        if changed is None:
            return (f"Found by the search of `{self.method}`, which records no start tree "
                    "to compare the result with.")
        if changed[0] == 0:
            return (f"Kept from its start: `{self.method}` started from the {start} tree and "
                    f"no parent differs from it{rounds}; the exported tree is that start.")
        return (f"Searched by `{self.method}` and changed from its start: {changed[0]} of "
                f"{changed[1]} parents differ from the {start} tree it started from{rounds}.")


@dataclasses.dataclass
class CardInputs:
    """What a card states, all from the run.

    Attributes beyond the obvious: `split_sizes` examples per split; `test_error` the
    fraction wrong per attribute at probability 0.5; `test_counts` the labelled test
    examples per attribute (the intervals need them; without them none are given);
    `encoding` the image format the training records hold (``PNG``, ``JPEG``, ...);
    `jpeg95_mean_error` the mean test error on the same test images re-encoded as JPEG
    quality 95; `parts` the dataset names of a combination (several datasets read as one).
    """

    name: str
    dataset: str
    data_dirs: Sequence[str]
    split_sizes: Dict
    attribute_names: List[str]
    method: str
    space: str
    tree_text: str
    input_description: str
    test_error: Dict[str, float]
    test_f1: Optional[Dict[str, Optional[float]]] = None
    test_balanced_accuracy: Optional[Dict[str, Optional[float]]] = None
    thresholds: Optional[Dict[str, float]] = None
    parameters: int = 0
    macs_per_image: int = 0
    parts: Sequence[str] = ()
    test_counts: Optional[Dict[str, int]] = None
    provenance: Optional[Provenance] = None
    encoding: str = ""
    jpeg95_mean_error: Optional[float] = None
    date: str = ""
    version: str = ""
    commit: str = ""
    licence: str = ""

    @property
    def people(self) -> bool:
        return any(d in PEOPLE_DATASETS for d in self._names())

    @property
    def unknown_people(self) -> bool:
        """Own data: the card cannot know whether the images show people."""
        return not self.people and any(d not in NO_PEOPLE_DATASETS for d in self._names())

    def _names(self) -> List[str]:
        return [d.split("_")[0] for d in (self.parts or (self.dataset,))]

    def mean_error(self) -> Optional[float]:
        errors = [e for e in self.test_error.values() if e is not None and e == e]
        return sum(errors) / len(errors) if errors else None


def wilson_interval(errors: int, n: int, z: float = Z95) -> Tuple[float, float]:
    """The Wilson score interval of a proportion errors / n (95 % for the default z);
    (nan, nan) for n = 0. Unlike the normal approximation it stays inside [0, 1] and is
    sensible at 0 errors, which a good attribute often has."""
    if n <= 0:
        return float("nan"), float("nan")
    p, z2 = errors / n, z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def labelled_counts(labels: np.ndarray, attribute_names: Sequence[str]) -> Dict[str, int]:
    """Labelled (not -1) examples per attribute of labels [examples, N]."""
    known = (np.asarray(labels) >= 0).sum(0)
    return {a: int(k) for a, k in zip(attribute_names, known)}


def image_encoding(image_bytes: bytes) -> str:
    """The format of one encoded image, from its magic bytes."""
    for magic, name in ((b"\x89PNG", "PNG"), (b"\xff\xd8\xff", "JPEG"), (b"GIF8", "GIF"),
                        (b"BM", "BMP")):
        if image_bytes.startswith(magic):
            return name
    return "unknown"


def project_version() -> Tuple[str, str]:
    """(this code's version: ``gnas_keras.__version__``, else the installed distribution's,
    else "unknown"; the git commit of the checkout this module runs from, a dirty one marked,
    or "not a git checkout")."""
    import gnas_keras
    from importlib import metadata
    version = getattr(gnas_keras, "__version__", "")
    if not version:
        try:
            version = metadata.version("gnas-keras")
        except metadata.PackageNotFoundError:
            version = "unknown"
    try:
        commit = subprocess.run(
            ["git", "-C", _ROOT, "describe", "--always", "--dirty", "--abbrev=12"],
            capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return version, commit or "not a git checkout"


def project_licence() -> str:
    """The project's licence: the first line of its licence file, else the ``license`` of
    its pyproject.toml (a checkout) or of the installed distribution, else a sentence saying
    there is none."""
    for name in ("LICENSE", "LICENSE.md", "LICENSE.txt", "COPYING"):
        path = os.path.join(_ROOT, name)
        if os.path.exists(path):
            with open(path, encoding="utf-8", errors="replace") as f:
                first = next((line.strip() for line in f if line.strip()), "")
            return f"{first} (the project's `{name}`)"
    declared = ""
    pyproject = os.path.join(_ROOT, "pyproject.toml")
    if os.path.exists(pyproject):
        import tomllib
        with open(pyproject, "rb") as f:
            declared = tomllib.load(f).get("project", {}).get("license", "")
        declared = declared.get("text", "") if isinstance(declared, dict) else declared
    else:
        from importlib import metadata
        try:
            meta = metadata.metadata("gnas-keras")
            declared = meta.get("License-Expression") or meta.get("License") or ""
        except metadata.PackageNotFoundError:
            pass
    if declared:
        return f"{declared} (as the project declares it)"
    return ("no licence declared by the project; ask its authors before redistributing the "
            "model")


def _pct(x: Optional[float]) -> str:
    return "n/a" if x is None or x != x else f"{100 * x:.2f}"


def _details(card: CardInputs) -> List[str]:
    n = len(card.attribute_names)
    paper = METHOD_PAPERS.get(card.method, FIXED_TREE_CITATION)
    provenance = card.provenance.sentence() if card.provenance else "not recorded."
    return [
        f"# Model card: {card.name}", "",
        "Sections after Mitchell et al., Model Cards for Model Reporting, FAT* 2019 "
        "(https://arxiv.org/abs/1810.03993).", "",
        "## Model details", "",
        f"- A tree-shaped multi-attribute network (gnas-keras), method `{card.method}`, search "
        f"space `{card.space}`: {n} binary attributes, one probability each, "
        f"{card.parameters:,} parameters, {card.macs_per_image:,} multiply-accumulates per "
        "image.",
        f"- Input: {card.input_description}. Signatures: `serving_default` (float pixels) and "
        "`serving_bytes` (encoded images, with a yes/no decision per attribute at the "
        "thresholds below); see the project README.",
        f"- Exported {card.date or 'n/a'} (UTC) by gnas-keras {card.version or 'n/a'}, "
        f"commit {card.commit or 'n/a'}.",
        f"- Licence: {card.licence or 'not recorded'}. The dataset's own terms also apply.",
        f"- Method's paper: {paper}.",
        f"- Tree provenance: {provenance}", ""]


def _use_and_factors(card: CardInputs) -> List[str]:
    return [
        "## Intended use", "",
        "Research and benchmarking of multi-attribute architectures; a starting point to be "
        "evaluated again on the data of the intended application. Intended users: "
        "researchers and engineers who measure it on their own images first. Out of scope: "
        "any decision about a person, and images unlike the training data (below).", "",
        "## Factors", "",
        "- Image source: camera, crop, resolution and encoding (the model was trained on "
        f"{card.encoding or 'unknown'}-encoded images; see the JPEG note under the "
        "metrics table).",
        "- Attribute frequency: rare attributes get low error by answering \"no\"; F1 and "
        "balanced accuracy show it.",
        "- For images of people: groups of people (age, skin tone, gender presentation) may "
        "get different error rates; this card does not measure them (no group labels).", ""]


def _metrics(card: CardInputs) -> List[str]:
    counts = card.test_counts or {}
    lines = [
        "## Metrics", "",
        "Error: the fraction of labelled test examples whose decision at probability 0.5 is "
        "wrong, per attribute, with its 95 % Wilson score interval from the number of "
        "labelled test examples n; F1 and balanced accuracy beside it; the decision "
        "threshold the export uses.", "",
        "## Quantitative analyses", "",
        "| attribute | error (%) | 95 % interval (%) | n | F1 | balanced accuracy "
        "| decision threshold |",
        "|---|---:|---:|---:|---:|---:|---:|"]
    for a in card.attribute_names:
        error, n = card.test_error.get(a), counts.get(a)
        interval = "n/a"
        if n and error is not None and error == error:
            low, high = wilson_interval(round(error * n), n)
            interval = f"{_pct(low)} - {_pct(high)}"
        f1 = (card.test_f1 or {}).get(a)
        ba = (card.test_balanced_accuracy or {}).get(a)
        t = (card.thresholds or {}).get(a)
        lines.append(f"| {a} | {_pct(error)} | {interval} | {'n/a' if n is None else n} | "
                     f"{'n/a' if f1 is None else format(f1, '.3f')} | "
                     f"{'n/a' if ba is None else format(ba, '.3f')} | "
                     f"{'0.5' if t is None else format(t, '.3f')} |")
    jpeg = ("not measured" if card.jpeg95_mean_error is None
            else f"{_pct(card.jpeg95_mean_error)} %")
    lines += [
        "", f"Mean error {_pct(card.mean_error())} % on the test images as stored "
        f"({card.encoding or 'unknown'}); on the same test images re-encoded as JPEG quality "
        f"95: {jpeg}. Decision thresholds were chosen on the validation split, which the "
        "fine-tune also trained on, so they are optimistic.", ""]
    return lines


def _data(card: CardInputs) -> List[str]:
    dirs = ", ".join(f"`{d}`" for d in card.data_dirs)
    sizes = ", ".join(f"{k} {v:,}" for k, v in card.split_sizes.items())
    lines = [
        "## Evaluation data", "",
        f"The test split of dataset `{card.dataset}` ({dirs}), tested once after the "
        "fine-tune. Unknown labels (-1) count nowhere.", "",
        "## Training data", "",
        f"The train split (the search; rewards on validation), then train + validation (the "
        f"fine-tune) of the same dataset; split sizes {sizes}. Images stored as "
        f"{card.encoding or 'unknown'} in the converted records, decoded and resized to the "
        "input above."]
    if card.parts:
        lines.append(f"Several datasets read as one ({', '.join(card.parts)}): each "
                     "attribute was learned and tested only on the dataset that labels it.")
    return lines + ["", "## Tree", "", "![tree](tree.png)", "", "```", card.tree_text,
                    "```", ""]


def _ethics(card: CardInputs) -> List[str]:
    lines = ["## Ethical considerations", ""]
    if card.people:
        lines += [
            "### Bias and privacy (faces and people)", "",
            "- Face and person attributes (attractiveness, age, gender-coded labels, "
            "clothing) are subjective annotations by a few labellers and reflect their "
            "judgement and the population in the data (CelebA: celebrities, mostly young and "
            "light-skinned). Error rates can differ between groups of people; this card does "
            "not measure that. Measure per group before any use involving people.",
            "- Do not use the model to identify, track or profile people, or to infer "
            "sensitive traits; inferring attributes from faces can be unlawful without "
            "consent (e.g. GDPR biometric data).",
            "- The model was trained on images of real people collected from the web without "
            "their explicit consent to this use."]
    elif card.unknown_people:
        lines += [
            "### If the images show people", "",
            "This dataset is not one of the public sets the project knows, so this card cannot "
            "say whether it shows people. If it does: labels about people are judgements of "
            "their labellers; measure the error per group of people before any use involving "
            "them; do not use the model to identify, track or profile people or to infer "
            "sensitive traits; and make sure the people shown agreed to this use of their "
            "images (e.g. GDPR biometric data)."]
    else:
        lines.append("The images show no people; the attributes describe objects, animals, "
                     "scenes or synthetic shapes. Their labels are still the labellers' (or "
                     "the generator's) judgement.")
    return lines + [""]


def _caveats(card: CardInputs) -> List[str]:
    return [
        "## Limits: caveats and recommendations", "",
        "- Trained on one dataset's images: other cameras, crops, resolutions or populations "
        "change the error, often a lot. Images must be prepared as in training (the "
        "`serving_bytes` signature does it; `serving_default` expects resized, centre-cropped "
        "RGB pixels in [0, 255]).",
        f"- Trained on {card.encoding or 'unknown'}-encoded images: compression the model "
        "never saw can raise the error (the JPEG note above); evaluate on images encoded as "
        "they will be served.",
        "- The probabilities are not calibrated beyond what the training loss gives.",
        "- The intervals are per attribute and assume independent test examples; they do not "
        "cover a different population, and the mean over attributes has none (its "
        "attributes share images)."]


def render(card: CardInputs) -> str:
    """The card's markdown."""
    lines = (_details(card) + _use_and_factors(card) + _metrics(card) + _data(card)
             + _ethics(card) + _caveats(card))
    return "\n".join(lines) + "\n"


def model_card(**fields) -> str:
    """The card's markdown from `CardInputs`' fields (keyword arguments); missing version,
    commit, licence and date are filled in from this checkout and the clock."""
    card = CardInputs(**fields)
    if not card.version or not card.commit:
        version, commit = project_version()
        card.version, card.commit = card.version or version, card.commit or commit
    card.licence = card.licence or project_licence()
    card.date = card.date or datetime.datetime.now(datetime.timezone.utc).strftime(
        "%Y-%m-%d %H:%M")
    return render(card)
