"""The operator's policy for `image_url` parts given as http(s) URLs."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator


class RemoteImageOptions(BaseModel):
    """Whether, and from which hosts, the gateway fetches remote images; off unless the operator opts in."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = Field(False, description="fetch http(s) image URLs at all; when off, such URLs are refused")
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="host names as written in the URL, exact or `*.example.com` for any subdomain; "
        "empty allows none even when enabled",
    )
    allow_http: bool = Field(False, description="also accept plain http; when off, https only")
    max_bytes: int = Field(20 << 20, ge=1, description="largest image body accepted, in bytes")
    timeout_s: float = Field(10.0, gt=0, description="for the whole fetch, redirects included")
    max_redirects: int = Field(3, ge=0)

    @field_validator("allowed_hosts")
    @classmethod
    def _normalise_hosts(cls, hosts: list[str]) -> list[str]:
        normalised = [_normalise_host(host) for host in hosts]
        for host in normalised:
            name = host.removeprefix("*.")
            if not name or "*" in name:
                raise ValueError(f"allowed host {host!r} must be a host name or `*.` followed by one")
        return normalised

    @property
    def schemes(self) -> tuple[str, ...]:
        return ("https", "http") if self.allow_http else ("https",)

    def is_host_allowed(self, host: str) -> bool:
        """Whether the URL host `host` (IDNA/ASCII form) matches the allowlist; `*.example.com` matches
        subdomains at any depth but not `example.com` itself."""
        host = _normalise_host(host)
        return any(
            host.endswith(pattern[1:]) if pattern.startswith("*.") else host == pattern
            for pattern in self.allowed_hosts
        )


def _normalise_host(host: str) -> str:
    return host.strip().lower().removeprefix("[").removesuffix("]").rstrip(".")
