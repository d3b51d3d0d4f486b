"""API keys -> tenant namespaces, compared in constant time."""

import hashlib
import hmac
from collections.abc import Mapping

from pydantic import SecretStr

from service.settings import PUBLIC_TENANT


def _digest(key: str) -> bytes:
    # Comparing fixed-size digests keeps compare_digest from leaking the key's length.
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


class ApiKeyAuth:
    """Maps a presented bearer token to its tenant; with no keys configured everyone is PUBLIC_TENANT."""

    def __init__(self, api_keys: Mapping[SecretStr, str]) -> None:
        self._keys = [(_digest(key.get_secret_value()), tenant) for key, tenant in api_keys.items()]

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    def tenant_for(self, presented: str | None) -> str | None:
        """The tenant owning `presented`, or None when it is missing or unknown."""
        if not self._keys:
            return PUBLIC_TENANT
        if not presented:
            return None
        digest = _digest(presented)
        tenant: str | None = None
        for known, owner in self._keys:
            # No early exit: the time taken does not depend on which key (if any) matched.
            if hmac.compare_digest(digest, known):
                tenant = owner
        return tenant
