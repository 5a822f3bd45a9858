"""Browser tests: Playwright driving Debian's chromium (`make test-browser` installs it
where it can). Playwright's own browser download is not used (it cannot reach its host
here); where chromium or the playwright package is missing, the tests skip saying so."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def chromium_path() -> str | None:
    for candidate in (os.environ.get("SUPERTASK_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
                      shutil.which("chromium-browser")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the playwright package is not installed (make setup installs it)")
    path = chromium_path()
    if path is None:
        pytest.skip("no chromium: `make test-browser` installs Debian's (apt-get install chromium), "
                    "or set SUPERTASK_CHROMIUM to a Chromium binary")
    with sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=path, args=CHROMIUM_ARGS, headless=True)
        try:
            yield instance
        finally:
            instance.close()
