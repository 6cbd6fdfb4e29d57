"""Task-transfer grouping: one small network per attribute, then how well each one's features
serve every other attribute (Zamir et al., "Taskonomy: Disentangling Task Transfer
Learning", CVPR 2018; grouping tasks by their single-task networks' representations as in
Dwivedi & Roig, "Representation Similarity Analysis for Efficient Task Taxonomy & Transfer
Learning", CVPR 2019).

    towers: the search space with one block per attribute in every layer that has several
            blocks (the single-block layers at the bottom stay shared), attribute n routed
            through block n of each: N single-attribute networks on a shared stem
    train the towers for S steps (all attributes together; no tower reads another's loss)
    F_i  = tower i's block outputs, each averaged over positions, at every layer from its
           first own one up to the grouping layer (the layer whose blocks a tree's groups
           are read at): conv2 and conv3 of `tiny`, 8 + 3 numbers per image; on the P probe
           images of the reward stream (``val_batches`` x ``eval_batch_size``, held out)
    T_ij = balanced accuracy of a k-nearest-neighbour vote for attribute j on F_i (the
           first half of the probe images vote for the second half; positive where the
           neighbours' share of positives exceeds j's base rate)
    G_ij = T_ij - mean over i' != j of T_i'j       (i's features serve j better than a
           typical tower's: an attribute readable from any features gains nothing)
    tree: average linkage on max(S) - S, S = (G + G^T) / 2, cut at each layer's block count
          (`tree.affinity_routing`, the nested cuts of the label and affinity trees)

Why this reads groups that labels cannot show: a tower sees one attribute's labels only and
nothing competes for its blocks, so it extracts the evidence that attribute needs. When an
attribute needs its whole group's state (every synthetic attribute is a multiplexer of its
group's three bits), its tower encodes that state, from which a sibling's labels are
readable while another group's are not, however uncorrelated the labels themselves are. The
lookahead affinity (`gnas_keras.methods.affinity`) measures the same relation through one
narrow trunk, where the attributes' competition for channels drowns it
(docs/grouping_methods.md).

What we changed, and what the papers leave open (the steps, the checkpoint chunk and k are
`TransferConfig` fields; the readout's scoring and centring are fixed):
- Taskonomy trains one encoder per task and a small decoder per (source, target) pair; we
  train the N towers at once on a shared stem (the space's single-block layers, which every
  tree shares anyway) and read them out with a k-nearest-neighbour vote, which has no
  training and no settings beyond k. Its transfer matrix is normalised by an ordinal
  (AHP) step; we centre each target's column on the towers' mean, so that an attribute that
  any features predict (the background's brightness) pulls no tower towards it. The
  readout is scored by balanced accuracy with the vote's threshold at the attribute's base
  rate, so that rare attributes (most of CelebA's, the fonts set's ascender) carry signal.
- Towers train with the run's learning rate, momentum and weight decay for
  ``transfer_steps`` steps (the papers train to convergence; 1,500 steps of batch 64 learn
  the synthetic set's attributes to a few per cent error).
- The towers serve the measurement only: the found tree is fine-tuned from fresh weights
  (`SearchResult.model` None), as a fixed tree is.

Resuming: the towers (weights and optimizer) are checkpointed after every chunk of
``transfer_chunk`` steps with `TransferState` (the steps done); the readout at the end is a
function of the weights and the probe stream's seed, so a resumed search ends with the
identical tree. It is also GNAS's ``--initial_tree=transfer`` (`gnas_start`), which repeats
the towers' training after a kill inside it.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Callable, Dict, List, Optional

import numpy as np

from gnas_keras.methods.base import (Method, SearchContext, SearchLogger, SearchResult,
                                     resume)
from gnas_keras.settings import require_positive, setting
from gnas_keras.space.architecture import Architecture
from gnas_keras.space.search_space import ATTRIBUTES, SearchSpace
from gnas_keras.space.tree import Routing, affinity_routing, shared_routing
from gnas_keras.training.evaluation import check_finite

if TYPE_CHECKING:
    from gnas_keras.models.supernet import Supernet
    from gnas_keras.training.loop import Loop

# Segment-seed tags of the towers' streams (`segment_seed`): training chunks and probe images.
TRAIN_STREAM, PROBE_STREAM = 9, 10


@dataclasses.dataclass
class TransferConfig:
    transfer_steps: int = setting(1500, "Task transfer: training steps of the per-attribute "
                                        "towers.")
    transfer_chunk: int = setting(100, "Task transfer: towers' steps between checkpoints and "
                                       "progress lines.")
    transfer_neighbours: int = setting(25, "Task transfer: k of the k-nearest-neighbour "
                                           "readout of one tower's features for another "
                                           "attribute.")

    def validate(self) -> None:
        require_positive(self, "transfer_steps", "transfer_chunk", "transfer_neighbours")


@dataclasses.dataclass
class TransferState:
    """Everything but the towers' weights that the search needs after a restart."""

    rng_state: Optional[Dict] = None
    evaluations: int = 0     # chunks trained
    elapsed: float = 0.0

    def to_dict(self) -> Dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Dict) -> "TransferState":
        return cls(**d)


