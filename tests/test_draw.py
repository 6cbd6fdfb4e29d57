"""The tree picture: valid SVG and PNG files, one leaf label per attribute, live blocks only,
group colours, and the TensorBoard image of every search round."""

import io
import os
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from PIL import Image

from gnas_keras.reporting import draw
from gnas_keras.space.architecture import Architecture, BlockSpec
from gnas_keras.space.search_space import get_space
from gnas_keras.space.tree import Routing, random_routing, shared_routing

SVG = "{http://www.w3.org/2000/svg}"
NAMES = [f"attr <{i}> & co" for i in range(16)]  # markup characters must be escaped


def leaf_labels(svg_text):
    root = ET.fromstring(svg_text)
    return [t.text for t in root.iter(f"{SVG}text") if t.get("class") == "leaf"]


@pytest.mark.parametrize("space_name, seed", [("tiny", 0), ("tiny", 3), ("deep_thin", 1)])
def test_picture_files_are_valid_images_with_one_leaf_per_attribute(space_name, seed, tmp_path):
    space = get_space(space_name)
    routing = random_routing(space, len(NAMES), np.random.default_rng(seed))
    svg_path, png_path = draw.write_pictures(Architecture.from_space(space, routing), NAMES, str(tmp_path / "tree"),
                                             title="a <title>")
    labels = leaf_labels(open(svg_path).read())
    assert sorted(labels) == sorted(NAMES) and len(labels) == len(NAMES)
    with Image.open(png_path) as image:
        image.verify()
    with Image.open(png_path) as image:
        tree = draw.layout(Architecture.from_space(space, routing), NAMES)
        assert image.format == "PNG" and image.size == (tree.width, tree.height)
    assert sorted(n.label for n in tree.leaves) == sorted(NAMES)
    assert not [f for f in os.listdir(tmp_path) if ".tmp" in f]


def test_only_live_blocks_are_drawn_and_groups_have_their_own_colours():
    space = get_space("tiny")
    n = 16
    # conv3 blocks 0 and 2 used (by 8 attributes each), through conv2 blocks 1 and 3.
    routing = Routing.from_lists([[0], [0] * 4, [1, 0, 3, 0], [0] * 8 + [2] * 8,
                                  range(n), range(n)])
    tree = draw.layout(Architecture.from_space(space, routing), NAMES[:n])
    blocks = {(node.column, node.block) for node in tree.nodes if not node.leaf}
    assert blocks == {(0, 0), (1, 0), (2, 1), (2, 3), (3, 0), (3, 2)}
    leaves = {node.block: node.colour for node in tree.leaves}
    assert len({leaves[a] for a in range(8)}) == 1 and len({leaves[a] for a in range(8, 16)}) == 1
    assert leaves[0] != leaves[8] and draw.SHARED not in leaves.values()
    conv1 = next(node for node in tree.nodes if (node.column, node.block) == (1, 0))
    assert conv1.colour == draw.SHARED          # above both groups
    assert len(tree.edges) == len(tree.nodes) - 1  # a tree


def test_shared_tree_is_one_colour():
    space = get_space("tiny")
    tree = draw.layout(Architecture.from_space(space, shared_routing(space, 16)), NAMES)
    assert len({node.colour for node in tree.nodes}) == 1


def test_image_tensor_and_reporter_round_logs_the_picture(tmp_path):
    import tensorflow as tf

    from gnas_keras.training.evaluation import Evaluation
    from gnas_keras.methods.gnas import RoundResult
    from gnas_keras.reporting.reporter import SearchReporter

    space = get_space("tiny")
    routing = random_routing(space, 16, np.random.default_rng(0))
    image = draw.image_tensor(Architecture.from_space(space, routing), NAMES)
    assert image.dtype == tf.uint8 and image.shape[0] == 1 and image.shape[-1] == 4
    reporter = SearchReporter(str(tmp_path), space, NAMES, out=lambda line: None)
    reporter.round(RoundResult(1, routing, True, 0.1, {}, {},
                               Evaluation(0.5, np.full(16, 0.5)), 1.0))
    reporter.close()
    events = [f for f in os.listdir(tmp_path) if f.startswith("events")]
    tags = set()
    for event in tf.compat.v1.train.summary_iterator(str(tmp_path / events[0])):
        for value in event.summary.value:
            tags.add(value.tag)
            if value.tag == "tree_image" and value.metadata.plugin_data.plugin_name == "images":
                width, height, png = tf.make_ndarray(value.tensor)[:3]
                Image.open(io.BytesIO(png)).verify()
    assert {"tree", "tree_image"} <= tags


def test_blocks_of_other_widths_are_labelled_with_their_spec():
    """An architecture whose blocks differ within a layer (GALM, adaptive branching) is drawn
    with each differing block's kernel and width."""
    space = get_space("tiny")
    base = Architecture.from_space(space, shared_routing(space, 4))
    blocks = list(base.blocks)
    blocks[1] = (BlockSpec("conv", 8, 3), BlockSpec("conv", 12, 5)) + blocks[1][2:]
    architecture = Architecture(base.layer_names, base.parents, tuple(blocks),
                                base.group_layer)
    labels = {n.label for n in draw.layout(architecture, NAMES[:4]).nodes if n.column == 2}
    assert labels == {"0: 3x3 w8"}  # only block 0 of conv2 is live in the shared tree
