import secrets

import pytest


@pytest.fixture
def token() -> bytes:
    return secrets.token_bytes(32)
