"""crossrec: the cross-media fusion model (a two-tower, multi-task recommender over every medium).

Item tower (per item i, modalities m with features x_im and presence mask):

    p_im = MLP_m(x_im / |x_im|)                     (d,)  one projection per modality
    a_i  = softmax over present m of gate_m(p_im)         masked: absent modalities get 0
    c_i  = Σ_m a_im p_im                            (d,)  content vector (0 without content)
    v_i  = c_i + keep_i · e_i                       (d,)  item-id embedding, dropped with
                                                          probability id_dropout in training
                                                          (on the scored side; the history
                                                          side keeps it unless
                                                          id_dropout_inputs) and always off
                                                          for items never seen
    b_i  = MLP_b(c_i) + s · MLP_p(c_i) + keep_i · β_i     bias from content (MLP_p is trained
                                                          on log popularity when w_pop > 0),
                                                          plus a learned id offset

User tower: the user's last ``max_len`` items as v vectors (oldest left, padded on the left)
plus a learned slot embedding (the last slot is the most recent item: recency), through a small
transformer (causal for the "next" objective) or a running mean (``pooling="mean"``), then a
linear map; the output at the last slot is the user vector u (plus an optional user-id
embedding, which fold-in of a new history cannot have).

Score: ``[u, 1] · [v_i, b_i]``, one dot product, so ``item_vectors()`` ((n_items, dim + 1))
and ``user_vectors(histories)`` go straight into an (ANN) index.

Losses (each weighted; weight 0 switches it off):

- ranking (``w_rank``): sampled softmax over the batch's positives plus ``negatives`` uniform
  items, with the log of each candidate's chance of being sampled subtracted (``logq``); or,
  with ``in_batch=False``, over the target and the uniform negatives only (cheaper on large
  catalogs); or BPR against one of those candidates; with
  ``same_medium`` only items of the target's medium compete (a music target is ranked among
  music). Objective "next": every slot predicts the next item (SASRec-style; per epoch each
  user gives ceil(n / max_len) windows, at most ``max_windows``, the first ending at the
  latest item, the others at random points); "set": a random
  part of the history predicts the rest (with probability ``medium_holdout`` the rest is every
  item of one medium: the cross-media case).
- alignment (``w_align``): InfoNCE between an item's modality projections (all pairs).
- category head (``w_category``): multi-label genres / categories from v_i.
- rating head (``w_rating``): standardised rating from u ⊙ v_i (rows with a known value).
- popularity head (``w_pop``): the content vector predicts the item's standardised log
  popularity (items with interactions); the bias adds it times a learned scale, so a cold item
  gets the popularity its content suggests.
- collaborative head (``w_cf``): the content vector c_i predicts (through a linear map) the
  item's implicit-ALS factors fitted on the same training data, for items with interactions:
  content learns what co-consumption says (the CB2CF idea, as one more task). ``cf_init``
  starts the item-id embeddings at those ALS factors.

Collaborative channel (``collab``, on by default; ``collab=False`` for the towers alone): next
to the two towers, the model fits the content-to-
collaborative map of :mod:`crossrec.models.cb2cf` (implicit ALS on the training matrix; a ridge
map from the items' content to the ALS item factors and log popularity for items without
interactions) and adds its score with a weight: ``score = [u, 1] · [v_i, b_i] + w · s ·
[x_u, 1] · [ŷ_i, p̂_i]``, where ``s`` puts the two scores on one scale (the ratio of their
standard deviations over training users and all items) and ``w`` is chosen on valid NDCG@20
from :data:`COLLAB_WEIGHTS` after the towers are trained (or fixed by ``collab_weight``). The
vectors are concatenated, so scoring stays one dot product; a new history is folded into the
channel by the ALS least-squares step, a new item placed by the ridge map. With ``collab_tune``
(the default) and valid data, the channel's own settings (ALS regularisation, ridge, popularity
weight: ``cb2cf``'s grid, plus any ``collab_grid`` adds, e.g. ``{"factors": [64, 128],
"alpha": [1.0, 4.0]}``; the regularisation alone without content) are first chosen on valid
NDCG@20 of the channel alone, as ``cb2cf`` is tuned; ``collab_regularization``,
``collab_ridge`` and ``collab_pop_weight`` (at ``collab_factors`` and ``collab_alpha``) are the
settings used otherwise. The refit carries
the chosen settings and weight. The weight is chosen on a seeded share of the valid users
(``collab_holdout``, half by default; 0: all of them) that the towers do not stop early on:
choosing the towers' epoch on the same users inflates their valid score against the channel's
(on Douban P3 the towers scored 0.0857 on valid and 0.0584 on test). The channel's settings,
which do not involve the towers, are chosen on all the valid users.

On data of several media (``item_medium``) the tuning also tries the cross-media channel
``collab_kind="usersvd"`` (:mod:`crossrec.models.usersvd`: user-kNN with every user a neighbour,
in ``collab_svd_factors`` dimensions, 128 as ``usersvd``'s own; source medium None or each
medium, popularity weight 0.1 or 0.3, its ridge term off or on (``USERSVD_RIDGES``); as set by
``collab_source_medium``, ``collab_pop_weight``, ``collab_ridge_weight`` (default 0: off) and
``collab_ridge`` (its λ) otherwise), which carries a user's taste from one medium to another
where ALS factors do not (Douban books -> music). A history is folded into it without a refit;
it places no new items (their channel part is 0).

Features wider than ``input_dim`` (TF-IDF, image vectors) are first reduced by a truncated SVD
over the catalog (unsupervised; every row, the catalog's too, is projected as ``x @ Vt.T``),
every feature row is L2-normalised.

New items (live cold start, text queries): ``new_item_vectors(features)`` runs the saved item
tower (the SVD projections, the modality MLPs and gates, the bias and popularity heads; saved as
``item_tower_{k}.npz`` per ensemble member) on content rows encoded like the training features,
with no id embedding or id offset: exactly what a never-seen catalog item gets, so for such an
item it reproduces its ``item_vectors()`` row. Features the model was trained on but not given
count as absent (a text query has only text). With ``lm`` other than "frozen" the text feature
comes from the tuned language model, which is saved with the model (``text_lm_{k}.npz`` per
ensemble member: the ``peft`` adapter weights for "lora"/"ia3", every weight for "full"; the base
MiniLM's revision is checked when it is rebuilt): ``reads_text`` is True and
``new_item_vectors(features, texts)`` encodes the new items' composed texts through it.

Regularisation: weight decay, dropout, modality dropout (each present modality of an item is
hidden with probability ``modality_dropout``, one always kept), id dropout, FGM adversarial
perturbation of the id embeddings (``fgm_epsilon``), early stopping on valid NDCG@20,
``ensemble`` seeds whose scores are averaged (their vectors concatenated), each member's score
divided by its spread over the items first, so that members trained to different scales count
alike (``tower_config_["weights"]``); a refit trains each member to its own best valid epoch
(``member_epochs``).

Language-model tuning (``lm``): "frozen" uses the cached ``text`` features; "lora", "ia3"
(through ``peft``) and "full" re-encode item text (``TrainData.item_text``) through MiniLM inside
training: every step up to ``lm_batch`` of the batch's items are encoded with gradients, the
rest come from a cache re-encoded before every epoch and every validation, and once more with
the final weights for the saved item vectors; ``text_field_dropout`` drops sentences of the item
text (never the first) as augmentation.

Example:
    >>> model = FusionRecommender(dim=64, epochs=20).fit(train, valid)   # TrainData
    >>> model.score(np.array([0, 1]))                  # (2, n_items) float32
    >>> model.user_vectors([np.array([3, 17, 5])])     # (1, 65) fold-in
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from crossrec.data.dataset import Features
from crossrec.models.base import Recommender, TrainData, VectorModel, histories_from, register
from crossrec.training import EarlyStoppedRefit

log = logging.getLogger(__name__)

LM_MODES = ("frozen", "lora", "ia3", "full")
POOLINGS = ("transformer", "mean")
OBJECTIVES = ("next", "set")
LOSSES = ("softmax", "bpr")
COLLAB_KINDS = ("als", "usersvd")
USERSVD_POP_WEIGHTS = (0.1, 0.3)
"""The popularity weights the ``usersvd`` channel is tuned over (``userknn``'s grid)."""
USERSVD_RIDGES = ((0.0, 10.0), (0.1, 10.0), (0.1, 100.0), (1.0, 10.0), (1.0, 100.0))
"""(ridge_weight, ridge) of the ``usersvd`` channel's ridge term tuned over (``usersvd``'s
grid; weight 0: no ridge term)."""
COLLAB_GRID_KEYS = ("regularization", "ridge", "pop_weight", "factors", "alpha")
"""The ``cb2cf`` settings ``collab_grid`` may tune the ALS channel over."""
COLLAB_WEIGHTS = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)
"""Weights of the collaborative channel (relative to the towers' score scale) tried on valid; up
to 64, where the channel all but decides the ranking (P2 valid chose the then largest weight, 4)."""
ITEM_TOWER_PARTS = ("proj", "gate", "bias_head", "pop_head", "pop_scale")
"""The item-tower weights a new item needs (not the id embedding, id offset or category head)."""