@dataclasses.dataclass
class Towers:
    """The per-attribute networks (a supernet of `tower_space`) and their training loop."""

    model: "Supernet"
    loop: "Loop"


def tower_space(space: SearchSpace) -> SearchSpace:
    """`space` with one block per attribute, each routed to its own, in every layer from the
    first that has several blocks up; the single-block layers below stay one shared stem.
    Nothing is searched in it (every routing is `fixed_parents`: one-to-one)."""
    first = next(l for l, s in enumerate(space.layers) if s.blocks != 1)
    layers = tuple(s if l < first else dataclasses.replace(s, blocks=ATTRIBUTES,
                                                            searchable=False)
                   for l, s in enumerate(space.layers))
    return dataclasses.replace(space, name=f"{space.name}_towers", layers=layers)


def build_towers(context: SearchContext) -> Towers:
    """The towers with the run's settings, initial weights drawn from the run's seed."""
    from gnas_keras.training.loop import Loop, new_supernet
    space = tower_space(context.space)
    model = new_supernet(context.config, space, context.num_attributes, context.image_shape,
                         context.config.seed, context.strategy)
    model.set_routing(shared_routing(space, context.num_attributes))
    return Towers(model, Loop(model, context.train_data, context.config.seed))


def transfer_matrix(features: np.ndarray, labels: np.ndarray, neighbours: int) -> np.ndarray:
    """T [N, N]: T_ij = balanced accuracy of a k-nearest-neighbour vote for attribute j on
    tower i's features, float [N, P, D] for P probe images (labels int [P, N], -1 unknown).

    Each tower's features are standardised; the first half of the images (reference) vote
    for the second (queries): a query is predicted positive when the share of positives among
    its labelled neighbours (of the k nearest, Euclidean) exceeds j's share among all
    labelled reference images. Balanced accuracy, the mean of the true-positive and
    true-negative rates, is 0.5 for features that say nothing, whatever j's base rate: plain
    accuracy of a majority vote would be the base rate for every tower when j is rare (an
    ascender in 11 % of the glyphs), and the column would carry nothing. On balanced
    attributes the two are nearly equal. A query whose label is unknown, or without labelled
    neighbours, counts for nothing; an attribute without scored positives and negatives gets
    0.5 (chance)."""
    num_towers, num_images, _ = features.shape
    half = num_images // 2
    if half < 1 or num_images - half < 1:
        raise ValueError(f"transfer readout: need at least 2 probe images, got {num_images}")
    k = min(neighbours, half)
    reference, query = labels[:half], labels[half:]
    known = (reference >= 0).astype(np.float64)
    base_rate = (np.maximum(reference, 0) * known).sum(0) / np.maximum(known.sum(0), 1)
    result = np.full((num_towers, labels.shape[1]), 0.5)
    for i in range(num_towers):
        f = features[i].astype(np.float64)
        f = (f - f.mean(0)) / (f.std(0) + 1e-6)
        a, b = f[:half], f[half:]
        distance = (b * b).sum(1)[:, None] - 2.0 * b @ a.T + (a * a).sum(1)[None, :]
        nearest = np.argpartition(distance, k - 1, axis=1)[:, :k]         # [Q, k]
        votes = (np.maximum(reference, 0)[nearest] * known[nearest]).sum(1)  # [Q, N]
        counted = known[nearest].sum(1)
        predicted = votes > base_rate[None, :] * counted
        positive, negative = (query == 1) & (counted > 0), (query == 0) & (counted > 0)
        true_positive = (predicted & positive).sum(0) / np.maximum(positive.sum(0), 1)
        true_negative = (~predicted & negative).sum(0) / np.maximum(negative.sum(0), 1)
        both = (positive.sum(0) > 0) & (negative.sum(0) > 0)
        result[i] = np.where(both, (true_positive + true_negative) / 2.0, 0.5)
    return result


