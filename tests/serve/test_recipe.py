"""The content recipe: blocks per modality (a video's parts in the text, image and audio
blocks), the same feature for a new item as for a fitted one, text queries in the text block."""

from __future__ import annotations

import numpy as np
import pytest

from crossrec.data.dataset import Features
from crossrec.recipe import ContentRecipe


class _Enc:
    def __init__(self, dim, slices=None):
        self.dim = dim
        if slices:
            self.part_slices = slices
        from crossrec.encoders import EncoderConfig

        self.config = EncoderConfig(modality="text")


def _recipe():
    encoders = {"text": _Enc(4), "image": _Enc(3),
                "video": _Enc(7, {"frames": slice(0, 3), "transcript": slice(3, 7)})}
    return ContentRecipe.for_encoders(encoders, weights={"text": 1.0, "image": 0.5})


def test_video_parts_land_in_the_text_and_image_blocks():
    r = _recipe()
    assert r.dims == {"text": 4, "image": 3} and r.dim == 7
    text = Features(np.array([[1, 0, 0, 0], [0, 0, 0, 0]], np.float32), np.array([True, False]))
    image = Features(np.zeros((2, 3), np.float32), np.array([False, False]))
    video = Features(np.array([[0, 0, 0, 0, 0, 0, 0], [0, 2, 0, 0, 0, 0, 3]], np.float32),
                     np.array([False, True]))
    out = r.combine({"text": text, "image": image, "video": video})
    np.testing.assert_allclose(out["text"].matrix, [[1, 0, 0, 0], [0, 0, 0, 1]])
    np.testing.assert_allclose(out["image"].matrix, [[0, 0, 0], [0, 1, 0]])
    np.testing.assert_allclose(out["content"].matrix, [[1, 0, 0, 0, 0, 0, 0],
                                                       [0, 0, 0, 1, 0, 0.5, 0]])
    assert out["content"].mask.tolist() == [True, True]
    q = r.text_query(np.array([[0, 3, 0, 0]], np.float32))["content"].matrix
    np.testing.assert_allclose(q, [[0, 1, 0, 0, 0, 0, 0]])
    assert {b: (s.start, s.stop) for b, s in r.block_slices().items()} == {"text": (0, 4),
                                                                          "image": (4, 7)}


def test_a_video_part_of_another_dimension_is_refused():
    with pytest.raises(ValueError, match="use the same image encoder for videos"):
        ContentRecipe.for_encoders({"image": _Enc(3), "video": _Enc(5, {"frames": slice(0, 5)})})


def test_recipe_round_trips_and_rejects_unknown_fields():
    r = _recipe()
    assert ContentRecipe(**r.model_dump()) == r
    with pytest.raises(ValueError):
        ContentRecipe(dims={"text": 4}, colour="red")


def test_content_model_places_its_own_items_where_it_fitted_them(content_artifact):
    from crossrec.artifact import load_artifact
    from crossrec.encoders import build_encoder
    from crossrec.encoders.pipeline import catalog_inputs

    art = load_artifact(content_artifact)
    recipe = ContentRecipe(**art.meta["config"]["content_recipe"])
    encoded = {}
    for m, cfg in recipe.encoders.items():
        res = build_encoder(cfg).encode(catalog_inputs(art.catalog, m, recipe.template))
        encoded[m] = Features(res.vectors, res.mask)
    placed = art.model.new_item_vectors(recipe.combine(encoded))
    np.testing.assert_allclose(placed, art.item_vectors, atol=1e-6)
    with pytest.raises(ValueError, match="need feature 'content'"):
        art.model.new_item_vectors({"text": encoded["text"]})
