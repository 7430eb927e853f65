"""A headless Chromium driven through selenium: the dashboard's browser tests and screenshots.

Debian's ``chromium`` and ``chromium-driver`` (``make test`` installs them),
started with the flags this machine needs: no sandbox (root), no GPU, and
no background networking, whose connections a closed network refuses by
the dozen; a fresh profile each time.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from typing import Any

__all__ = ["ChromiumMissing", "FLAGS", "chromium", "find_chromium"]

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


class ChromiumMissing(RuntimeError):
    """No chromium, chromedriver or selenium here (``make test`` installs them)."""


def find_chromium() -> tuple[str, str]:
    """The chromium and chromedriver executables; ChromiumMissing says which is missing."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    missing = [name for name, path in (("chromium", browser), ("chromedriver", driver)) if path is None]
    if missing:
        raise ChromiumMissing(f"{' and '.join(missing)} not on PATH (Debian: apt-get install chromium chromium-driver)")
    try:
        import selenium  # noqa: F401
    except ImportError:
        raise ChromiumMissing("selenium is not installed (pip install -e '.[test]')") from None
    return browser, driver  # type: ignore[return-value]


@contextlib.contextmanager
def chromium(width: int = 1400, height: int = 1000, timeout: float = 20.0) -> Iterator[Any]:
    """A selenium webdriver on a fresh headless Chromium; quit on the way out."""
    browser, driver_path = find_chromium()
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    with tempfile.TemporaryDirectory(prefix="ownership-chromium-") as profile:
        options = Options()
        for flag in FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={profile}")
        options.add_argument(f"--window-size={width},{height}")
        options.binary_location = browser
        driver = webdriver.Chrome(options=options, service=Service(driver_path))
        try:
            driver.set_page_load_timeout(timeout)
            driver.set_script_timeout(timeout)
            yield driver
        finally:
            driver.quit()
