"""The dashboard's gate as pure functions (supertask.web.auth)."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize(("host", "served"), [
    ("127.0.0.1:8080", True), ("localhost:8080", True), ("[::1]:8080", True), ("127.0.0.2", True),
    ("app.localhost:80", True), ("evil.example:8080", False), ("10.0.0.5:8080", False), ("", True),
])
def test_without_tokens_only_loopback_host_names_are_served(host: str, served: bool) -> None:
    """DNS rebinding: a foreign name pointed at 127.0.0.1 must not reach the open dashboard."""
    from supertask.web.auth import loopback_host

    assert loopback_host(host) is served