def _nn():
    import torch
    from torch import nn
    return torch, nn


def build_item_tower(n_items: int, dims: dict[str, int], n_categories: int, d: int,
                     dropout: float):
    torch, nn = _nn()

    class ItemTower(nn.Module):
        """Item vectors from modality features plus an id embedding (see the module doc)."""

        def __init__(self):
            super().__init__()
            self.names = sorted(dims)
            self.proj = nn.ModuleDict({m: nn.Sequential(
                nn.Linear(dims[m], d), nn.GELU(), nn.Dropout(dropout), nn.Linear(d, d))
                for m in self.names})
            self.gate = nn.ModuleDict({m: nn.Linear(d, 1) for m in self.names})
            self.id_emb = nn.Embedding(n_items, d)
            nn.init.normal_(self.id_emb.weight, std=0.05)
            self.id_bias = nn.Embedding(n_items, 1)
            nn.init.zeros_(self.id_bias.weight)
            self.bias_head = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, 1))
            self.pop_head = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, 1))
            self.pop_scale = nn.Parameter(torch.zeros(()))
            self.cat_head = nn.Linear(d, n_categories) if n_categories else None

        def forward(self, items, feats: dict, present, keep):
            """items (U,) long; feats m -> (U, dim_m); present (U, M) bool; keep (U,) float.
            Returns v (U, d), b (U,), c (U, d) content vectors, P (U, M, d) projections."""
            n = items.shape[0]
            if self.names:
                P = torch.stack([self.proj[m](feats[m]) for m in self.names], 1)  # (U, M, d)
                P = torch.where(present[..., None], P, torch.zeros((), dtype=P.dtype))
                g = torch.cat([self.gate[m](P[:, j]) for j, m in enumerate(self.names)], 1)
                # absent modalities get weight exactly 0 (exp(-1e9) underflows); an item with
                # none present averages zeros, so its content vector is 0
                w = torch.softmax(g.masked_fill(~present, -1e9), 1)              # (U, M)
                c = (w[..., None] * P).sum(1)                                    # (U, d)
            else:
                P = torch.zeros(n, 0, self.id_emb.embedding_dim)
                c = torch.zeros(n, self.id_emb.embedding_dim)
            v = c + keep[:, None] * self.id_emb(items)
            self.pop = self.pop_head(c).squeeze(-1)           # predicted log popularity
            b = self.bias_head(c).squeeze(-1) + self.pop_scale * self.pop \
                + keep * self.id_bias(items).squeeze(-1)
            return v, b, c, P

    return ItemTower()


def build_user_tower(d: int, max_len: int, layers: int, heads: int, dropout: float,
                     pooling: str, n_users: int):
    torch, nn = _nn()

    class UserTower(nn.Module):
        """(B, T, d) item vectors of left-padded histories -> (B, T, d) outputs per slot."""

        def __init__(self):
            super().__init__()
            self.slot = nn.Embedding(max_len, d)
            nn.init.normal_(self.slot.weight, std=0.02)
            self.drop = nn.Dropout(dropout)
            if pooling == "transformer":
                layer = nn.TransformerEncoderLayer(d, heads, 2 * d, dropout, batch_first=True,
                                                   norm_first=True, activation="gelu")
                self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
            self.norm = nn.LayerNorm(d)
            self.out = nn.Linear(d, d)
            self.user_emb = nn.Embedding(n_users, d) if n_users else None
            if self.user_emb is not None:
                nn.init.zeros_(self.user_emb.weight)

        def forward(self, x, valid, causal: bool, users=None):
            """x (B, T, d); valid (B, T) bool; users (B,) long or None -> (B, T, d)."""
            B, T, _ = x.shape
            h = self.drop(x + self.slot.weight[max_len - T:][None])
            h = torch.where(valid[..., None], h, torch.zeros((), dtype=h.dtype))
            if pooling == "transformer":
                eye = torch.eye(T, dtype=torch.bool)
                allowed = valid[:, None, :] | eye[None]                          # (B, T, T)
                if causal:
                    allowed = allowed & torch.tril(torch.ones(T, T, dtype=torch.bool))[None]
                mask = (~allowed).repeat_interleave(heads, 0)                     # (B*H, T, T)
                h = self.encoder(h, mask=mask)
            else:                                              # running mean over the slots
                count = valid.float().cumsum(1).clamp(min=1.0)[..., None]
                h = h.cumsum(1) / count if causal else \
                    (h.sum(1, keepdim=True) / count[:, -1:]).expand(B, T, -1)
            out = self.out(self.norm(h))
            if self.user_emb is not None and users is not None:
                out = out + self.user_emb(users)[:, None, :]
            return out

    return UserTower()


def base_text_lm() -> tuple[str, str]:
    """(folder, revision digest) of the MiniLM the tuned modes start from."""
    from crossrec.encoders.text import SentenceTransformerEncoder, _model_files, files_digest

    path = SentenceTransformerEncoder._resolve(None)[1]
    return str(path), files_digest(_model_files(path))


def build_text_lm(path: str, mode: str, max_length: int, lora_r: int):
    """MiniLM (or any sentence-transformers folder's transformer) as a module: texts -> (n, 384)
    mean-pooled, L2-normalised; in "lora"/"ia3" mode wrapped by ``peft`` so only adapters train."""
    torch, nn = _nn()
    from transformers import AutoModel, AutoTokenizer

    class TextLM(nn.Module):
        def __init__(self):
            super().__init__()
            self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
            model = AutoModel.from_pretrained(path, local_files_only=True)
            if mode == "lora":
                from peft import LoraConfig, get_peft_model
                model = get_peft_model(model, LoraConfig(r=lora_r, lora_alpha=2 * lora_r,
                                                         lora_dropout=0.0,
                                                         target_modules=["query", "value"]))
            elif mode == "ia3":
                from peft import IA3Config, get_peft_model
                model = get_peft_model(model, IA3Config(
                    target_modules=["key", "value", "intermediate.dense"],
                    feedforward_modules=["intermediate.dense"]))
            elif mode != "full":
                raise ValueError(f"unknown lm mode {mode!r}")
            self.model = model
            self.dim = int(model.config.hidden_size)

        def tuned_state(self) -> dict[str, np.ndarray]:
            """The weights tuning changed: the adapters (peft modes) or every weight (full)."""
            if mode == "full":
                state = self.model.state_dict()
            else:
                from peft import get_peft_model_state_dict
                state = get_peft_model_state_dict(self.model)
            return {k: v.detach().cpu().float().numpy().copy() for k, v in state.items()}

        def load_tuned_state(self, state: dict[str, np.ndarray]) -> None:
            tensors = {k: torch.from_numpy(np.asarray(v)) for k, v in state.items()}
            if mode == "full":
                self.model.load_state_dict(tensors)
                return
            from peft import set_peft_model_state_dict
            result = set_peft_model_state_dict(self.model, tensors)
            unexpected = list(getattr(result, "unexpected_keys", []) or [])
            if unexpected:
                raise ValueError(f"crossrec: saved {mode} adapters do not fit the language "
                                 f"model (unexpected {unexpected[:3]})")

        def forward(self, texts: list[str]):
            enc = self.tokenizer(texts, padding=True, truncation=True, max_length=max_length,
                                 return_tensors="pt")
            hidden = self.model(**enc).last_hidden_state                    # (n, L, 384)
            m = enc["attention_mask"][..., None].to(hidden.dtype)
            pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)
            return torch.nn.functional.normalize(pooled, dim=-1)

    return TextLM()


def encode_texts(lm, texts: list[str], batch: int = 64):
    """(len(texts), dim) float32 tensor: ``texts`` through ``lm`` in eval mode, no gradients."""
    torch, _ = _nn()
    lm.eval()
    out = []
    with torch.no_grad():
        for s in range(0, len(texts), batch):
            out.append(lm(texts[s:s + batch]))
    return torch.cat(out).float() if out else torch.zeros((0, lm.dim))


