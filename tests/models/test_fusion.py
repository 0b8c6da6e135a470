"""The cross-media fusion model (`crossrec`): cold items, modality masking, determinism,
early stopping, persistence, fold-in, ensembles and language-model tuning."""

from __future__ import annotations

import numpy as np
import pytest

from crossrec.data.dataset import Features
from crossrec.data.interactions import Interactions
from crossrec.models import Recommender, TrainData
from crossrec.models.base import histories_from
from crossrec.models.fusion import FusionRecommender, _FusionFit, build_item_tower

N_USERS, WARM, COLD = 60, 40, 6            # items 0-19 block A, 20-39 block B, 40-45 cold
N_ITEMS = WARM + COLD
COLD_A, COLD_B = np.arange(40, 43), np.arange(43, 46)
# the towers alone (the collaborative channel, on by default, has its own tests)
FAST = dict(dim=16, max_len=8, layers=1, negatives=16, batch_size=32, epochs=25, lr=0.01,
            threads=1, progress=False, w_align=0.1, collab=False)


def block_of(item: int) -> int:
    return int(item >= 20) if item < WARM else int(item >= 43)


@pytest.fixture(scope="module")
def data() -> TrainData:
    """Group A users (0-35) take block-A items, group B block-B; two modalities say the block
    ("genre" is exact, "text" is noisy and missing for a few items); cold items have content
    only. Valid holds two more block items per user among the warm ones."""
    rng = np.random.default_rng(0)
    users, items, times = [], [], []
    for u in range(N_USERS):
        block = np.arange(20) if u < 36 else np.arange(20, 40)
        chosen = rng.choice(block, size=10, replace=False)
        users += [u] * 10
        items += chosen.tolist()
        times += list(range(10))
    blocks = np.array([block_of(i) for i in range(N_ITEMS)])
    genre = np.eye(2, dtype=np.float32)[blocks]
    text = np.eye(2, dtype=np.float32)[blocks] @ rng.normal(size=(2, 8)).astype(np.float32)
    text += 0.3 * rng.normal(size=text.shape).astype(np.float32)
    text_mask = np.ones(N_ITEMS, bool)
    text_mask[[3, 23, 41]] = False
    text[~text_mask] = 0.0
    inter = Interactions(np.array(users), np.array(items), np.array(times, float),
                         rng.integers(1, 6, len(users)).astype(np.float32))
    cats = [("A",) if b == 0 else ("B",) for b in blocks]
    texts = [f"Item {i}. Block {'alpha' if b == 0 else 'beta'}. Filler words here"
             for i, b in enumerate(blocks)]
    return TrainData(inter, N_USERS, N_ITEMS,
                     item_features={"genre": Features(genre, np.ones(N_ITEMS, bool), "genre"),
                                    "text": Features(text, text_mask, "text")},
                     item_categories=cats, item_text=texts)


@pytest.fixture(scope="module")
def fitted(data) -> FusionRecommender:
    return FusionRecommender(**FAST).fit(data)


def test_cold_items_with_similar_content_rank_above_unrelated_ones(fitted):
    scores = fitted.score(np.arange(N_USERS))
    a_users, b_users = np.arange(36), np.arange(36, 60)
    # every group-A user scores each block-A cold item above every block-B cold item
    assert (scores[a_users][:, COLD_A].min(1) > scores[a_users][:, COLD_B].max(1)).mean() >= 0.9
    assert (scores[b_users][:, COLD_B].min(1) > scores[b_users][:, COLD_A].max(1)).mean() >= 0.9


