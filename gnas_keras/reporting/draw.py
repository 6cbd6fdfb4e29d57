"""The tree as a picture, like the paper's Fig. 7: SVG (written as text), PNG (matplotlib, Agg),
and a PNG image tensor for TensorBoard.

A layered dendrogram from left to right: the image, then one column per conv layer with only
its live blocks, then the attributes as leaves labelled by name (FC-1..FC-3 are one block per
attribute, so the attribute stands for them, as in `Architecture.render`: the columns end at
the architecture's `head_layer`). Leaves are ordered by a depth-first walk, so edges never
cross. Every attribute group gets a colour: the group is the attribute's ancestor block at
the architecture's group layer (`Architecture.group_layer`, where the ARI is measured); a
block is drawn in its group's colour when all the attributes below it are in one group, grey
when it is shared by several. A block whose spec differs from its layer's others (width,
kernel) is labelled with it.

Coordinates are pixels, y growing downwards; one `TreeLayout` feeds both renderers.
"""

from __future__ import annotations

import dataclasses
import io as _io
import os
from typing import Dict, List, Optional, Sequence, Tuple
from xml.sax.saxutils import escape

from gnas_keras.space.architecture import Architecture
from gnas_keras.io import write_bytes_atomic, write_text_atomic

# matplotlib's tab10 without its grey, then the light half of tab20 (grey means shared).
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#bcbd22", "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896",
           "#c5b0d5", "#c49c94", "#f7b6d2", "#dbdb8d", "#9edae5")
SHARED = "#555555"       # a block above more than one group
ROW = 18                 # pixels per leaf
COLUMN = 90              # pixels per layer column
MARGIN = 20
HEADER = 40              # title and column names
LABEL_CHARS_PX = 7       # approximate width of one label character at the font size used


@dataclasses.dataclass(frozen=True)
class Node:
    """One drawn node. column: 0 image, 1.. conv layers, last: attributes (leaves).
    block: block index in its layer (attribute index for a leaf, 0 for the image)."""

    column: int
    block: int
    x: float
    y: float
    colour: str
    label: str
    leaf: bool


@dataclasses.dataclass
class TreeLayout:
    """Nodes, edges (parent index, child index into `nodes`), column titles and size (px)."""

    nodes: List[Node]
    edges: List[Tuple[int, int]]
    columns: List[Tuple[float, str]]   # (x, title)
    width: int
    height: int
    title: str = ""

    @property
    def leaves(self) -> List[Node]:
        return [n for n in self.nodes if n.leaf]


def layout(architecture: Architecture, attribute_names: Sequence[str], title: str = "",
           group_layer: Optional[int] = None) -> TreeLayout:
    """Positions for the live blocks of `architecture` (see the module docstring).

    group_layer: the layer whose blocks define the colours (default: the architecture's).
    """
    routing = architecture.routing
    if group_layer is None:
        group_layer = architecture.grouping_layer
    n = len(attribute_names)
    conv = architecture.head_layer                # shared layers 0..conv-1; heads from conv
    uniform = [len(set(layer)) == 1 for layer in architecture.blocks]

    def block_label(l: int, j: int) -> str:
        if uniform[l]:
            return str(j)
        b = architecture.blocks[l][j]
        return f"{j}: {f'{b.kernel}x{b.kernel} ' if b.op == 'conv' else ''}w{b.width}"

    descendants = routing.descendants()
    children: Dict[Tuple[int, int], List[int]] = {}
    for l in range(1, conv + 1):
        for j, p in enumerate(routing.parents[l]):
            if descendants[l][j]:
                children.setdefault((l - 1, p), []).append(j)

    # Leaves in depth-first order; fc1 block j is attribute j.
    order: List[int] = []

    def walk(l: int, j: int) -> None:
        if l == conv:
            order.append(j)
            return
        for c in children.get((l, j), []):
            walk(l + 1, c)

    walk(0, 0)
    group_of = routing.grouping(group_layer)
    colour_of: Dict[int, str] = {}
    for a in order:                                # colours in leaf order: top group first
        colour_of.setdefault(group_of[a], PALETTE[len(colour_of) % len(PALETTE)])

    def colour(attributes) -> str:
        groups = {group_of[a] for a in attributes}
        return colour_of[groups.pop()] if len(groups) == 1 else SHARED

    def x_of(column: int) -> float:
        return MARGIN + 10 + column * COLUMN

    slot = {a: i for i, a in enumerate(order)}
    y_leaf = {a: MARGIN + HEADER + ROW * (i + 0.5) for a, i in slot.items()}
    nodes: List[Node] = []
    index: Dict[Tuple[int, int], int] = {}

    def add(node: Node, key: Tuple[int, int]) -> None:
        index[key] = len(nodes)
        nodes.append(node)

    add(Node(0, 0, x_of(0), sum(y_leaf.values()) / n, colour(range(n)), "image", False),
        (-1, 0))
    edges = []
    for l in range(conv):
        for j, below in enumerate(descendants[l]):
            if below:
                y = sum(y_leaf[a] for a in below) / len(below)
                add(Node(l + 1, j, x_of(l + 1), y, colour(below), block_label(l, j), False),
                    (l, j))
                parent = (-1, 0) if l == 0 else (l - 1, routing.parents[l][j])
                edges.append((index[parent], index[(l, j)]))
    for a in order:
        add(Node(conv + 1, a, x_of(conv + 1), y_leaf[a], colour([a]), attribute_names[a],
                 True), (conv, a))
        edges.append((index[(conv - 1, routing.parents[conv][a])], index[(conv, a)]))
    columns = [(x_of(0), "image")] + [(x_of(l + 1), architecture.layer_names[l])
                                      for l in range(conv)]
    columns.append((x_of(conv + 1), "attributes"))
    label_px = LABEL_CHARS_PX * max(len(a) for a in attribute_names)
    width = int(x_of(conv + 1) + 12 + label_px + MARGIN)
    height = int(MARGIN * 2 + HEADER + ROW * n)
    return TreeLayout(nodes, edges, columns, width, max(height, 160), title)


