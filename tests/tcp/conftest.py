import secrets

import pytest

from ownership.core.messages import MESSAGE_TYPES


@pytest.fixture
def token() -> bytes:
    return secrets.token_bytes(32)


@pytest.fixture(scope="module", autouse=True)
def _register_test_messages(request):
    """Register a module's ``TEST_MESSAGES`` classes only while that module runs.

    Test messages stay out of MESSAGE_TYPES otherwise, so checks that walk
    the registry (the spec cross-reference) never see them.
    """
    classes = getattr(request.module, "TEST_MESSAGES", ())
    for cls in classes:
        assert cls.__name__ not in MESSAGE_TYPES, f"{cls.__name__} is already registered"
        MESSAGE_TYPES[cls.__name__] = cls
    yield
    for cls in classes:
        del MESSAGE_TYPES[cls.__name__]
