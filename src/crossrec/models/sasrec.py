"""SASRec: self-attentive sequential recommendation (Kang & McAuley, ICDM 2018), item ids only.

The user's last ``max_len`` items (left-padded, oldest first) as item embeddings plus learned
position embeddings go through a causal transformer; the output at each slot predicts the next
item by dot product with the (shared) item embeddings. Loss: "ce", full softmax cross-entropy
over all items (Klenitskiy & Vasilev, RecSys 2023, found it much stronger than the paper's
loss), or "bce", the paper's binary cross-entropy against one random negative per slot.
Trained through :func:`crossrec.training.fit`, early-stopped on valid NDCG@20 when ``fit`` gets
a valid set.

Score: the output at the last slot (the user vector) · every item embedding; ``user_vectors``
folds a new history in exactly the same way.

Example:
    >>> model = SASRecRecommender(dim=64, epochs=30).fit(train, valid)
    >>> model.score(np.array([0]))                       # (1, n_items) float32
"""

from __future__ import annotations

import numpy as np

from crossrec.models.base import Recommender, TrainData, VectorModel, histories_from, register
from crossrec.training import EarlyStoppedRefit


def build_sasrec(n_items: int, d: int, max_len: int, layers: int, heads: int, dropout: float):
    import torch
    from torch import nn

    class SASRec(nn.Module):
        """seq (B, T) item indices, pad = n_items -> (B, T, d) outputs per slot."""

        def __init__(self):
            super().__init__()
            self.items = nn.Embedding(n_items + 1, d, padding_idx=n_items)
            nn.init.normal_(self.items.weight[:n_items], std=0.05)
            self.pos = nn.Embedding(max_len, d)
            self.drop = nn.Dropout(dropout)
            layer = nn.TransformerEncoderLayer(d, heads, 2 * d, dropout, batch_first=True,
                                               norm_first=True, activation="gelu")
            self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
            self.norm = nn.LayerNorm(d)

        def forward(self, seq):
            B, T = seq.shape
            valid = seq < n_items
            h = self.drop(self.items(seq) * d ** 0.5 + self.pos.weight[max_len - T:][None])
            h = h * valid[..., None]
            allowed = (valid[:, None, :] | torch.eye(T, dtype=torch.bool)[None]) \
                & torch.tril(torch.ones(T, T, dtype=torch.bool))[None]
            h = self.encoder(h, mask=(~allowed).repeat_interleave(heads, 0))
            return self.norm(h)

    return SASRec()