def _segments(tree: TreeLayout):
    """Dendrogram connectors, (points, colour): a horizontal stem out of the parent in the
    parent's colour, then vertical and horizontal to the child in the child's colour."""
    for p, c in tree.edges:
        parent, child = tree.nodes[p], tree.nodes[c]
        mid = (parent.x + child.x) / 2
        yield [(parent.x, parent.y), (mid, parent.y)], parent.colour
        yield [(mid, parent.y), (mid, child.y), (child.x, child.y)], child.colour


def to_svg(tree: TreeLayout) -> str:
    """The picture as an SVG document. Leaf labels are ``<text class="leaf">``."""
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{tree.width}" '
           f'height="{tree.height}" viewBox="0 0 {tree.width} {tree.height}" '
           'font-family="sans-serif" font-size="12">',
           f'<rect width="{tree.width}" height="{tree.height}" fill="white"/>']
    if tree.title:
        out.append(f'<text class="title" x="{MARGIN}" y="{MARGIN}" font-size="14" '
                   f'font-weight="bold">{escape(tree.title)}</text>')
    for x, name in tree.columns:
        out.append(f'<text class="column" x="{x:.1f}" y="{MARGIN + HEADER - 12}" '
                   f'text-anchor="middle" fill="#333">{escape(name)}</text>')
    for line, colour in _segments(tree):
        points = " ".join(f"{x:.1f},{y:.1f}" for x, y in line)
        out.append(f'<polyline points="{points}" fill="none" stroke="{colour}" '
                   'stroke-width="1.5"/>')
    for node in tree.nodes:
        out.append(f'<circle cx="{node.x:.1f}" cy="{node.y:.1f}" r="{3 if node.leaf else 6}" '
                   f'fill="{node.colour}"/>')
        if node.leaf:
            out.append(f'<text class="leaf" x="{node.x + 8:.1f}" y="{node.y + 4:.1f}" '
                       f'fill="{node.colour}">{escape(node.label)}</text>')
        elif node.column > 0:
            out.append(f'<text class="block" x="{node.x:.1f}" y="{node.y - 9:.1f}" '
                       f'text-anchor="middle" font-size="10" fill="#333">'
                       f'{escape(node.label)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def to_png(tree: TreeLayout, dpi: int = 100) -> bytes:
    """The picture as PNG bytes (matplotlib's Agg canvas; no pyplot global state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(tree.width / dpi, tree.height / dpi), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, tree.width)
    ax.set_ylim(tree.height, 0)
    ax.axis("off")
    if tree.title:
        ax.text(MARGIN, MARGIN, tree.title, fontsize=10, fontweight="bold", va="baseline")
    for x, name in tree.columns:
        ax.text(x, MARGIN + HEADER - 12, name, fontsize=8.5, ha="center", color="#333")
    for line, colour in _segments(tree):
        xs, ys = zip(*line)
        ax.plot(xs, ys, color=colour, linewidth=1.2)
    for node in tree.nodes:
        ax.plot([node.x], [node.y], "o", color=node.colour, markersize=4 if node.leaf else 8)
        if node.leaf:
            ax.text(node.x + 8, node.y, node.label, fontsize=8.5, va="center",
                    color=node.colour)
        elif node.column > 0:
            ax.text(node.x, node.y - 8, node.label, fontsize=7, ha="center", color="#333")
    buffer = _io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


def write_pictures(architecture: Architecture, attribute_names: Sequence[str], stem: str,
                   title: str = "") -> Tuple[str, str]:
    """Writes ``stem.svg`` and ``stem.png`` (each atomically); returns both paths."""
    tree = layout(architecture, attribute_names, title)
    write_text_atomic(stem + ".svg", to_svg(tree))
    write_bytes_atomic(stem + ".png", to_png(tree))
    return stem + ".svg", stem + ".png"


def image_tensor(architecture: Architecture, attribute_names: Sequence[str], title: str = ""):
    """The picture as a uint8 tensor [1, height, width, 4] for ``tf.summary.image``."""
    import tensorflow as tf

    png = to_png(layout(architecture, attribute_names, title))
    return tf.image.decode_png(png, channels=4)[tf.newaxis]
