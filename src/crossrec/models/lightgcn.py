"""LightGCN (He et al., SIGIR 2020): user and item embeddings smoothed over the interaction graph.

    E⁽⁰⁾ = [users; items] (learned),   E⁽ᵏ⁺¹⁾ = D^-½ A D^-½ E⁽ᵏ⁾,   E = mean_k E⁽ᵏ⁾ (k = 0..K)

with A the symmetric user-item bipartite adjacency of the training matrix. Score: E_u · E_i.
Loss: BPR over (user, positive, uniform negative) triples plus L2 on the triples' layer-0
embeddings (``reg``), as in the paper. Trained through :func:`crossrec.training.fit`,
early-stopped on valid NDCG@20 when ``fit`` gets a valid set.

Example:
    >>> model = LightGCNRecommender(dim=64, layers=3).fit(train, valid)
    >>> model.score(np.array([0, 1]))            # (2, n_items) float32
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from crossrec.models.base import Recommender, TrainData, register
from crossrec.training import EarlyStoppedRefit


@register
class LightGCNRecommender(EarlyStoppedRefit, Recommender):
    name = "lightgcn"
    param_grid = {"layers": [2, 3], "reg": [1e-4, 1e-3]}
    stochastic = True

    def __init__(self, dim: int = 64, layers: int = 3, reg: float = 1e-4, lr: float = 5e-3,
                 batch_size: int = 8192, epochs: int = 60, patience: int = 5,
                 eval_every: int = 2, threads: int = 1, progress: bool | None = None,
                 seed: int = 0):
        self.dim = dim
        self.layers = layers
        self.reg = reg
        self.lr = lr
        self.batch_size = batch_size
        self.epochs = epochs
        self.patience = patience
        self.eval_every = eval_every
        self.threads = threads
        self.progress = progress
        self.seed = seed

    def fit(self, train: TrainData, valid: TrainData | None = None) -> LightGCNRecommender:
        import torch
        from torch import nn

        from crossrec.training import Task, TrainConfig, fit, ndcg_callback, set_threads

        set_threads(self.threads)
        torch.manual_seed(self.seed)
        nu, ni, d, K = train.n_users, train.n_items, int(self.dim), int(self.layers)
        X = sp.csr_matrix(train.matrix)
        if X.nnz == 0:
            raise ValueError("lightgcn: no training interactions")
        A = sp.bmat([[None, X], [X.T, None]], format="csr")                  # (nu+ni, nu+ni)
        deg = np.asarray(A.sum(1)).ravel()
        inv = np.where(deg > 0, 1.0 / np.sqrt(np.maximum(deg, 1e-12)), 0.0)
        A = sp.diags(inv) @ A @ sp.diags(inv)
        A = A.tocoo()
        adj = torch.sparse_coo_tensor(np.vstack([A.row, A.col]), A.data.astype(np.float32),
                                      A.shape, check_invariants=True).coalesce()
        emb = nn.Embedding(nu + ni, d)
        nn.init.normal_(emb.weight, std=0.1)
        module = nn.ModuleDict({"emb": emb})

        def propagate():
            E = emb.weight
            total = E
            for _ in range(K):
                E = torch.sparse.mm(adj, E)
                total = total + E
            return total / (K + 1)                                           # (nu+ni, d)

        users, items = X.nonzero()

        def batches(epoch, rng):
            order = rng.permutation(len(users))
            for s in range(0, len(order), int(self.batch_size)):
                rows = order[s:s + int(self.batch_size)]
                yield (torch.from_numpy(users[rows].astype(np.int64)),
                       torch.from_numpy(items[rows].astype(np.int64)),
                       torch.from_numpy(rng.integers(0, ni, len(rows))))

        def loss(batch):
            u, i, j = batch
            E = propagate()
            eu, ei, ej = E[u], E[nu + i], E[nu + j]
            bpr = torch.nn.functional.softplus(-((eu * ei).sum(1) - (eu * ej).sum(1))).mean()
            w0 = emb.weight
            l2 = (w0[u].pow(2).sum() + w0[nu + i].pow(2).sum() + w0[nu + j].pow(2).sum()) \
                / (2 * len(u))
            return bpr + float(self.reg) * l2, {"bpr": float(bpr.detach())}

        cache = {}

        def score_fn(batch_users):
            if "E" not in cache:
                cache["E"] = propagate().detach().numpy()
            E = cache["E"]
            return E[batch_users] @ E[nu:].T

        validate = None
        if valid is not None:
            inner = ndcg_callback(score_fn, train.matrix, valid.matrix, valid.candidates)

            def validate():
                cache.clear()
                return inner()

        config = TrainConfig(epochs=int(self.epochs), lr=float(self.lr), grad_clip=None,
                             patience=int(self.patience) if self.patience else None,
                             eval_every=int(self.eval_every), threads=int(self.threads),
                             seed=int(self.seed), progress=self.progress)
        result = fit(Task(module, batches, loss), config, validate)
        self.best_epoch_ = int(result.best_epoch)
        with torch.no_grad():
            E = propagate().numpy().astype(np.float32)
        self.user_factors_ = E[:nu].copy()
        self.item_factors_ = E[nu:].copy()
        return self


    def score(self, users: np.ndarray) -> np.ndarray:
        self._check_fitted()
        return self.user_factors_[np.asarray(users, np.int64)] @ self.item_factors_.T
