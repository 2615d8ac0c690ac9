"""The shapes world: 32x32 RGB images of one filled shape on black, and captions for them.

    render.py     the four attributes and the renderer (the world's data, drawn on the fly)
    captions.py   captions of attribute rows, the prompt sets that measure quality, the caption bank
    generator.py  G: a latent GAN (kind shapes-gan)
    captioner.py  the attribute captioner of captioned pair builds (kind shapes-captioner)
    judge.py      the attribute CNN (kind shapes-judge) and the judge "shapes-attributes" built on it

f is an open_clip CLIP trained by tron.recipes.shapes, which also trains G, the captioner and the
judge's CNN. The names of the renderer, the captions and the models are importable from here;
the judge (which samples whole worlds) from tron.zoo.shapes.judge.
"""
from .captioner import ShapesCaptioner
from .captions import (
    caption,
    caption_bank,
    caption_dropout,
    describe,
    draw_granularity,
    full_captions,
    full_prompt_set,
    granularity_groups,
    parse_prompt,
    partial_prompt_set,
    random_captions,
)
from .generator import ShapesDecoder, ShapesGenerator, mlp
from .render import (
    ATTRIBUTE_NAMES,
    ATTRIBUTES,
    COLORS,
    JITTER,
    NUM_COMBINATIONS,
    NUM_VALUES,
    POSITIONS,
    SHAPES,
    SIDE,
    SIZE_RANGES,
    SIZES,
    all_combinations,
    combination_index,
    draw,
    render,
    sample_attributes,
    sample_images,
)

__all__ = [
    "ATTRIBUTES", "ATTRIBUTE_NAMES", "COLORS", "JITTER", "NUM_COMBINATIONS", "NUM_VALUES", "POSITIONS", "SHAPES", "SIDE",
    "SIZES", "SIZE_RANGES", "ShapesCaptioner", "ShapesDecoder", "ShapesGenerator", "all_combinations", "caption",
    "caption_bank", "caption_dropout", "combination_index", "describe", "draw", "draw_granularity", "full_captions",
    "full_prompt_set", "granularity_groups", "mlp", "parse_prompt", "partial_prompt_set", "random_captions", "render",
    "sample_attributes", "sample_images",
]
