"""Configurations the server refuses to start with: no API keys on a reachable host, Redis without a secret key."""

from service.secret import missing_secret_message
from service.settings import Settings

KEY_HINT = "python -c 'import secrets; print(secrets.token_urlsafe(32))'"


class StartupRefused(RuntimeError):
    """The settings would serve insecurely; the message says what to set."""


def anonymous_message(settings: Settings) -> str | None:
    """Why serving without API keys is refused here (None when keys are set, the host is loopback, or
    RECKONING_ALLOW_ANONYMOUS=1 opts in)."""
    if settings.auth_enabled or settings.loopback_only or settings.allow_anonymous:
        return None
    return (
        f"refusing to serve without API keys on {settings.host}, which other machines can reach. Set "
        'RECKONING_API_KEYS to a JSON object of keys and their tenants, e.g. RECKONING_API_KEYS=\'{"<key>": "alice"}\' '
        f"(make a key with {KEY_HINT}), or set RECKONING_ALLOW_ANONYMOUS=1 to let anyone in as one anonymous "
        "tenant. On 127.0.0.1 the server may run without keys."
    )


def refusals(settings: Settings) -> list[str]:
    """Every reason these settings must not serve (empty when they may)."""
    return [m for m in (anonymous_message(settings), missing_secret_message(settings)) if m]


def check(settings: Settings) -> None:
    problems = refusals(settings)
    if problems:
        raise StartupRefused("\n".join(problems))
