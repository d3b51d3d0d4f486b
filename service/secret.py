"""Where the MAC secret comes from: RECKONING_SECRET_KEY, or (embedded store only) a key file beside the facts.

With Redis every replica must sign with the same key and an attacker who can write Redis must not be able to
read it, so the key has to be configured: the server refuses to start without one. The embedded store keeps
its facts in one local SQLite file; whoever can change that file can also read a key file next to it, so a
key generated once and kept there (mode 0600) is as good as a configured one and keeps `reckoning serve`
working on a bare machine.
"""

import logging
import os
import secrets
from pathlib import Path

from service.settings import Settings

log = logging.getLogger(__name__)

GENERATE_HINT = "generate one with: python -c 'import secrets; print(secrets.token_hex(32))'"


class MissingSecret(RuntimeError):
    """No secret key where one is required."""


def missing_secret_message(settings: Settings) -> str | None:
    """Why this configuration cannot start for want of a secret key (None when it can)."""
    if settings.secret_key is None and settings.redis_url:
        return (
            "RECKONING_SECRET_KEY is not set: with RECKONING_REDIS_URL every replica signs and verifies stored "
            f"deltas and facts with the same secret key (at least 32 characters); {GENERATE_HINT}"
        )
    return None


def key_file(settings: Settings) -> Path:
    return settings.sqlite_path.with_name(settings.sqlite_path.name + ".key")


def resolve_secret(settings: Settings) -> bytes:
    """The MAC secret: the configured one, else (embedded store) the key file's, made on first use."""
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value().encode("utf-8")
    message = missing_secret_message(settings)
    if message:
        raise MissingSecret(message)
    path = key_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        secret = path.read_text(encoding="ascii").strip()
        if len(secret) < 32:
            raise MissingSecret(
                f"the key file {path} is damaged (shorter than 32 characters); {GENERATE_HINT}"
            ) from None
        return secret.encode("ascii")
    secret = secrets.token_hex(32)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(secret + "\n")
    log.warning(
        "RECKONING_SECRET_KEY is not set: generated a MAC key for the embedded store in %s (keep it with the "
        "database; set RECKONING_SECRET_KEY to choose one)",
        path,
    )
    return secret.encode("ascii")
