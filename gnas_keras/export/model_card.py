"""``model_card.md``: what an export is, beside it (written by `gnas_keras.run` into every
export directory, next to ``saved_model.pb``).

A model card (Mitchell et al., 2019) says what the model predicts, from which data and split,
how well per attribute, what it looks like (the tree), and what it is for and not for. Face
and person attributes get a section on bias and privacy: such labels are subjective, skewed
by who is in the data, and the models can be misused for surveillance.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence

# Datasets of faces or people, where the bias and privacy section applies in full.
PEOPLE_DATASETS = ("celeba", "lfwa", "market1501")
# The other public sets and the synthetic one show no people; a dataset of the user's own
# (any other name) may, and its card says what to check then.
NO_PEOPLE_DATASETS = ("synthetic", "awa1", "awa2", "apy", "sun")


def _pct(x: Optional[float]) -> str:
    return "n/a" if x is None or x != x else f"{100 * x:.2f}"


def model_card(*, name: str, dataset: str, data_dirs: Sequence[str], split_sizes: Dict,
               attribute_names: List[str], method: str, space: str, tree_text: str,
               input_description: str, test_error: Dict[str, float],
               test_f1: Optional[Dict[str, Optional[float]]],
               test_balanced_accuracy: Optional[Dict[str, Optional[float]]],
               thresholds: Optional[Dict[str, float]], parameters: int,
               macs_per_image: int, parts: Sequence[str] = ()) -> str:
    """The card's markdown. `parts`: the dataset names of a combination (several datasets
    read as one); the bias section applies if any of them shows people."""
    names = [d.split("_")[0] for d in (parts or (dataset,))]
    people = any(d in PEOPLE_DATASETS for d in names)
    unknown = not people and any(d not in NO_PEOPLE_DATASETS for d in names)
    n = len(attribute_names)
    lines = [
        f"# Model card: {name}", "",
        "## Model", "",
        f"A tree-shaped multi-attribute network found by `{method}` (gnas-keras) in the search "
        f"space `{space}`: {n} binary attributes, one probability each, {parameters:,} "
        f"parameters, {macs_per_image:,} multiply-accumulates per image. Input: "
        f"{input_description}. Signatures: `serving_default` (float pixels) and "
        "`serving_bytes` (encoded images, with a yes/no decision per attribute at the "
        "thresholds below); see the project README.", "",
        "## Data", "",
        f"Dataset `{dataset}` from {', '.join(f'`{d}`' for d in data_dirs)}; split sizes "
        + ", ".join(f"{k} {v:,}" for k, v in split_sizes.items()) + ". The network was "
        "searched on train (rewards on validation), fine-tuned on train + validation, and "
        "tested once on test. Unknown labels (-1) count nowhere.",
        "" if not parts else f"Several datasets read as one ({', '.join(parts)}): each "
        "attribute was learned and tested only on the dataset that labels it.", "",
        "## Test metrics per attribute", "",
        "| attribute | error (%) | F1 | balanced accuracy | decision threshold |",
        "|---|---:|---:|---:|---:|"]
    for a in attribute_names:
        f1 = (test_f1 or {}).get(a)
        ba = (test_balanced_accuracy or {}).get(a)
        t = (thresholds or {}).get(a)
        lines.append(f"| {a} | {_pct(test_error.get(a))} | "
                     f"{'n/a' if f1 is None else format(f1, '.3f')} | "
                     f"{'n/a' if ba is None else format(ba, '.3f')} | "
                     f"{'0.5' if t is None else format(t, '.3f')} |")
    errors = [e for e in test_error.values() if e == e]
    lines += [
        "", f"Mean error {_pct(sum(errors) / len(errors) if errors else None)} %. Accuracy "
        "alone misleads for rare attributes (always answering \"no\" is accurate and has F1 "
        "0): read F1 and balanced accuracy beside it. Decision thresholds were chosen on the "
        "validation split, which the fine-tune also trained on, so they are optimistic.", "",
        "## Tree", "", "![tree](tree.png)", "", "```", tree_text, "```", "",
        "## Intended use", "",
        "Research and benchmarking of multi-attribute architectures; a starting point to be "
        "evaluated again on the data of the intended application. Not validated for any "
        "decision about a person.", "",
        "## Limits", "",
        "- Trained on one dataset's images: other cameras, crops, resolutions or populations "
        "change the error, often a lot. Images must be prepared as in training (the "
        "`serving_bytes` signature does it; `serving_default` expects resized, centre-cropped "
        "RGB pixels in [0, 255]).",
        "- The probabilities are not calibrated beyond what the training loss gives.",
        "- Errors above are on one test split, without confidence intervals; small splits "
        "make per-attribute numbers noisy."]
    if people:
        lines += [
            "", "## Bias and privacy (faces and people)", "",
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
    elif unknown:
        lines += [
            "", "## If the images show people", "",
            "This dataset is not one of the public sets the project knows, so this card cannot "
            "say whether it shows people. If it does: labels about people are judgements of "
            "their labellers; measure the error per group of people before any use involving "
            "them; do not use the model to identify, track or profile people or to infer "
            "sensitive traits; and make sure the people shown agreed to this use of their "
            "images (e.g. GDPR biometric data)."]
    return "\n".join(lines) + "\n"