@register
class FusionRecommender(EarlyStoppedRefit, Recommender, VectorModel):
    name = "crossrec"
    # Valid decides between the warm setting (P1: "next", ids kept) and the cold one (P2: "set",
    # items scored from content alone); see BENCHMARKS.md, "The fusion model".
    param_grid = {"objective": ["next", "set"], "id_dropout": [0.1, 1.0]}
    stochastic = True
    wants_encoded = ("text", "image")

    def __init__(self, dim: int = 64, max_len: int = 50, layers: int = 2, heads: int = 2,
                 pooling: str = "transformer", objective: str = "next", loss: str = "softmax",
                 negatives: int = 256, in_batch: bool = True, logq: bool = True, same_medium: bool = True,
                 medium_holdout: float = 1.0, max_targets: int = 20,
                 max_windows: int | None = None,
                 w_rank: float = 1.0, w_align: float = 0.1, w_category: float = 0.1,
                 w_rating: float = 0.0, w_pop: float = 0.0, w_cf: float = 0.0, cf_init: bool = False,
                 align_temperature: float = 0.1,
                 id_dropout: float = 0.2, id_dropout_inputs: bool = False,
                 modality_dropout: float = 0.1, dropout: float = 0.2,
                 weight_decay: float = 0.0, lr: float = 1e-3, batch_size: int = 128,
                 epochs: int = 8, patience: int = 2, accumulate: int = 1,
                 fgm_epsilon: float = 0.0, user_id: bool = False, features: str | None = None,
                 lm: str = "frozen", lm_max_length: int = 32, lm_batch: int = 32,
                 lm_lr: float = 5e-5, lora_r: int = 8, text_field_dropout: float = 0.0,
                 ensemble: int = 1, member_epochs: list[int] | None = None,
                 input_dim: int = 256, collab: bool = True,
                 collab_weight: float | None = None, collab_factors: int = 64,
                 collab_alpha: float = 1.0,
                 collab_regularization: float = 10.0, collab_ridge: float = 3.0,
                 collab_pop_weight: float = 0.03, collab_kind: str = "als",
                 collab_source_medium: str | None = None, collab_ridge_weight: float = 0.0,
                 collab_svd_factors: int = 128, collab_tune: bool = True,
                 collab_grid: dict[str, list] | None = None, collab_holdout: float = 0.5,
                 bf16: bool | None = None, threads: int = 1,
                 checkpoint_dir: str | None = None, log_path: str | None = None,
                 progress: bool | None = None, seed: int = 0):
        self.dim = dim
        self.max_len = max_len
        self.layers = layers
        self.heads = heads
        self.pooling = pooling
        self.objective = objective
        self.loss = loss
        self.negatives = negatives
        self.in_batch = in_batch
        self.logq = logq
        self.same_medium = same_medium
        self.medium_holdout = medium_holdout
        self.max_targets = max_targets
        self.max_windows = max_windows
        self.w_rank = w_rank
        self.w_align = w_align
        self.w_category = w_category
        self.w_rating = w_rating
        self.w_pop = w_pop
        self.w_cf = w_cf
        self.cf_init = cf_init
        self.align_temperature = align_temperature
        self.id_dropout = id_dropout
        self.id_dropout_inputs = id_dropout_inputs
        self.modality_dropout = modality_dropout
        self.dropout = dropout
        self.weight_decay = weight_decay
        self.lr = lr
        self.batch_size = batch_size
        self.epochs = epochs
        self.patience = patience
        self.accumulate = accumulate
        self.fgm_epsilon = fgm_epsilon
        self.user_id = user_id
        self.features = features
        self.lm = lm
        self.lm_max_length = lm_max_length
        self.lm_batch = lm_batch
        self.lm_lr = lm_lr
        self.lora_r = lora_r
        self.text_field_dropout = text_field_dropout
        self.ensemble = ensemble
        self.member_epochs = member_epochs
        self.input_dim = input_dim
        self.collab = collab
        self.collab_weight = collab_weight
        self.collab_factors = collab_factors
        self.collab_alpha = collab_alpha
        self.collab_regularization = collab_regularization
        self.collab_ridge = collab_ridge
        self.collab_pop_weight = collab_pop_weight
        self.collab_kind = collab_kind
        self.collab_source_medium = collab_source_medium
        self.collab_ridge_weight = collab_ridge_weight
        self.collab_svd_factors = collab_svd_factors
        self.collab_tune = collab_tune
        self.collab_grid = collab_grid
        self.collab_holdout = collab_holdout
        self.bf16 = bf16
        self.threads = threads
        self.checkpoint_dir = checkpoint_dir
        self.log_path = log_path
        self.progress = progress
        self.seed = seed

    # -- checks and data ----------------------------------------------------------------------
    def _check_params(self) -> None:
        for attr, allowed in (("pooling", POOLINGS), ("objective", OBJECTIVES),
                              ("loss", LOSSES), ("lm", LM_MODES),
                              ("collab_kind", COLLAB_KINDS)):
            if getattr(self, attr) not in allowed:
                raise ValueError(f"crossrec: {attr}={getattr(self, attr)!r}; expected one of "
                                 f"{allowed}")
        for attr in ("id_dropout", "modality_dropout", "dropout", "medium_holdout",
                     "text_field_dropout", "collab_holdout"):
            limit = 1.0 if attr in ("id_dropout", "medium_holdout") else 1.0 - 1e-9
            if not 0.0 <= getattr(self, attr) <= limit:
                raise ValueError(f"crossrec: {attr} must be in [0, 1{']' if limit == 1 else ')'}"
                                 f", got {getattr(self, attr)}")
        for attr in ("dim", "max_len", "layers", "heads", "batch_size", "epochs", "ensemble",
                     "max_targets", "input_dim", "collab_factors", "collab_svd_factors"):
            if int(getattr(self, attr)) < 1:
                raise ValueError(f"crossrec: {attr} must be >= 1, got {getattr(self, attr)}")
        if self.member_epochs is not None and (
                len(self.member_epochs) != int(self.ensemble)
                or min(int(e) for e in self.member_epochs) < 1):
            raise ValueError(f"crossrec: member_epochs must give each of the {self.ensemble} "
                             f"ensemble members a number of epochs >= 1, got "
                             f"{self.member_epochs}")
        for key, values in (self.collab_grid or {}).items():
            if key not in COLLAB_GRID_KEYS:
                raise ValueError(f"crossrec: collab_grid key {key!r}; expected some of "
                                 f"{COLLAB_GRID_KEYS}")
            if not isinstance(values, (list, tuple)) or not values:
                raise ValueError(f"crossrec: collab_grid[{key!r}] must be a non-empty list of "
                                 f"values, got {values!r}")
        if self.collab_weight is not None and float(self.collab_weight) < 0:
            raise ValueError(f"crossrec: collab_weight must be >= 0, got {self.collab_weight}")
        if self.dim % self.heads:
            raise ValueError(f"crossrec: dim {self.dim} is not divisible by heads {self.heads}")

    def _feature_names(self, train: TrainData) -> list[str]:
        available = {k for k, f in train.item_features.items()
                     if f.matrix.shape[1] > 0 and f.mask.any()}
        if self.features is not None:
            names = [n.strip() for n in self.features.split(",") if n.strip()]
            unknown = [n for n in names if n not in available and
                       not (n == "text" and self.lm != "frozen")]
            if unknown:
                raise ValueError(f"crossrec: feature(s) {unknown} not in the training data; "
                                 f"available: {sorted(available) or 'none'}")
            return sorted(names)
        names = set(available)
        if "content" in names and len(names) > 1:
            names.discard("content")     # the concatenation of the others: no new information
        if self.lm != "frozen":
            names.add("text")
        return sorted(names)

    def fit(self, train: TrainData, valid: TrainData | None = None) -> FusionRecommender:
        """Train on ``train``; with ``valid`` (its interactions are the relevant items, its
        ``candidates`` the ranked ones), stop early on valid NDCG@20."""
        self._check_params()
        if self.lm != "frozen" and train.item_text is None:
            raise ValueError(f"crossrec: lm={self.lm!r} re-encodes item text, and this "
                             f"TrainData has no item_text")
        if valid is not None and (valid.n_items != train.n_items
                                  or valid.n_users != train.n_users):
            raise ValueError("crossrec: valid and train index spaces differ")
        self.__dict__.pop("_content_towers", None)         # built from the previous fit
        stop_on, blend_on = self._valid_parts(valid)
        parts, results = [], []
        for k in range(int(self.ensemble)):
            epochs = int(self.member_epochs[k] if self.member_epochs else self.epochs)
            part, result = _FusionFit(self, train, stop_on, int(self.seed) + k, epochs).run()
            parts.append(part)
            results.append(result)
        weights = _member_weights(parts, int(self.seed))
        self.item_vectors_ = np.hstack([p["items"] for p in parts]).astype(np.float32)
        self.user_vectors_ = np.hstack([np.float32(w) * p["users"] for w, p in
                                        zip(weights, parts)]).astype(np.float32)
        self.tower_config_ = {"n": len(parts), "weights": [float(w) for w in weights]}
        self.tower_states_ = [p["tower"] for p in parts]
        self.item_tower_config_ = parts[0]["item_tower_config"]
        self.item_tower_states_ = [p["item_tower"] for p in parts]
        for stale in ("text_lm_config_", "text_lm_states_", "_text_lms"):
            self.__dict__.pop(stale, None)
        if self.lm != "frozen":
            self.text_lm_config_ = {"mode": self.lm, "max_length": int(self.lm_max_length),
                                    "lora_r": int(self.lora_r), "base": base_text_lm()[1]}
            self.text_lm_states_ = [p["text_lm"] for p in parts]
        self.best_epoch_ = int(max(r.best_epoch for r in results))
        self.train_log_ = [{"best_epoch": r.best_epoch, "best_valid": r.best_score,
                            "epochs_run": r.epochs_run, "seconds_to_best": r.seconds_to_best}
                           for r in results]
        self.tower_width_ = int(self.item_vectors_.shape[1])
        if self.collab:
            self._fit_collab(train, blend_on, valid)
        return self

    def _valid_parts(self, valid: TrainData | None) -> tuple[TrainData | None, TrainData | None]:
        """(the valid users the towers stop early on, those the channel is chosen on): with
        the channel and ``collab_holdout`` > 0, a seeded share of the valid users is kept from
        early stopping, so that the channel's settings and weight are chosen on users the
        towers' epoch was not selected on (selecting it inflates the towers' valid score: on
        Douban P3 valid 0.0857 against 0.0584 on test). Otherwise both are ``valid``."""
        self.__dict__.pop("collab_valid_users_", None)
        if valid is None or not self.collab or self.collab_holdout <= 0:
            return valid, valid
        users = np.unique(valid.interactions.user)
        n_blend = int(round(float(self.collab_holdout) * len(users)))
        if n_blend < 1 or n_blend >= len(users):
            raise ValueError(f"crossrec: collab_holdout={self.collab_holdout} leaves no valid "
                             f"user on one side ({len(users)} valid users); use 0 to choose "
                             f"everything on all of them")
        blend = np.random.default_rng(int(self.seed)).permutation(users)[:n_blend]
        on_blend = np.isin(valid.interactions.user, blend)
        self.collab_valid_users_ = int(n_blend)
        return (replace(valid, interactions=valid.interactions.take(np.flatnonzero(~on_blend))),
                replace(valid, interactions=valid.interactions.take(np.flatnonzero(on_blend))))

    # -- the collaborative channel ------------------------------------------------------------
    def _collab_settings(self) -> dict[str, Any]:
        """The channel's kind and settings (ALS regularisation, ridge and popularity weight; or
        usersvd's source medium and popularity weight): as chosen on valid
        (``collab_settings_``), else as given."""
        given: dict[str, Any] = {"kind": self.collab_kind,
                                 "pop_weight": float(self.collab_pop_weight)}
        if self.collab_kind == "als":
            given.update(regularization=float(self.collab_regularization),
                         ridge=float(self.collab_ridge))
        else:
            given.update(source_medium=self.collab_source_medium,
                         ridge_weight=float(self.collab_ridge_weight),
                         ridge=float(self.collab_ridge))
        saved = getattr(self, "collab_settings_", None)
        return dict({"kind": "als", **saved} if saved else given)   # saved before kinds: als

    def _collab_model(self, settings: dict[str, Any] | None = None):
        from crossrec.models.cb2cf import CB2CFRecommender
        from crossrec.models.usersvd import UserSVDRecommender

        settings = dict(settings or self._collab_settings())
        if settings.pop("kind") == "usersvd":
            return UserSVDRecommender(factors=int(self.collab_svd_factors), seed=int(self.seed),
                                      source_medium=settings["source_medium"],
                                      pop_weight=float(settings["pop_weight"]),
                                      **{k: float(settings[k]) for k in ("ridge_weight", "ridge")
                                         if k in settings})   # saved before the ridge term: off
        kwargs = {"factors": self.collab_factors, "alpha": self.collab_alpha, **settings}
        return CB2CFRecommender(seed=int(self.seed), **{k: int(v) if k == "factors" else
                                                        float(v) for k, v in kwargs.items()})

    def _collab_candidates(self, train: TrainData, given: dict[str, Any]) -> list[dict]:
        """The channel settings tuned over: ``cb2cf``'s grid with ``collab_grid``'s additions
        (without content, no ridge or popularity weight); on data of several media also
        usersvd's sources, popularity weights and ridge terms."""
        from crossrec.models.cb2cf import CB2CFRecommender

        grid = {**CB2CFRecommender.param_grid, **(self.collab_grid or {})}
        base = {k: v for k, v in given.items() if k in ("pop_weight", "regularization", "ridge")}
        als = {"kind": "als", "regularization": float(self.collab_regularization),
               "ridge": float(self.collab_ridge), **base}
        if not self._collab_model(als).has_content(train):
            grid = {k: v for k, v in grid.items()                # ALS alone: no ridge map
                    if k not in ("ridge", "pop_weight")}
        out = [{**als, **dict(zip(grid, values))} for values in itertools.product(*grid.values())]
        media = sorted(set(train.item_medium)) if train.item_medium is not None else []
        if len(media) > 1:
            out += [{"kind": "usersvd", "source_medium": source, "pop_weight": pw,
                     "ridge_weight": rw, "ridge": lam}
                    for source in [None, *media] for pw in USERSVD_POP_WEIGHTS
                    for rw, lam in USERSVD_RIDGES]
        return out

    def _channel(self, train: TrainData, settings: dict[str, Any]):
        """(item rows [ŷ, p̂], user rows [x, 1], content map, its feature dims, extra state) of
        the channel fitted on ``train`` with ``settings`` (ALS alone, no map, without content;
        usersvd: its rows, no map, its fold-in arrays)."""
        cb = self._collab_model(settings)
        if settings["kind"] == "usersvd":
            cb.fit(train)
            return cb.item_vectors(), cb.user_rows_, None, {}, \
                {"basis": cb.basis_, "idf": cb.idf_, "pop": cb.pop_prior_}
        if cb.has_content(train):
            cb.fit(train)
            return cb.item_vectors(), cb._user_rows(cb.user_factors_), cb.map_, \
                cb.feature_dims_, {}
        from crossrec.models.als import ALSRecommender

        als = ALSRecommender(cb.factors, cb.regularization, cb.alpha, cb.iterations,
                             cb.seed).fit(train)
        return (np.hstack([als.item_factors_, np.zeros((train.n_items, 1), np.float32)]),
                np.hstack([als.user_factors_, np.ones((train.n_users, 1), np.float32)]),
                None, {}, {})

    def _fit_collab(self, train: TrainData, valid: TrainData | None,
                    tune_on: TrainData | None = None) -> None:
        """Fit the channel (its settings chosen over ``cb2cf``'s grid with ``collab_tune`` on
        ``tune_on``, by default ``valid``), put it on the towers' scale, choose its weight on
        ``valid``, and append it to the item and user vectors (see the module doc). ``fit``
        gives all the valid users as ``tune_on`` and the blend share as ``valid``: the channel
        alone does not depend on the towers' early stopping, so its settings may use every
        valid user; only the weight needs users the towers were not selected on."""
        from crossrec.training import ndcg_callback

        self.__dict__.pop("collab_settings_", None)
        given = self._collab_settings()
        candidates = [given]
        tune_on = valid if tune_on is None else tune_on
        if self.collab_tune and tune_on is not None:
            candidates = self._collab_candidates(train, given)
        best, tuned = -np.inf, {}
        for settings in candidates:
            fitted = self._channel(train, settings)
            score = 0.0
            if len(candidates) > 1:                  # the channel alone, on valid
                score = ndcg_callback(lambda users, f=fitted: f[1][users] @ f[0].T,
                                      train.matrix, tune_on.matrix,
                                      candidates=tune_on.candidates)()
                tuned[json.dumps(settings, sort_keys=True)] = score
            if score > best:
                best, channel, self.collab_settings_ = score, fitted, dict(settings)
        if tuned:
            log.info("crossrec: collaborative channel settings %s on valid",
                     self.collab_settings_)
        self.collab_tuning_ = tuned
        CI, CU, self.collab_map_, self.collab_feature_dims_, extra = channel
        self.collab_basis_, self.collab_idf_, self.collab_pop_ = (extra.get(k) for k in
                                                                  ("basis", "idf", "pop"))
        has_history = train.matrix.getnnz(axis=1) > 0
        CU[~has_history] = 0.0                            # no history: towers' popularity guess
        TI, TU = self.item_vectors_, self.user_vectors_
        active = np.flatnonzero(has_history)
        sample = np.random.default_rng(int(self.seed)).choice(
            active, size=min(512, len(active)), replace=False) if len(active) else active
        tower_sd = float(np.std(TU[sample] @ TI.T)) if len(sample) else 1.0
        collab_sd = float(np.std(CU[sample] @ CI.T)) if len(sample) else 1.0
        scale = tower_sd / collab_sd if collab_sd > 0 else 0.0
        if self.collab_weight is not None:
            weights = [float(self.collab_weight)]
        elif valid is not None:
            weights = list(COLLAB_WEIGHTS)
        else:
            weights = [1.0]
        chosen, tried = weights[0], {}
        if len(weights) > 1:
            best = -np.inf
            for w in weights:
                score = ndcg_callback(
                    lambda users, w=w: TU[users] @ TI.T + (w * scale) * (CU[users] @ CI.T),
                    train.matrix, valid.matrix, candidates=valid.candidates)()
                tried[str(w)] = score
                if score > best:
                    chosen, best = w, score
            log.info("crossrec: collaborative channel weight %s on valid (%s)", chosen, tried)
        self.collab_weight_ = float(chosen)
        self.collab_scale_ = float(scale)
        self.collab_valid_ = tried
        self.collab_factors_ = CI[:, :-1].astype(np.float32)          # for the fold-in
        factor = np.float32(self.collab_weight_ * self.collab_scale_)
        self.item_vectors_ = np.hstack([TI, factor * CI]).astype(np.float32)
        self.user_vectors_ = np.hstack([TU, CU]).astype(np.float32)

    def _collab_restored(self):
        """The channel's model rebuilt from the saved arrays (fold-in and content map)."""
        cb = self._collab_model()
        if self._collab_settings()["kind"] == "usersvd":
            cb.basis_, cb.idf_, cb.pop_prior_ = self.collab_basis_, self.collab_idf_, \
                self.collab_pop_
            cb.audience_ = self.collab_factors_
            return cb
        cb.item_factors_ = self.collab_factors_
        cb.map_ = self.collab_map_
        cb.feature_dims_ = dict(self.collab_feature_dims_)
        return cb

    def _collab_user_rows(self, histories: list[np.ndarray]) -> np.ndarray:
        rows = self._collab_restored().user_vectors(histories)           # [x_u, 1]
        rows[[len(h) == 0 for h in histories]] = 0.0
        return rows.astype(np.float32)

    def _collab_new_items(self, features: dict[str, Features], n: int) -> np.ndarray:
        given = {k: v for k, v in features.items() if k in self.collab_feature_dims_}
        if self.collab_map_ is None or not given:   # no content map, or none of its features
            return np.zeros((n, self.collab_factors_.shape[1] + 1), np.float32)
        return self._collab_restored().new_item_vectors(given)

    def refit_params(self) -> dict[str, Any]:
        params = super().refit_params()
        if len(getattr(self, "train_log_", [])) > 1:     # each member to its best epoch
            params["member_epochs"] = [int(r["best_epoch"]) + 1 for r in self.train_log_]
        if self.collab:
            params["collab_weight"] = self.collab_weight_
            params.update({f"collab_{k}": v for k, v in self.collab_settings_.items()})
            params["collab_tune"] = False
        return params


    # -- scoring ------------------------------------------------------------------------------
    def score(self, users: np.ndarray) -> np.ndarray:
        self._check_fitted()
        users = np.asarray(users, dtype=np.int64)
        return self.user_vectors_[users] @ self.item_vectors_.T             # (n, n_items)

    def with_history(self, history: TrainData) -> FusionRecommender:
        return self._copy_with(user_vectors_=self.history_vectors(history))

    def item_vectors(self) -> np.ndarray:
        self._check_fitted()
        return self.item_vectors_

    def user_vectors(self, histories: list[np.ndarray]) -> np.ndarray:
        """(n, ensemble * (dim + 1)) fold-in: the user tower over each history's last max_len
        items (no user-id embedding); an empty history gives [0, ..., 0, 1] (the item bias,
        i.e. the model's popularity guess)."""
        self._check_fitted()
        torch, _ = _nn()
        d = int(self.dim)
        n_parts = int(self.tower_config_["n"])
        weights = self.tower_config_.get("weights", [1.0 / n_parts] * n_parts)  # saved before
        out = []
        for k in range(n_parts):
            tower = build_user_tower(d, int(self.max_len), int(self.layers), int(self.heads),
                                     0.0, self.pooling, 0)
            state = {name: torch.from_numpy(np.asarray(w)) for name, w in
                     self.tower_states_[k].items() if not name.startswith("user_emb")}
            tower.load_state_dict(state)
            tower.eval()
            V = self.item_vectors_[:, k * (d + 1):k * (d + 1) + d]
            out.append(np.float32(weights[k]) * _fold_in(
                tower, V, histories, int(self.max_len), causal=self.objective == "next"))
        if self.collab:
            out.append(self._collab_user_rows(histories))
        return np.hstack(out).astype(np.float32)

    # -- new items from content --------------------------------------------------------------
    @property
    def reads_text(self) -> bool:
        """True with a tuned language model: :meth:`new_item_vectors` then takes the new items'
        composed texts (``texts``) and encodes them itself."""
        return self.lm != "frozen"

    @property
    def places_new_items(self) -> bool:
        """True when :meth:`new_item_vectors` works: once fitted, an item tower over at least
        one content feature, and with ``lm`` tuned its saved language model (before ``fit``:
        whether these settings allow it)."""
        if not self.is_fitted:
            return True
        config = getattr(self, "item_tower_config_", None)       # None: saved before towers
        if self.lm != "frozen" and getattr(self, "text_lm_states_", None) is None:
            return False                                   # saved before tuned LMs were kept
        return bool(config and config["features"])

    def new_item_vectors(self, features: dict[str, Features],
                         texts: list[str] | None = None) -> np.ndarray:
        """(n, ensemble * (dim + 1)) [v, b] per member for items never fitted on, from
        ``features`` (name -> Features of n rows, encoded like the training features): the
        item tower without an id embedding, as for a catalog item without interactions. A
        trained-on feature that is missing here counts as absent for every row; one without any
        present feature gets the content vector 0 (and the bias of that).

        With a tuned language model (``reads_text``) the text feature is not read from
        ``features``: ``texts`` (n strings composed as ``TrainData.item_text``, "" for none) go
        through each member's saved language model; None counts as no text."""
        self._check_fitted()
        config = getattr(self, "item_tower_config_", None)
        if not config or not config["features"]:
            raise ValueError("crossrec: this model has no item tower over content features "
                             "(fitted without any, or saved before new items were supported)")
        if self.reads_text and getattr(self, "text_lm_states_", None) is None:
            raise ValueError(f"crossrec: lm={self.lm!r} was saved without its tuned language "
                             f"model, so it cannot place new items")
        names, input_dims = list(config["features"]), config["input_dims"]
        channel_features = features                  # the channel reads the frozen text
        features = dict(features)
        if self.reads_text:
            features.pop("text", None)               # the frozen vectors: not what it read
        given = [m for m in names if m in features]
        if self.reads_text and texts is not None and "text" in names:
            given.append("text")
            n_text = len(texts)
            if any(m != "text" and np.asarray(features[m].matrix).shape[0] != n_text
                   for m in given):
                raise ValueError(f"crossrec: {n_text} texts for features of another number "
                                 f"of rows")
        if not given:
            raise ValueError(f"crossrec: new items need at least one of the features the model "
                             f"was trained on {names}; got {sorted(features) or 'none'}")
        n = len(texts) if "text" in given and self.reads_text else \
            int(np.asarray(features[given[0]].matrix).shape[0])
        for m in given:
            if m == "text" and self.reads_text:
                continue
            f = features[m]
            shape = np.asarray(f.matrix).shape
            if len(shape) != 2 or shape[1] != int(input_dims[m]):
                raise ValueError(f"crossrec: feature {m!r} has shape {shape}; the model was "
                                 f"trained on dim {input_dims[m]}")
            if shape[0] != n or np.asarray(f.mask).shape != (n,):
                raise ValueError(f"crossrec: features {given} must all have {n} rows and a "
                                 f"mask of {n}")
        d = int(self.dim)
        if n == 0:
            return np.zeros((0, len(self.item_tower_states_) * (d + 1)), np.float32)
        present = np.zeros((n, len(names)), bool)
        for j, m in enumerate(names):
            if m == "text" and m in given and self.reads_text:
                present[:, j] = [bool(t and t.strip()) for t in texts]
            elif m in given:
                present[:, j] = np.asarray(features[m].mask, bool)
        out = []
        for k, state in enumerate(self.item_tower_states_):
            if "text" in given and self.reads_text:
                tuned = encode_texts(self._text_lm(k), [t or "" for t in texts]).numpy()
                features["text"] = Features(tuned, present[:, names.index("text")], "text")
            feats = {}
            for m in names:
                if m in given:
                    x = np.where(present[:, names.index(m), None],
                                 np.asarray(features[m].matrix, np.float32), np.float32(0))
                else:
                    x = np.zeros((n, int(input_dims[m])), np.float32)
                feats[m] = _feature_rows(x, state.get(f"reduce.{m}"))
            out.append(self._item_tower(k).run(feats, present))
        if self.collab:
            factor = np.float32(self.collab_weight_ * self.collab_scale_)
            out.append(factor * self._collab_new_items(channel_features, n))
        return np.hstack(out).astype(np.float32)

    def _item_tower(self, k: int) -> _ContentTower:
        towers = self.__dict__.setdefault("_content_towers", {})
        if k not in towers:
            towers[k] = _ContentTower(self.item_tower_states_[k], self.item_tower_config_,
                                      int(self.dim))
        return towers[k]

    def _text_lm(self, k: int):
        """Member ``k``'s tuned language model, rebuilt from the base MiniLM and the saved
        weights (once; the base must be the revision it was tuned from)."""
        lms = self.__dict__.setdefault("_text_lms", {})
        with self.__dict__.setdefault("_text_lm_lock", threading.Lock()):
            if k not in lms:
                config = self.text_lm_config_
                path, revision = base_text_lm()
                if revision != config["base"]:
                    raise ValueError(f"crossrec: the language model was tuned from MiniLM "
                                     f"revision {config['base']}; the installed one is "
                                     f"{revision} ({path})")
                lm = build_text_lm(path, config["mode"], int(config["max_length"]),
                                   int(config["lora_r"]))
                lm.load_tuned_state(self.text_lm_states_[k])
                lms[k] = lm.eval()
            return lms[k]

    # -- persistence: tower weights as one npz per ensemble member ----------------------------
    def _state(self) -> dict[str, Any]:
        return {k: v for k, v in super()._state().items()
                if k not in ("tower_states_", "item_tower_states_", "text_lm_states_")}

    def save(self, path: str | Path) -> Path:
        path = super().save(path)
        for k, state in enumerate(self.tower_states_):
            np.savez(Path(path) / f"user_tower_{k}.npz", **state)
        for k, state in enumerate(getattr(self, "item_tower_states_", [])):
            np.savez(Path(path) / f"item_tower_{k}.npz", **state)
        for k, state in enumerate(getattr(self, "text_lm_states_", None) or []):
            np.savez(Path(path) / f"text_lm_{k}.npz", **state)
        return path

    @classmethod
    def load(cls, path: str | Path) -> FusionRecommender:
        model = super().load(path)
        model.tower_states_ = []
        for k in range(int(model.tower_config_["n"])):
            with np.load(Path(path) / f"user_tower_{k}.npz", allow_pickle=False) as z:
                model.tower_states_.append({name: z[name] for name in z.files})
        if getattr(model, "item_tower_config_", None) is not None:
            model.item_tower_states_ = []
            for k in range(int(model.tower_config_["n"])):
                with np.load(Path(path) / f"item_tower_{k}.npz", allow_pickle=False) as z:
                    model.item_tower_states_.append({name: z[name] for name in z.files})
        if getattr(model, "text_lm_config_", None) is not None:
            model.text_lm_states_ = []
            for k in range(int(model.tower_config_["n"])):
                with np.load(Path(path) / f"text_lm_{k}.npz", allow_pickle=False) as z:
                    model.text_lm_states_.append({name: z[name] for name in z.files})
        return model