def test_a_missing_modality_is_masked_not_zero_filled():
    import torch

    tower = build_item_tower(n_items=3, dims={"a": 4, "b": 5}, n_categories=0, d=8, dropout=0.0)
    tower.eval()
    items = torch.tensor([0, 0, 0])
    xa = torch.randn(1, 4).repeat(3, 1)
    xb = torch.cat([torch.zeros(1, 5), 100 * torch.randn(1, 5), torch.randn(1, 5)])
    present = torch.tensor([[True, False], [True, False], [True, True]])
    keep = torch.ones(3)
    with torch.no_grad():
        v, b, c, P = tower(items, {"a": xa, "b": xb}, present, keep)
        only_a = tower.proj["a"](xa[:1])
    # whatever sits in the absent modality's row, the item's vector is its present one's
    torch.testing.assert_close(v[0], v[1])
    torch.testing.assert_close(c[0], only_a[0])
    torch.testing.assert_close(v[0], only_a[0] + tower.id_emb(items[:1])[0])
    assert not torch.allclose(c[2], c[0])              # with both present the gate mixes them
    with torch.no_grad():
        _, _, c_none, _ = tower(items[:1], {"a": xa[:1], "b": xb[:1]},
                                torch.tensor([[False, False]]), torch.zeros(1))
    assert torch.count_nonzero(c_none) == 0           # no content at all: a zero vector


def test_same_seed_same_model_other_seed_differs(data, fitted):
    again = FusionRecommender(**FAST).fit(data)
    np.testing.assert_array_equal(again.item_vectors(), fitted.item_vectors())
    other = FusionRecommender(**{**FAST, "seed": 1}).fit(data)
    assert not np.array_equal(other.item_vectors(), fitted.item_vectors())


def test_score_is_an_exact_dot_product_and_fold_in_matches(data, fitted):
    users = np.arange(N_USERS)
    U = fitted.user_vectors(histories_from(data.interactions, N_USERS))
    assert U.shape == (N_USERS, FAST["dim"] + 1) and np.all(U[:, -1] == 1.0)
    np.testing.assert_allclose(U @ fitted.item_vectors().T, fitted.score(users), rtol=1e-4,
                               atol=1e-4)
    empty = fitted.user_vectors([np.zeros(0, np.int64)])
    np.testing.assert_array_equal(empty[0, :-1], 0.0)   # a newcomer gets the item biases


def test_save_load_gives_identical_scores_and_fold_in(fitted, data, tmp_path):
    fitted.save(tmp_path / "m")
    loaded = Recommender.load(tmp_path / "m")
    assert isinstance(loaded, FusionRecommender)
    users = np.arange(N_USERS)
    np.testing.assert_array_equal(loaded.score(users), fitted.score(users))
    hist = histories_from(data.interactions, N_USERS)[:5]
    np.testing.assert_array_equal(loaded.user_vectors(hist), fitted.user_vectors(hist))


def test_early_stopping_on_valid_and_refit_epochs(data):
    rng = np.random.default_rng(1)
    vu, vi = [], []
    for u in range(N_USERS):
        seen = set(data.interactions.item[data.interactions.user == u].tolist())
        block = np.arange(20) if u < 36 else np.arange(20, 40)
        vu += [u, u]
        vi += rng.choice([i for i in block if i not in seen], 2, replace=False).tolist()
    valid = TrainData(Interactions(np.array(vu), np.array(vi)), N_USERS, N_ITEMS,
                      candidates=np.arange(N_ITEMS) < WARM)
    model = FusionRecommender(**{**FAST, "epochs": 12, "patience": 2}).fit(data, valid)
    log = model.train_log_[0]
    assert 0 <= log["best_epoch"] < 12 and log["best_valid"] > 0.3
    assert model.refit_params() == {"epochs": log["best_epoch"] + 1}
    # an ensemble's refit trains each member to its own best epoch
    two = FusionRecommender(**{**FAST, "epochs": 12, "patience": 2, "ensemble": 2}).fit(data,
                                                                                        valid)
    best = [r["best_epoch"] + 1 for r in two.train_log_]
    assert len(set(best)) == 2                     # (seeded) the members peaked apart
    assert two.refit_params() == {"epochs": max(best), "member_epochs": best}
    refit = FusionRecommender(**{**FAST, "ensemble": 2, **two.refit_params()}).fit(data)
    assert [r["epochs_run"] for r in refit.train_log_] == best
    with pytest.raises(ValueError, match="member_epochs must give each of the 2"):
        FusionRecommender(**{**FAST, "ensemble": 2, "member_epochs": [3]}).fit(data)


