"""The product-agnostic categories of the benchmark (after "Rethinking Benchmarking Framework of Self-Supervised
Learning Approaches for Anomaly Localization"): defect categories and background categories, with definitions.
"""

from __future__ import annotations

DEFECT_CATEGORIES: tuple[str, ...] = ("structural", "surface", "contamination", "combined")
BACKGROUNDS: tuple[str, ...] = ("with", "without")
LABELS: tuple[str, ...] = ("good", "anomalous")
SPLITS: tuple[str, ...] = ("train", "validation", "test")

DEFECT_DEFINITIONS: dict[str, str] = {
    "structural": "the object's shape is wrong: distorted or missing parts, holes, bends, cracks through it",
    "surface": "the shape is intact but its surface is damaged over a small area: scratches, dents, rust, "
    "discoloured patches",
    "contamination": "foreign material lies on the object: glue, dust, dirt, fibres, other-coloured blobs",
    "combined": "several defects at once, in several connected components (e.g. a crack and a glue blob)",
}
BACKGROUND_DEFINITIONS: dict[str, str] = {
    "with": "the product sits on a background that is not part of it (objects: nuts, capsules, bottles)",
    "without": "the product fills the whole frame (textures: fabric, tiles, wood, magnetic tile surface)",
}

CATEGORY_SEPARATOR = "|"


def join_categories(categories: set[str] | list[str] | tuple[str, ...]) -> str:
    """Serialise a set of defect categories in canonical order, e.g. ``{"surface", "structural"}`` →
    ``"structural|surface"``; the empty set is ``""``.
    """
    return CATEGORY_SEPARATOR.join(c for c in DEFECT_CATEGORIES if c in set(categories))


def split_categories(value: object) -> tuple[str, ...]:
    """Inverse of :func:`join_categories`; tolerates NaN/None from CSV readers as the empty set."""
    if not isinstance(value, str) or not value:
        return ()
    return tuple(value.split(CATEGORY_SEPARATOR))
