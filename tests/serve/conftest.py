"""Service fixtures: an event-store URL for each backend (SQLite always; PostgreSQL when
CROSSREC_TEST_PG_URL names a server, as .ci/run sets it)."""

from __future__ import annotations

import os

import pytest

PG_URL = os.environ.get("CROSSREC_TEST_PG_URL")


def _fresh_pg(url: str) -> str:
    from sqlalchemy import create_engine

    from crossrec.serve.store import metadata

    engine = create_engine(url)
    metadata.drop_all(engine)
    engine.dispose()
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    """A URL of an empty event store on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'events.db'}"
    if not PG_URL:
        pytest.skip("PostgreSQL tests need CROSSREC_TEST_PG_URL=postgresql+psycopg://... "
                    "(.ci/run starts a server and sets it)")
    return _fresh_pg(PG_URL)
