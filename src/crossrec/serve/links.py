"""Which modality links two items, for the explanations of a recommendation.

A recommended item and a history item are linked by the block of the content space (text,
image, audio: a :class:`~crossrec.recipe.ContentRecipe`'s blocks) where they are most alike
against the catalog: the dot product of their block rows less the block's mean row, in units
of the block's spread over pairs of items (the root mean square of those centred products,
``|XᵀX|_F / n`` for n centred rows X), largest over the blocks both items have. Image vectors
are alike everywhere and text vectors less so: raw products would always say "image", centred
ones "text". "collaborative" where no block is above the average.

Example:
    >>> links = ContentLinks(content_rows, recipe)         # (n_items, recipe.dim)
    >>> links.modalities([(12, 40), (12, 7)])
    ['image', 'text']
"""

from __future__ import annotations

import numpy as np

from crossrec.recipe import ContentRecipe

CHUNK = 65_536
"""Rows read at a time from the (possibly memory-mapped, float16) content matrix."""


class ContentLinks:
    """The blocks that link items, from their content rows.

    Each block's centred rows are kept in their top ``rank`` principal directions, scaled by
    the spread, so that a pair's share is one small dot product (exact for blocks of at most
    ``rank`` dimensions). The mean, spread and directions come from a seeded sample of
    ``sample`` of the items that have the block (all of them in a smaller catalog). The content
    matrix is read ``CHUNK`` rows at a time and not kept.

    Args:
        content: (n_items, D) the items' rows in ``recipe``'s space (any float dtype; a
            memory-mapped array is read in chunks).
        recipe: the content recipe (its blocks and their columns).
    """

    def __init__(self, content: np.ndarray, recipe: ContentRecipe, rank: int = 64,
                 sample: int = 20_000):
        self.names = list(recipe.dims)
        slices = list(recipe.block_slices().values())
        n = len(content)
        has = np.zeros((n, len(slices)), bool)
        for i in range(0, n, CHUNK):
            rows = np.asarray(content[i:i + CHUNK], np.float32)
            has[i:i + CHUNK] = self._has(rows, slices)
        rng = np.random.default_rng(0)
        self.maps: list[tuple[slice, np.ndarray, np.ndarray, slice]] = []
        start = 0
        for j, sl in enumerate(slices):
            d = sl.stop - sl.start
            idx = np.flatnonzero(has[:, j])
            if len(idx) > sample:
                idx = np.sort(rng.choice(idx, sample, replace=False))
            X = np.asarray(content[idx, sl], np.float64)
            mu = X.mean(0) if len(X) else np.zeros(d)
            X -= mu
            gram = X.T @ X                                                  # (d, d)
            spread = float(np.linalg.norm(gram) / max(len(X), 1)) or 1.0
            basis = np.eye(d) if d <= rank else np.linalg.eigh(gram)[1][:, ::-1][:, :rank]
            cols = slice(start, start + basis.shape[1])
            self.maps.append((sl, mu.astype(np.float32),
                              (basis / np.sqrt(spread)).astype(np.float32), cols))
            start = cols.stop
        self.rows = np.zeros((n, start), np.float32)                       # (n, sum of ranks)
        for i in range(0, n, CHUNK):
            self.rows[i:i + CHUNK] = self._project(np.asarray(content[i:i + CHUNK], np.float32))
        self.has = has                                                      # (n, blocks)
        self.live: dict[int, tuple[np.ndarray, np.ndarray]] = {}     # position -> (row, has)

    @staticmethod
    def _has(rows: np.ndarray, slices: list[slice]) -> np.ndarray:
        return np.stack([np.abs(rows[:, sl]).sum(1) > 0 for sl in slices], 1)

    def _project(self, rows: np.ndarray) -> np.ndarray:
        return np.hstack([(rows[:, sl] - mu) @ basis for sl, mu, basis, _ in self.maps])

    def add(self, pos: int, content: np.ndarray) -> None:
        """The content row (D,) of an item added at run time at position ``pos``."""
        row = np.asarray(content, np.float32)[None]
        self.live[pos] = (self._project(row)[0],
                          self._has(row, [sl for sl, _, _, _ in self.maps])[0])

    def has_blocks(self, pos: int) -> dict[str, bool] | None:
        """Which blocks an item has (None: no content row kept for it)."""
        got = self._row(pos)
        return None if got is None else dict(zip(self.names, got[1].tolist()))

    def _row(self, pos: int) -> tuple[np.ndarray, np.ndarray] | None:
        return (self.rows[pos], self.has[pos]) if pos < len(self.rows) else self.live.get(pos)

    def _gather(self, positions: list[int]) -> tuple[np.ndarray, np.ndarray]:
        idx = np.asarray(positions, np.int64)
        if idx.max() < len(self.rows):
            return self.rows[idx], self.has[idx]
        none = (np.zeros(self.rows.shape[1], np.float32), np.zeros(len(self.maps), bool))
        got = [self._row(p) or none for p in positions]
        return np.stack([g[0] for g in got]), np.stack([g[1] for g in got])

    def modalities(self, pairs: list[tuple[int, int]]) -> list[str]:
        """Per (a, b) pair of positions, the block that links them, or "collaborative"."""
        out = ["collaborative"] * len(pairs)
        if not pairs:
            return out
        firsts = list(dict.fromkeys(a for a, _ in pairs))
        seconds = list(dict.fromkeys(b for _, b in pairs))
        (A, ha), (B, hb) = self._gather(firsts), self._gather(seconds)
        parts = np.stack([np.where(ha[:, j, None] & hb[None, :, j], A[:, cols] @ B[:, cols].T,
                                   -np.inf)
                          for j, (_, _, _, cols) in enumerate(self.maps)])  # (blocks, a, b)
        best, value = parts.argmax(0), parts.max(0)
        row = {p: i for i, p in enumerate(firsts)}
        col = {p: i for i, p in enumerate(seconds)}
        for n, (a, b) in enumerate(pairs):
            i, j = row[a], col[b]
            if value[i, j] > 0:
                out[n] = self.names[int(best[i, j])]
        return out


__all__ = ["ContentLinks"]
