from collections.abc import Iterator

import pytest

from tests.dashboard.postgres import available, postgres_cluster


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    if not available():
        pytest.fail("PostgreSQL 15 binaries are missing (/usr/lib/postgresql/15/bin)")
    with postgres_cluster() as url:
        yield url
