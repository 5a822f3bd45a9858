"""Who is asking, for every HTTP request (docs/dashboard.md, "Tokens").

- No token in the store: everyone who reaches the server may read and act (the server
  listens on loopback only then: :func:`supertask.web.serve.check_address`), as the
  server's own user.
- Once one exists: every request needs one, as ``Authorization: Bearer TOKEN`` or as
  the ``supertask_session`` cookie that ``/login`` sets (HttpOnly, SameSite=Strict);
  anything else is 401 (an API path) or the login page.
- A state-changing request that rides on a cookie (or on nothing, without tokens)
  needs the CSRF token the pages carry (form field ``csrf`` or header
  ``X-CSRF-Token``), or a JSON body (which a foreign page cannot send without a CORS
  preflight, never answered). A bearer token needs none.
- Failed logins: :data:`LOGIN_TRIES` per :data:`LOGIN_WINDOW` seconds per client
  address, then 429 until the window has passed; each failure logged (never the text given).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import deque

from supertask.store.access import Token
from supertask.store.base import Store
from supertask.web.data import Viewer

COOKIE = "supertask_session"
LOGIN_TRIES = 5
LOGIN_WINDOW = 60.0
#: how long "are there tokens" and a secret's lookup are trusted before asking the store again
CACHE_SECONDS = 1.0


class WrongHost(Exception):
    """A request naming another host than loopback while no token exists (403)."""


def is_loopback(host: str) -> bool:
    """Whether a host name or address (no port) is this machine's loopback."""
    name = host.strip("[]").lower()
    if name in ("localhost", ""):
        return True
    import ipaddress

    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return name.endswith(".localhost")


def loopback_host(host: str) -> bool:
    """Whether a Host header (``name[:port]``) names this machine's loopback."""
    return is_loopback(host.rsplit(":", 1)[0] if not host.endswith("]") else host)


class Gate:
    """The per-server state of authentication: a CSRF key, the tokens cache, failed logins."""

    def __init__(self, store: Store, user: str):
        self.store = store
        self.user = user
        self._key = secrets.token_bytes(32)  # CSRF tokens of a server without tokens
        self._lock = threading.Lock()
        self._has: tuple[float, bool] = (0.0, False)
        self._found: dict[str, tuple[float, Token | None]] = {}
        self._failures: dict[str, deque[float]] = {}

    def tokens_needed(self) -> bool:
        now = time.monotonic()
        with self._lock:
            at, has = self._has
        if now - at > CACHE_SECONDS:
            has = self.store.has_tokens()
            with self._lock:
                self._has = (now, has)
        return has

    def lookup(self, secret: str) -> Token | None:
        key = hashlib.sha256(secret.encode()).hexdigest()
        now = time.monotonic()
        with self._lock:
            hit = self._found.get(key)
        if hit is not None and now - hit[0] <= CACHE_SECONDS:
            return hit[1]
        token = self.store.token_for(secret)
        with self._lock:
            if len(self._found) > 1000:
                self._found.clear()
            self._found[key] = (now, token)
        return token

    def viewer(self, secret: str | None, peer: str, host: str = "127.0.0.1") -> Viewer | None:
        """The viewer of a request that gave ``secret`` (or none) with ``Host: host``;
        None: refused. Without tokens, only a request that names a loopback host is
        served: a page elsewhere whose name someone points at 127.0.0.1 (DNS rebinding)
        would otherwise read and act as a page of this server."""
        source = f"http {peer}"
        if not self.tokens_needed():
            if not loopback_host(host):
                raise WrongHost(f"Host {host!r}: without tokens this server answers only requests to a loopback "
                                "name (127.0.0.1, localhost, [::1]); create a token to serve other names")
            return Viewer(who=self.user, source=source)
        if not secret:
            return None
        token = self.lookup(secret)
        if token is None:
            return None
        return Viewer(who=f"token:{token.name}", source=source, token=token)

    def csrf(self, secret: str | None) -> str:
        """The CSRF token the pages of a session (its cookie's secret) carry."""
        basis = ("session:" + secret) if secret else "open"
        return hmac.new(self._key if not secret else b"supertask-csrf", basis.encode(), "sha256").hexdigest()

    def csrf_ok(self, secret: str | None, given: str | None) -> bool:
        return bool(given) and hmac.compare_digest(self.csrf(secret), given or "")

    # -- failed logins ---------------------------------------------------------------------

    def login_blocked(self, peer: str) -> float:
        """Seconds until ``peer`` may try again (0: now)."""
        now = time.monotonic()
        with self._lock:
            tries = self._failures.get(peer)
            while tries and now - tries[0] > LOGIN_WINDOW:
                tries.popleft()
            if not tries or len(tries) < LOGIN_TRIES:
                return 0.0
            return LOGIN_WINDOW - (now - tries[0])

    def login_failed(self, peer: str) -> None:
        with self._lock:
            if len(self._failures) > 10000:
                self._failures.clear()
            self._failures.setdefault(peer, deque()).append(time.monotonic())