def _member_weights(parts: list[dict], seed: int, n_users: int = 1024) -> list[float]:
    """The weight of each ensemble member's score: 1 / n, divided by the member's score spread
    (the mean over up to ``n_users`` sampled training users of the standard deviation of their
    scores over the items) and multiplied by the members' geometric mean spread, so members
    trained to different score scales count alike and the sum keeps their typical scale. One
    member: weight 1."""
    if len(parts) == 1:
        return [1.0]
    users = parts[0]["users"]
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(users), size=min(n_users, len(users)), replace=False)
    spread = np.array([float((p["users"][rows] @ p["items"].T).std(axis=1).mean())
                       for p in parts])
    spread = np.maximum(spread, 1e-12)
    typical = float(np.exp(np.log(spread).mean()))
    return [typical / (len(parts) * s) for s in spread]


class _ContentTower:
    """The item tower of one ensemble member without its id parts, rebuilt from saved arrays:
    (n, input dim) feature rows per name plus presence (n, M) -> (n, dim + 1) [v, b]."""

    def __init__(self, state: dict[str, np.ndarray], config: dict[str, Any], d: int):
        torch, _ = _nn()
        with torch.random.fork_rng(devices=[]):      # the id embedding's init: not ours to move
            self.tower = build_item_tower(1, {m: int(v) for m, v in config["dims"].items()}, 0,
                                          d, 0.0)
        weights = {name[len("tower."):]: torch.from_numpy(np.asarray(w))
                   for name, w in state.items() if name.startswith("tower.")}
        missing, unexpected = self.tower.load_state_dict(weights, strict=False)
        needed = [name for name in missing if name.split(".")[0] in ITEM_TOWER_PARTS]
        if needed or unexpected:
            raise ValueError(f"crossrec: saved item tower does not fit (missing {needed}, "
                             f"unexpected {unexpected})")
        self.tower.eval()
        self.lock = threading.Lock()                 # forward() writes self.pop: one at a time

    def run(self, feats: dict[str, np.ndarray], present: np.ndarray) -> np.ndarray:
        torch, _ = _nn()
        n = present.shape[0]
        items = torch.zeros(n, dtype=torch.long)
        with torch.no_grad(), self.lock:
            v, b, _, _ = self.tower(items, {m: torch.from_numpy(x) for m, x in feats.items()},
                                    torch.from_numpy(present), torch.zeros(n))
        return torch.cat([v, b[:, None]], 1).numpy().astype(np.float32)