@register
class SASRecRecommender(EarlyStoppedRefit, Recommender, VectorModel):
    name = "sasrec"
    param_grid = {"dropout": [0.2, 0.5], "max_len": [50, 200]}
    stochastic = True

    def __init__(self, dim: int = 64, max_len: int = 50, layers: int = 2, heads: int = 2,
                 dropout: float = 0.2, loss: str = "ce", lr: float = 1e-3,
                 weight_decay: float = 0.0, batch_size: int = 128, epochs: int = 30,
                 patience: int = 3, threads: int = 1, progress: bool | None = None,
                 seed: int = 0):
        self.dim = dim
        self.max_len = max_len
        self.layers = layers
        self.heads = heads
        self.dropout = dropout
        self.loss = loss
        self.lr = lr
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.epochs = epochs
        self.patience = patience
        self.threads = threads
        self.progress = progress
        self.seed = seed

    def fit(self, train: TrainData, valid: TrainData | None = None) -> SASRecRecommender:
        import torch
        import torch.nn.functional as F

        from crossrec.training import Task, TrainConfig, fit, ndcg_callback, set_threads

        if self.loss not in ("ce", "bce"):
            raise ValueError(f"sasrec: loss={self.loss!r}; expected 'ce' or 'bce'")
        if int(self.dim) % int(self.heads):
            raise ValueError(f"sasrec: dim {self.dim} is not divisible by heads {self.heads}")
        set_threads(self.threads)
        torch.manual_seed(self.seed)
        n, T = train.n_items, int(self.max_len)
        histories = histories_from(train.interactions, train.n_users)
        active = [u for u, h in enumerate(histories) if len(h) >= 2]
        if not active:
            raise ValueError("sasrec: no user has two training interactions")
        net = build_sasrec(n, int(self.dim), T, int(self.layers), int(self.heads),
                           float(self.dropout))

        def batches(epoch, rng):
            windows = []                                   # (user, end): items[end-T-1:end]
            for u in active:
                L = len(histories[u])
                k = max(1, -(-(L - 1) // T))
                windows += [(u, L)] + [(u, int(e)) for e in rng.integers(2, L + 1, k - 1)]
            order = rng.permutation(len(windows))
            for s in range(0, len(order), int(self.batch_size)):
                seq = np.full((len(order[s:s + int(self.batch_size)]), T + 1), n, np.int64)
                for r, j in enumerate(order[s:s + int(self.batch_size)]):
                    u, e = windows[j]
                    h = histories[u][max(0, e - T - 1):e]
                    seq[r, T + 1 - len(h):] = h
                yield torch.from_numpy(seq)

        def loss(seq):
            inp, tgt = seq[:, :-1], seq[:, 1:]                               # (B, T)
            H = net(inp)                                                     # (B, T, d)
            keep = (tgt < n) & (inp < n)
            h, t = H[keep], tgt[keep]                                        # (P, d), (P,)
            W = net.items.weight[:n]
            if self.loss == "ce":
                out = F.cross_entropy(h @ W.T, t)
            else:
                neg = torch.randint(0, n, t.shape)
                pos_s, neg_s = (h * W[t]).sum(-1), (h * W[neg]).sum(-1)
                out = F.softplus(-pos_s).mean() + F.softplus(neg_s).mean()
            return out, {}

        def score_fn(users):
            return self._fold(net, [histories[u] for u in users]) @ \
                net.items.weight[:n].detach().numpy().T

        validate = None
        if valid is not None:
            validate = ndcg_callback(score_fn, train.matrix, valid.matrix, valid.candidates)
        config = TrainConfig(epochs=int(self.epochs), lr=float(self.lr),
                             weight_decay=float(self.weight_decay),
                             patience=int(self.patience) if self.patience else None,
                             threads=int(self.threads), seed=int(self.seed),
                             progress=self.progress)
        result = fit(Task(net, batches, loss, no_decay=("bias", "norm", "pos")), config,
                     validate)
        self.best_epoch_ = int(result.best_epoch)
        self.item_factors_ = net.items.weight[:n].detach().numpy().astype(np.float32).copy()
        self.weights_ = {k: v.detach().numpy().copy() for k, v in net.state_dict().items()}
        self.user_factors_ = self._fold(net, histories)
        return self

    @staticmethod
    def _fold(net, histories: list[np.ndarray], batch: int = 512) -> np.ndarray:
        import torch

        n, T = net.items.num_embeddings - 1, net.pos.num_embeddings
        out = np.zeros((len(histories), net.items.embedding_dim), np.float32)
        net.eval()
        with torch.no_grad():
            for s in range(0, len(histories), batch):
                chunk = histories[s:s + batch]
                seq = np.full((len(chunk), T), n, np.int64)
                for r, h in enumerate(chunk):
                    h = np.asarray(h, np.int64)[-T:]
                    if len(h):
                        seq[r, T - len(h):] = h
                h = net(torch.from_numpy(seq))[:, -1].numpy()
                h[[len(c) == 0 for c in chunk]] = 0.0
                out[s:s + len(chunk)] = h
        return out


    def score(self, users: np.ndarray) -> np.ndarray:
        self._check_fitted()
        return self.user_factors_[np.asarray(users, np.int64)] @ self.item_factors_.T

    def with_history(self, history: TrainData) -> SASRecRecommender:
        return self._copy_with(user_factors_=self.history_vectors(history))

    def item_vectors(self) -> np.ndarray:
        self._check_fitted()
        return self.item_factors_

    def user_vectors(self, histories: list[np.ndarray]) -> np.ndarray:
        """(n, dim) the transformer's last-slot output over each history (empty -> zeros)."""
        import torch

        self._check_fitted()
        net = build_sasrec(len(self.item_factors_), int(self.dim), int(self.max_len),
                           int(self.layers), int(self.heads), 0.0)
        net.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in
                             self.weights_.items()})
        return self._fold(net, histories)

    # weights_ is a dict of arrays: one npz next to the base class's files
    def _state(self):
        return {k: v for k, v in super()._state().items() if k != "weights_"}

    def save(self, path):
        from pathlib import Path

        path = super().save(path)
        np.savez(Path(path) / "weights.npz", **self.weights_)
        return path

    @classmethod
    def load(cls, path):
        from pathlib import Path

        model = super().load(path)
        with np.load(Path(path) / "weights.npz", allow_pickle=False) as z:
            model.weights_ = {k: z[k] for k in z.files}
        return model
