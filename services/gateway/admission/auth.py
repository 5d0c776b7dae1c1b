"""API keys -> tenants. Keys are configured as SHA-256 digests, never in the clear, and compared in
constant time, so neither the key file nor response timing gives a key away.

The key file (YAML; path from `auth.api_keys_file` or `$FLASHVQA_API_KEYS_FILE`)::

    tenants:
      - name: acme
        key_sha256: [9f86d081884c7d65...]   # `flashvqa hash-api-key` prints this line for a key
        requests_per_minute: 10             # optional; the gateway's defaults otherwise
        tokens_per_minute: 20000
        models: [acme-receipts]             # optional: the only model ids it may use (the base too, if listed)
        default_model: acme-receipts        # optional: answers its requests that name no model
        admin: false                        # true: may load and unload LoRA adapters at run time
"""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.gateway.api.api_error import APIError

API_KEYS_FILE_ENV = "FLASHVQA_API_KEYS_FILE"
ANONYMOUS = "anonymous"


class TenantConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    key_sha256: list[str] = Field(min_length=1, description="hex SHA-256 digests of the tenant's keys")
    requests_per_minute: int | None = Field(None, ge=1)
    tokens_per_minute: int | None = Field(None, ge=1)
    models: list[str] | None = Field(None, description="the model ids it may use; null: every one")
    default_model: str | None = Field(None, description="the model that answers when a request names none")
    admin: bool = Field(False, description="may load and unload LoRA adapters")

    @model_validator(mode="after")
    def _default_is_allowed(self) -> TenantConfig:
        if self.default_model is not None and self.models is not None and self.default_model not in self.models:
            raise ValueError(f"tenant {self.name!r}: default_model {self.default_model!r} is not in its models")
        return self


class ApiKeyFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tenants: list[TenantConfig]


class Tenant(BaseModel):
    """Who sent a request, with the limits that apply to them (None: the gateway's default)."""

    model_config = ConfigDict(frozen=True)

    name: str
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    models: frozenset[str] | None = None  # None: every model
    default_model: str | None = None
    admin: bool = False

    def may_use(self, model: str) -> bool:
        return self.models is None or model in self.models


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class Authenticator:
    """Resolves the `Authorization: Bearer <key>` header to a tenant, or refuses with 401."""

    def __init__(self, tenants: list[TenantConfig], allow_anonymous: bool) -> None:
        self._digests: list[tuple[bytes, Tenant]] = [
            (
                bytes.fromhex(digest),
                Tenant(
                    name=config.name,
                    requests_per_minute=config.requests_per_minute,
                    tokens_per_minute=config.tokens_per_minute,
                    models=None if config.models is None else frozenset(config.models),
                    default_model=config.default_model,
                    admin=config.admin,
                ),
            )
            for config in tenants
            for digest in config.key_sha256
        ]
        self.allow_anonymous = allow_anonymous
        if not (self._digests or allow_anonymous):
            raise ValueError("no API keys and anonymous access off: nobody could call us")

    @classmethod
    def from_file(cls, path: str | Path | None, allow_anonymous: bool) -> Authenticator:
        """`path` or `$FLASHVQA_API_KEYS_FILE`; with neither, only anonymous access (if allowed)."""
        path = path or os.environ.get(API_KEYS_FILE_ENV)
        if not path:
            if not allow_anonymous:
                raise ValueError(
                    f"configure API keys (auth.api_keys_file or ${API_KEYS_FILE_ENV}) "
                    "or allow anonymous access explicitly (auth.allow_anonymous)"
                )
            return cls([], allow_anonymous=True)
        key_file = ApiKeyFile.model_validate(yaml.safe_load(Path(path).read_text()))
        return cls(key_file.tenants, allow_anonymous)

    @property
    def has_keys(self) -> bool:
        """Whether API keys are configured (else every caller is anonymous, and may administer)."""
        return bool(self._digests)

    def authenticate(self, authorization: str | None) -> Tenant:
        if not self._digests:  # open mode: whatever key a client library insists on sending
            return Tenant(name=ANONYMOUS)
        if not authorization:
            if self.allow_anonymous:
                return Tenant(name=ANONYMOUS)
            raise _unauthorized("missing API key: send it as 'Authorization: Bearer <key>'")
        scheme, _, key = authorization.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise _unauthorized("malformed Authorization header: expected 'Bearer <key>'")
        presented = bytes.fromhex(hash_api_key(key.strip()))
        found: Tenant | None = None
        for digest, tenant in self._digests:  # no early exit: every key costs the same comparisons
            if hmac.compare_digest(presented, digest):
                found = tenant
        if found is None:
            raise _unauthorized("invalid API key")
        return found


def _unauthorized(message: str) -> APIError:
    return APIError(
        401, message, type="authentication_error", code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"}
    )
