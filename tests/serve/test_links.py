"""ContentLinks: which block of the content space links two items, on a case worked by hand."""

from __future__ import annotations

import numpy as np
import pytest

from crossrec.recipe import ContentRecipe
from crossrec.serve.links import ContentLinks

# four items, a 2-d text block and a 2-d image block (columns 0-1 and 2-3)
TEXT = [[1, 0], [1, 0], [0, 1], [0, 1]]
IMAGE = [[1, 0], [0.8, 0.6], [1, 0], [0.8, 0.6]]
ROWS = np.hstack([TEXT, IMAGE]).astype(np.float32)
RECIPE = ContentRecipe(dims={"text": 2, "image": 2})


@pytest.mark.parametrize("rank", [64, 1])      # 1: each block's centred rows lie on one line
def test_the_block_most_alike_against_the_catalog_links_two_items(rank):
    # text: mean (0.5, 0.5), centred rows ±(0.5, -0.5), |XᵀX|_F / n = 2 / 4 = 0.5
    # image: mean (0.9, 0.3), centred rows ±(0.1, -0.3), |XᵀX|_F / n = 0.4 / 4 = 0.1
    # (0, 1): text 0.5 / 0.5 = +1, image -0.1 / 0.1 = -1 -> text
    # (0, 2): text -1, image +1 -> image, though their raw text product (0) is below image's (1)
    # (1, 2): text -1, image -1 -> no block above the average
    links = ContentLinks(ROWS, RECIPE, rank=rank)
    assert links.modalities([(0, 1), (0, 2), (1, 2), (3, 1)]) == \
        ["text", "image", "collaborative", "image"]
    # an item added at run time with text only: linked by text or not at all, never by image
    links.add(4, np.array([1, 0, 0, 0], np.float32))
    assert links.has_blocks(4) == {"text": True, "image": False}
    assert links.modalities([(4, 0), (4, 2), (2, 4)]) == ["text", "collaborative",
                                                          "collaborative"]
    assert links.has_blocks(9) is None and links.modalities([(9, 0)]) == ["collaborative"]
    assert links.modalities([]) == []


def test_raw_products_would_say_image_where_the_centred_ones_say_text():
    """Image vectors all alike: raw dot products favour the image block for every pair."""
    text = [[1, 0], [0.6, 0.8], [0, 1], [-0.6, 0.8]]
    image = [[1, 0.05], [1, 0.0], [1, -0.05], [1, 0.1]]
    rows = np.hstack([text, image]).astype(np.float32)
    raw_text, raw_image = rows[0, :2] @ rows[1, :2], rows[0, 2:] @ rows[1, 2:]
    assert raw_image > raw_text                          # 1.0 against 0.6
    assert ContentLinks(rows, RECIPE).modalities([(0, 1)]) == ["text"]