def _reduce(matrix: np.ndarray, dim: int, seed: int) -> np.ndarray | None:
    """(n, k) -> the (min(k, dim), k) projection Vt of a truncated SVD of features wider than
    ``dim`` (TF-IDF, image vectors), fitted on the catalog's rows only (no interaction is looked
    at), or None for features no wider than ``dim``. Rows, the catalog's and new items' alike,
    map through :func:`_feature_rows`."""
    if matrix.shape[1] <= dim:
        return None
    from sklearn.utils.extmath import randomized_svd

    _, _, Vt = randomized_svd(np.asarray(matrix, np.float32), dim, random_state=seed)
    return np.ascontiguousarray(Vt, dtype=np.float32)


def _feature_rows(matrix: np.ndarray, Vt: np.ndarray | None) -> np.ndarray:
    """(n, k) feature rows -> (n, k or len(Vt)) float32: projected on ``Vt`` (when reduced),
    then L2-normalised (zero rows stay zero)."""
    x = np.asarray(matrix, np.float32)
    if Vt is not None:
        x = x @ Vt.T
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), np.float32(1e-12))
    return np.ascontiguousarray(x, dtype=np.float32)


def _als_item_factors(train: TrainData, factors: int, seed: int) -> np.ndarray:
    """(n_items, factors) implicit-ALS item factors of the training matrix (zeros for items
    without interactions)."""
    from crossrec.models.als import ALSRecommender

    als = ALSRecommender(factors=factors, regularization=30.0, alpha=1.0, iterations=15,
                         seed=seed).fit(train)
    Y = als.item_factors_.astype(np.float32).copy()
    Y[train.item_popularity == 0] = 0.0
    return Y


