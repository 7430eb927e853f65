"""ownership: distributed futures for fine-grained tasks on the Ownership protocol.

The public API (``remote``, ``get``, ``wait``, ``put``, ``shared``, ``cancel``,
``cluster``, ``connect``) is re-exported from :mod:`ownership.api` once that
module exists; the checker wrappers live in :mod:`ownership.tla`;
``ownership.testing`` (the in-memory cluster) and ``ownership.blocking`` (a
driver for synchronous code: scripts, notebooks) are imported on first use.
"""

__version__ = "0.1.0"

try:  # the API layer is optional while the package is being assembled
    from .api import *  # noqa: F401,F403
    from .api import __all__ as _api_all
except ImportError as exc:  # pragma: no cover - only while api.py is absent
    if exc.name != f"{__name__}.api":
        raise
    _api_all = []

__all__ = ["__version__", *_api_all]


def __getattr__(name: str):
    # ``ownership.testing`` (the in-memory cluster) is loaded on first use: it
    # needs trio.testing, hence pytest, which no worker process should import.
    # ``ownership.blocking`` too, as no worker process needs it.
    if name in ("testing", "blocking"):
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