def transfer_gain(transfer: np.ndarray) -> np.ndarray:
    """G [N, N]: T_ij minus the mean of column j over the other towers (i' != j); the
    diagonal (a tower on its own attribute) is 0."""
    n = len(transfer)
    off = ~np.eye(n, dtype=bool)
    column_mean = (transfer * off).sum(0) / max(n - 1, 1)
    return np.where(off, transfer - column_mean[None, :], 0.0)


def measure(towers: Towers, context: SearchContext, config: TransferConfig,
            state: TransferState, save: Callable[[str], None]) -> np.ndarray:
    """Trains the towers (continuing from `state`, ``save("candidate")`` after each chunk),
    then reads them out on the probe images; returns the transfer matrix T [N, N]."""
    chunks = math.ceil(config.transfer_steps / config.transfer_chunk)
    logger: SearchLogger = context.logger
    while state.evaluations < chunks:
        c = state.evaluations
        steps = min(config.transfer_chunk, config.transfer_steps - c * config.transfer_chunk)
        done = c * config.transfer_chunk + steps
        towers.loop.restart(TRAIN_STREAM, c)
        evaluation = towers.loop.train(steps)
        check_finite(evaluation, f"transfer towers' step {done}")
        state.evaluations = c + 1
        logger.progress(f"transfer towers step {done}/{config.transfer_steps}  training "
                        f"error {evaluation.mean_error:.4f}")
        save("candidate")
    features, labels = towers.loop.pooled_block_outputs(
        readout_layers(towers.model.space), context.config.candidates.val_batches,
        iter(context.val_data(PROBE_STREAM)))
    return transfer_matrix(features, labels, config.transfer_neighbours)


def readout_layers(space: SearchSpace) -> List[int]:
    """The tower layers whose outputs are read out: every layer with one block per
    attribute from the first up to the grouping layer."""
    first = next(l for l, s in enumerate(space.layers) if s.blocks == ATTRIBUTES)
    return list(range(first, space.grouping_layer + 1))


def routing_from(space: SearchSpace, num_attributes: int, transfer: np.ndarray) -> Routing:
    """The tree of a transfer matrix (module docstring): `affinity_routing` on the gain."""
    return affinity_routing(space, num_attributes, transfer_gain(transfer))


def gnas_start(context: SearchContext) -> Callable[[], Routing]:
    """GNAS's ``initial_tree=transfer``: () -> the tree of a transfer measurement with the
    run's transfer settings (the towers' training repeats after a kill inside it)."""
    config = context.config.methods.get("transfer") or TransferConfig()

    def start() -> Routing:
        transfer = measure(build_towers(context), context, config, TransferState(),
                           lambda boundary: None)
        return routing_from(context.space, context.num_attributes, transfer)

    return start


def _search(context: SearchContext) -> SearchResult:
    config: TransferConfig = context.method_config
    saved = context.saved_state
    state = (TransferState.from_dict(saved) if saved
             else TransferState(rng_state=context.rng.bit_generator.state))
    _, save = resume(state, context.rng, context.checkpoint)
    transfer = measure(context.built, context, config, state, save)
    routing = routing_from(context.space, context.num_attributes, transfer)
    return SearchResult(Architecture.from_space(context.space, routing), None,
                        {"transfer": np.round(transfer, 6).tolist(),
                         "transfer_gain": np.round(transfer_gain(transfer), 6).tolist(),
                         "chunks": state.evaluations})


METHOD = Method("transfer", _search, TransferConfig, uses_supernet=False,
                build=build_towers,
                trackables=lambda context: {"towers": context.built.model,
                                            "towers_optimizer": context.built.model.optimizer},
                summary="Task transfer (Zamir et al. 2018, Taskonomy): one small network per "
                        "attribute; how well each one's features serve the others, clustered "
                        "into a tree.")