def _left_pad(histories: list[np.ndarray], max_len: int, pad: int) -> np.ndarray:
    """(n, T) int64: each history's last max_len items, right-aligned, ``pad`` before."""
    T = max(1, min(max_len, max((len(h) for h in histories), default=1)))
    out = np.full((len(histories), T), pad, dtype=np.int64)
    for r, h in enumerate(histories):
        h = np.asarray(h, dtype=np.int64)[-T:]
        if len(h):
            out[r, T - len(h):] = h
    return out


def _fold_in(tower, V: np.ndarray, histories: list[np.ndarray], max_len: int,
             users: np.ndarray | None = None, causal: bool = True,
             batch: int = 512) -> np.ndarray:
    """(n, d + 1) user vectors [u, 1] from item vectors V (n_items, d) and item histories."""
    torch, _ = _nn()
    n_items, d = V.shape
    Vp = torch.from_numpy(np.vstack([V, np.zeros((1, d), np.float32)]))    # pad row
    out = np.zeros((len(histories), d + 1), dtype=np.float32)
    out[:, d] = 1.0
    with torch.no_grad():
        for start in range(0, len(histories), batch):
            chunk = histories[start:start + batch]
            seq = torch.from_numpy(_left_pad(chunk, max_len, n_items))
            valid = seq < n_items
            u = None if users is None else torch.from_numpy(users[start:start + batch])
            h = tower(Vp[seq], valid, causal, u)[:, -1]                     # (b, d)
            empty = ~valid.any(1)
            h = torch.where(empty[:, None], torch.zeros(()), h)
            out[start:start + len(chunk), :d] = h.numpy()
    return out