def test_ensemble_averages_the_members_scores_on_one_scale(data):
    one = FusionRecommender(**FAST).fit(data)
    two = FusionRecommender(**{**FAST, "seed": 1}).fit(data)
    both = FusionRecommender(**{**FAST, "ensemble": 2}).fit(data)
    users = np.arange(N_USERS)
    assert both.item_vectors().shape == (N_ITEMS, 2 * (FAST["dim"] + 1))
    s1, s2 = one.score(users), two.score(users)
    # each member divided by its spread (mean over users of the std over items; all 60 users
    # are sampled), times the geometric mean spread
    d1, d2 = s1.std(axis=1).mean(), s2.std(axis=1).mean()
    expected = np.sqrt(d1 * d2) * (s1 / d1 + s2 / d2) / 2
    np.testing.assert_allclose(both.score(users), expected, rtol=1e-4, atol=1e-5)
    assert both.tower_config_["weights"] == pytest.approx([np.sqrt(d2 / d1) / 2,
                                                           np.sqrt(d1 / d2) / 2], rel=1e-4)
    # the fold-in weighs the members alike: a history gets its training user's row
    hist = histories_from(data.interactions, N_USERS)
    np.testing.assert_allclose(both.user_vectors(hist[:5]), both.user_vectors_[:5],
                               rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("options", [
    {"objective": "set", "pooling": "mean", "loss": "bpr"},
    {"user_id": True, "w_rating": 0.5, "fgm_epsilon": 0.05, "modality_dropout": 0.3},
])
def test_other_objectives_and_heads_still_rank_blocks(data, options):
    model = FusionRecommender(**{**FAST, **options}).fit(data)
    top, _ = model.recommend(np.arange(N_USERS), k=5, exclude=data.matrix,
                             candidates=np.arange(N_ITEMS) < WARM)
    assert np.isin(top[:36], np.arange(20)).mean() >= 0.8
    assert np.isin(top[36:], np.arange(20, 40)).mean() >= 0.8


def test_bad_settings_fail_clearly(data):
    with pytest.raises(ValueError, match="pooling"):
        FusionRecommender(pooling="max").fit(data)
    with pytest.raises(ValueError, match="not in the training data"):
        FusionRecommender(**{**FAST, "features": "audio"}).fit(data)
    no_text = TrainData(data.interactions, N_USERS, N_ITEMS, item_features=data.item_features)
    with pytest.raises(ValueError, match="item_text"):
        FusionRecommender(**{**FAST, "lm": "lora"}).fit(no_text)


def test_lora_tunes_only_the_adapters(data):
    import torch
    from transformers import AutoModel

    from crossrec.encoders.text import SentenceTransformerEncoder

    model = FusionRecommender(**{**FAST, "epochs": 2, "lm": "lora", "lm_batch": 4,
                                 "lm_max_length": 16, "lm_lr": 1e-2})
    run = _FusionFit(model, data, None, seed=0, epochs=2)
    run.run()
    base = AutoModel.from_pretrained(str(SentenceTransformerEncoder._resolve(None)[1]),
                                     local_files_only=True).state_dict()
    trainable, frozen_same = [], 0
    for name, p in run.lm.model.named_parameters():
        if p.requires_grad:
            trainable.append(name)
        else:
            key = name.replace("base_model.model.", "").replace(".base_layer", "")
            assert torch.equal(p.detach(), base[key]), name
            frozen_same += 1
    assert trainable and all("lora_" in n for n in trainable)
    assert frozen_same > 50
    lora_b = [p for n, p in run.lm.model.named_parameters() if "lora_B" in n]
    assert any(torch.count_nonzero(p) > 0 for p in lora_b)    # initialised at 0, now moved