class _FusionFit:
    """One training run of the fusion model (one ensemble member): data on tensors, the two
    towers, the batch and loss hooks for :func:`crossrec.training.fit`."""

    def __init__(self, p: FusionRecommender, train: TrainData, valid: TrainData | None,
                 seed: int, epochs: int):
        self.p, self.train, self.valid, self.seed, self.epochs = p, train, valid, seed, epochs

    # -- set-up -------------------------------------------------------------------------------
    def _prepare(self):
        torch, nn = _nn()
        from crossrec.training import set_threads

        p, train = self.p, self.train
        set_threads(p.threads)
        torch.manual_seed(self.seed)
        n_items, d = train.n_items, int(p.dim)
        self.n_items = n_items
        self.names = p._feature_names(train)
        self.X, masks, dims = {}, [], {}
        self.reducers, self.input_dims = {}, {}       # kept to place new items (see run)
        for m in self.names:
            if m == "text" and p.lm != "frozen":
                continue                                   # filled by the LM below
            f = train.item_features[m]
            Vt = _reduce(f.matrix, int(p.input_dim), self.seed)
            x = _feature_rows(f.matrix, Vt)
            self.X[m] = torch.from_numpy(x)
            self.reducers[m] = Vt
            self.input_dims[m] = int(f.matrix.shape[1])
            masks.append(f.mask)
            dims[m] = x.shape[1]
        self.lm = None
        if p.lm != "frozen":
            from crossrec.encoders.text import SentenceTransformerEncoder

            path = str(SentenceTransformerEncoder._resolve(None)[1])
            self.lm = build_text_lm(path, p.lm, int(p.lm_max_length), int(p.lora_r))
            self.texts = [t or "" for t in train.item_text]
            text_mask = np.array([bool(t.strip()) for t in self.texts])
            self._refresh_text()
            dims["text"] = self.lm.dim
            masks.insert(self.names.index("text"), text_mask)
        self.present = torch.from_numpy(np.stack(masks, 1) if masks
                                        else np.zeros((n_items, 0), bool))      # (n_items, M)
        self.dims = dict(dims)
        vocab = sorted({c for cats in (train.item_categories or []) for c in cats})
        self.cats = None
        if vocab and p.w_category > 0:
            index = {c: j for j, c in enumerate(vocab)}
            Y = np.zeros((n_items, len(vocab)), np.float32)
            for i, cats in enumerate(train.item_categories):
                Y[i, [index[c] for c in cats]] = 1.0
            self.cats = torch.from_numpy(Y)
            self.has_cats = torch.from_numpy(Y.any(1))
        pop = train.item_popularity.astype(np.float64)
        self.seen = torch.from_numpy(pop > 0)
        lp = np.log1p(pop)
        lp = (lp - lp[pop > 0].mean()) / max(float(lp[pop > 0].std()), 1e-12) if (pop > 0).any() \
            else lp
        self.log_pop = torch.from_numpy(lp.astype(np.float32))
        self.pop_share = torch.from_numpy((pop / max(pop.sum(), 1.0)).astype(np.float32))
        medium = train.item_medium
        if medium is not None and p.same_medium and len(set(medium.tolist())) > 1:
            codes = {m: j for j, m in enumerate(sorted(set(medium.tolist())))}
            self.medium = torch.from_numpy(np.array([codes[m] for m in medium], np.int64))
        else:
            self.medium = None
        self.item_medium = None if medium is None else np.asarray(medium)
        # training histories in time order, with ratings standardised for the rating head
        inter = train.interactions
        order = inter.chronological_order()
        users, items = inter.user[order], inter.item[order]
        values = inter.value[order].astype(np.float64)
        finite = np.isfinite(values)
        mu = values[finite].mean() if finite.any() else 0.0
        sd = values[finite].std() if finite.sum() > 1 else 1.0
        self.values = np.where(finite, (values - mu) / (sd if sd > 0 else 1.0), np.nan)
        self.items_sorted = items
        self.bounds = np.searchsorted(users, np.arange(train.n_users + 1))
        self.active = np.flatnonzero(np.diff(self.bounds) >= 2)
        if len(self.active) == 0:
            raise ValueError("crossrec: no user has two training interactions")
        self.histories = histories_from(inter, train.n_users)

        class Fusion(nn.Module):
            def __init__(self, item, user):
                super().__init__()
                self.item, self.user = item, user
                self.rating = nn.Linear(d, 1)
                self.cf = nn.Linear(d, d)

        item = build_item_tower(n_items, dims, 0 if self.cats is None else self.cats.shape[1],
                                d, float(p.dropout))
        user = build_user_tower(d, int(p.max_len), int(p.layers), int(p.heads),
                                float(p.dropout), p.pooling, train.n_users if p.user_id else 0)
        self.module = Fusion(item, user)
        self.cf_factors = None
        if p.w_cf > 0 or p.cf_init:
            Y = _als_item_factors(train, d, self.seed)                         # (n_items, d)
            if p.cf_init:
                with torch.no_grad():
                    scale = 0.05 / max(float(Y[pop > 0].std()), 1e-12)
                    item.id_emb.weight.copy_(torch.from_numpy(Y * scale))
            Y = (Y - Y[pop > 0].mean(0)) / np.maximum(Y[pop > 0].std(0), 1e-12)
            self.cf_factors = torch.from_numpy(Y.astype(np.float32))
        if self.lm is not None:
            self.module.lm = self.lm

    def _refresh_text(self) -> None:
        """Re-encode every item's text with the language model's current weights (skipped when
        nothing trained since the last time)."""
        if self.lm is not None and not getattr(self, "_text_fresh", False):
            self.X["text"] = encode_texts(self.lm, self.texts)
            self._text_fresh = True

    # -- the item tower on a set of items -----------------------------------------------------
    def item_forward(self, items, train: bool):
        """items (U,) long -> v (U, d), b (U,), P (U, M, d), present (U, M)."""
        torch, _ = _nn()
        p = self.p
        present = self.present[items]
        feats = {m: self.X[m][items] for m in self.X}
        if train and self.lm is not None and p.lm != "frozen":
            k = min(int(p.lm_batch), len(items))
            pick = torch.randperm(len(items))[:k]
            self.lm.train()
            self._text_fresh = False
            fresh = self.lm([self._augment(self.texts[i]) for i in items[pick].tolist()])
            text = feats["text"].clone()
            text[pick] = fresh.to(text.dtype)
            feats["text"] = text
        if train and p.modality_dropout > 0 and present.shape[1] > 1:
            drop = (torch.rand(present.shape) < p.modality_dropout) & present
            keep_one = present & ~drop
            # never hide every modality an item has: restore the first present one
            none_left = ~keep_one.any(1) & present.any(1)
            first = torch.argmax(present.int(), 1)
            keep_one[none_left, first[none_left]] = True
            present = keep_one
        keep = self.seen[items].float()
        if train and p.id_dropout > 0:
            keep = keep * (torch.rand(len(items)) >= p.id_dropout).float()
        v, b, c, P = self.module.item(items, feats, present, keep)
        self._content = c                                    # for the collaborative head
        # the history side keeps every seen item's id (id dropout acts on the scored side)
        self._inputs = v if p.id_dropout_inputs or not train else \
            c + self.seen[items].float()[:, None] * self.module.item.id_emb(items)
        return v, b, P, present

    def _augment(self, text: str) -> str:
        rate = float(self.p.text_field_dropout)
        if rate <= 0:
            return text
        pieces = text.split(". ")
        kept = [pieces[0]] + [s for s in pieces[1:] if np.random.random() >= rate]
        return ". ".join(kept)

    # -- batches ------------------------------------------------------------------------------
    def batches(self, epoch: int, rng: np.random.Generator):
        """Yields dicts: seq (B, T) left-padded item indices (pad = n_items), users (B,), rows,
        slots, targets, values (P,) for every prediction (query row, query slot, target)."""
        p = self.p
        self._refresh_text()
        T = int(p.max_len)
        windows = []                       # (user, start, end) into the user's history
        for u in self.active:
            a, b = self.bounds[u], self.bounds[u + 1]
            n = b - a
            if p.objective == "next":
                k = max(1, math.ceil((n - 1) / T))
                if p.max_windows is not None:
                    k = min(k, int(p.max_windows))
                ends = np.r_[n, rng.integers(2, n + 1, size=k - 1)] if k > 1 else np.array([n])
                windows += [(u, a + max(0, e - T - 1), a + e) for e in ends]
            else:
                windows.append((u, a, b))
        windows = [windows[j] for j in rng.permutation(len(windows))]
        for s in range(0, len(windows), int(p.batch_size)):
            yield self._make_batch(windows[s:s + int(p.batch_size)], rng, T)

    def _make_batch(self, windows, rng, T: int) -> dict:
        p, pad = self.p, self.n_items
        seqs, rows, slots, targets, values, users = [], [], [], [], [], []
        for r, (u, a, b) in enumerate(windows):
            items, vals = self.items_sorted[a:b], self.values[a:b]
            users.append(u)
            if p.objective == "next":           # inputs items[:-1] predict items[1:]
                inp, tgt, tv = items[:-1][-T:], items[1:][-T:], vals[1:][-T:]
                seqs.append(inp)
                L = len(inp)
                rows += [r] * L
                slots += list(range(T - L, T))
                targets.append(tgt)
                values.append(tv)
            else:
                n = len(items)
                media = None if self.item_medium is None else self.item_medium[items]
                if media is not None and p.medium_holdout > 0 and len(set(media)) > 1 \
                        and rng.random() < p.medium_holdout:
                    held = media == rng.choice(sorted(set(media)))
                else:
                    held = rng.random(n) < 0.2
                    if held.all() or not held.any():
                        held = np.zeros(n, bool)
                        held[rng.integers(n)] = True
                inp = items[~held][-T:]
                out = np.flatnonzero(held)
                if len(out) > p.max_targets:
                    out = rng.choice(out, size=int(p.max_targets), replace=False)
                seqs.append(inp)
                rows += [r] * len(out)
                slots += [T - 1] * len(out)
                targets.append(items[out])
                values.append(vals[out])
        seq = np.full((len(seqs), T), pad, dtype=np.int64)
        for r, s in enumerate(seqs):
            if len(s):
                seq[r, T - len(s):] = s
        return {"seq": seq, "users": np.asarray(users, np.int64), "rows": np.asarray(rows),
                "slots": np.asarray(slots), "targets": np.concatenate(targets),
                "values": np.concatenate(values).astype(np.float32)}

    # -- loss ---------------------------------------------------------------------------------
    def loss(self, batch: dict):
        torch, nn = _nn()
        F = torch.nn.functional
        p, n_items = self.p, self.n_items
        seq = torch.from_numpy(batch["seq"])
        targets = torch.from_numpy(batch["targets"])
        negatives = torch.randint(0, n_items, (int(p.negatives),)) if p.negatives > 0 \
            else torch.zeros(0, dtype=torch.long)
        flat = seq[seq < n_items]
        items, inverse = torch.unique(torch.cat([targets, negatives, flat]), return_inverse=True)
        v, b, P, present = self.item_forward(items, train=True)              # (U, d), (U,)
        n_t, n_n = len(targets), len(negatives)
        t_idx = target_idx = inverse[:n_t]
        # user tower over the input sequences
        pos_in_items = torch.full((n_items + 1,), -1, dtype=torch.long)
        pos_in_items[items] = torch.arange(len(items))
        valid = seq < n_items
        x = self._inputs[pos_in_items[seq].clamp(min=0)] * valid[..., None]    # (B, T, d)
        users = torch.from_numpy(batch["users"]) if p.user_id else None
        H = self.module.user(x, valid, p.objective == "next", users)          # (B, T, d)
        rows, slots = torch.from_numpy(batch["rows"]), torch.from_numpy(batch["slots"])
        Q = H[rows, slots]                                                     # (P, d)
        parts, total = {}, torch.zeros(())
        if p.w_rank > 0:
            if p.in_batch:    # candidates: every item of the batch plus the uniform negatives
                cand = torch.arange(len(items))
                logits = Q @ v.T + b[None, :]                                  # (P, U)
                if p.logq:    # log of each candidate's chance to be in the set (Poisson)
                    expected = n_t * self.pop_share[items] + n_n / n_items     # (U,)
                    logits = logits - torch.log(-torch.expm1(-expected)).clamp(min=-30)[None]
            else:             # column 0: the target; then the shared uniform negatives
                cand = inverse[n_t:n_t + n_n]
                pos = (Q * v[t_idx]).sum(-1, keepdim=True) + b[t_idx][:, None]  # (P, 1)
                neg = Q @ v[cand].T + b[cand][None, :]                          # (P, N)
                neg = neg.masked_fill(cand[None, :] == t_idx[:, None], float("-inf"))
                logits = torch.cat([pos, neg], 1)
                cand = torch.cat([torch.zeros(1, dtype=torch.long), cand])
                t_idx = torch.zeros(n_t, dtype=torch.long)
            if self.medium is not None:
                other = self.medium[items[cand]][None, :] != self.medium[targets][:, None]
                if not p.in_batch:
                    other[:, 0] = False
                logits = logits.masked_fill(other, float("-inf"))
            if p.loss == "softmax":
                rank = F.cross_entropy(logits, t_idx)
            else:                                  # BPR against one random candidate each
                neg = torch.randint(0, len(items), (n_t,))
                pos_s = logits.gather(1, t_idx[:, None]).squeeze(1)
                neg_s = logits.gather(1, neg[:, None]).squeeze(1)
                ok = torch.isfinite(neg_s) & (neg != t_idx)
                rank = -F.logsigmoid(pos_s - neg_s)[ok].mean() if ok.any() else 0.0 * pos_s.sum()
            total = total + p.w_rank * rank
            parts["rank"] = float(rank.detach())
        if p.w_align > 0 and P.shape[1] > 1:
            align = self._align(P, present)
            if align is not None:
                total = total + p.w_align * align
                parts["align"] = float(align.detach())
        if p.w_category > 0 and self.cats is not None:
            has = self.has_cats[items]
            if has.any():
                logit = self.module.item.cat_head(v[has])
                cat = F.binary_cross_entropy_with_logits(logit, self.cats[items][has])
                total = total + p.w_category * cat
                parts["category"] = float(cat.detach())
        if p.w_pop > 0:
            warm = self.seen[items]
            if warm.any():
                pop = F.mse_loss(self.module.item.pop[warm], self.log_pop[items[warm]])
                total = total + p.w_pop * pop
                parts["pop"] = float(pop.detach())
        if p.w_cf > 0 and self.cf_factors is not None:
            warm = self.seen[items]
            if warm.any():
                cf = F.mse_loss(self.module.cf(self._content[warm]), self.cf_factors[items[warm]])
                total = total + p.w_cf * cf
                parts["cf"] = float(cf.detach())
        if p.w_rating > 0:
            vals = torch.from_numpy(batch["values"])
            known = torch.isfinite(vals)
            if known.any():
                pred = self.module.rating(Q[known] * v[target_idx[known]]).squeeze(-1)
                rating = F.mse_loss(pred, vals[known])
                total = total + p.w_rating * rating
                parts["rating"] = float(rating.detach())
        return total, parts

    def _align(self, P, present, max_items: int = 512):
        """Symmetric InfoNCE between every pair of modality projections of the same items."""
        torch, _ = _nn()
        F = torch.nn.functional
        losses = []
        M = P.shape[1]
        for a in range(M):
            for c in range(a + 1, M):
                both = torch.nonzero(present[:, a] & present[:, c]).squeeze(1)[:max_items]
                if len(both) < 2:
                    continue
                za = F.normalize(P[both, a], dim=-1)
                zc = F.normalize(P[both, c], dim=-1)
                logits = za @ zc.T / float(self.p.align_temperature)
                labels = torch.arange(len(both))
                losses.append(0.5 * (F.cross_entropy(logits, labels)
                                     + F.cross_entropy(logits.T, labels)))
        return torch.stack(losses).mean() if losses else None

    # -- evaluation ---------------------------------------------------------------------------
    def all_item_vectors(self, chunk: int = 4096) -> np.ndarray:
        """(n_items, d + 1) [v, b] for every item, no dropout."""
        torch, _ = _nn()
        out = []
        with torch.no_grad():
            for s in range(0, self.n_items, chunk):
                items = torch.arange(s, min(s + chunk, self.n_items))
                v, b, _, _ = self.item_forward(items, train=False)
                out.append(torch.cat([v, b[:, None]], 1).numpy())
        return np.vstack(out).astype(np.float32)

    def user_matrix(self, V: np.ndarray, users: np.ndarray) -> np.ndarray:
        """(len(users), d + 1) user vectors from the training histories (with user ids)."""
        hist = [self.histories[u] for u in users]
        return _fold_in(self.module.user, V[:, :-1], hist, int(self.p.max_len),
                        users=np.asarray(users, np.int64) if self.p.user_id else None,
                        causal=self.p.objective == "next")

    def run(self):
        from crossrec.training import Task, TrainConfig, fit, ndcg_callback

        self._prepare()
        p = self.p
        validate = None
        if self.valid is not None:
            cache = {}

            def score_fn(users):
                if "V" not in cache:                 # once per validation: all item vectors
                    cache["V"] = self.all_item_vectors()
                return self.user_matrix(cache["V"], users) @ cache["V"].T

            inner = ndcg_callback(score_fn, self.train.matrix, self.valid.matrix,
                                  candidates=self.valid.candidates)

            def validate():
                cache.clear()
                self._refresh_text()
                return inner()

        config = TrainConfig(
            epochs=int(self.epochs), lr=float(p.lr), weight_decay=float(p.weight_decay),
            accumulate=int(p.accumulate), patience=int(p.patience) if p.patience else None,
            bf16=p.bf16, fgm_epsilon=float(p.fgm_epsilon), threads=int(p.threads),
            seed=self.seed, progress=p.progress,
            checkpoint_dir=None if p.checkpoint_dir is None
            else Path(p.checkpoint_dir) / f"seed{self.seed}",
            resume=p.checkpoint_dir is not None,
            log_path=None if p.log_path is None else Path(p.log_path))
        task = Task(self.module, self.batches, self.loss,
                    adversarial=("item.id_emb.weight",),
                    no_decay=("bias", "norm", "slot", "id_emb", "user_emb"),
                    lr_scale={"lm.": float(p.lm_lr) / float(p.lr)})
        result = fit(task, config, validate)
        self._text_fresh = False             # fit may have restored the best epoch's weights
        self._refresh_text()
        V = self.all_item_vectors()
        Uv = self.user_matrix(V, np.arange(self.train.n_users))
        no_history = np.array([len(h) == 0 for h in self.histories])
        Uv[no_history, :-1] = 0.0
        state = {k: t.detach().numpy().copy() for k, t in self.module.user.state_dict().items()}
        # what new_item_vectors needs: the item tower without its id parts, the SVD projections
        item = {f"tower.{k}": t.detach().numpy().copy()
                for k, t in self.module.item.state_dict().items()
                if k.split(".")[0] in ITEM_TOWER_PARTS}
        item.update({f"reduce.{m}": Vt for m, Vt in self.reducers.items() if Vt is not None})
        item_config = {"features": list(self.names), "dims": dict(self.dims),
                       "input_dims": {m: self.input_dims.get(m, self.dims[m])
                                      for m in self.names}}
        text_lm = None if self.lm is None else self.lm.tuned_state()
        return {"items": V, "users": Uv, "tower": state, "item_tower": item,
                "item_tower_config": item_config, "text_lm": text_lm}, result


__all__ = ["FusionRecommender", "LM_MODES"]
