"""Images given as OpenAI `image_url` parts that are http(s) URLs, fetched under the operator's policy.

Every refusal or failure, the remote server's included, is an ImageInputError naming the client's `param`,
so a client URL can cost at most a 400, never a 500 or a 504.
"""

from __future__ import annotations

import asyncio

import httpcore
import httpx

from services.common.image_input import ImageInputError
from services.gateway.images.remote_image_network import (
    AddressPolicy,
    CheckedNetworkBackend,
    ForbiddenAddressError,
    Resolver,
    is_public_address,
    resolve_host,
)
from services.gateway.images.remote_image_options import RemoteImageOptions

NOT_ENABLED = "image URLs are not enabled on this server; send the image as a data URL"
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_TIMEOUTS = (TimeoutError, httpcore.TimeoutException)
# OSError: what escapes httpcore's own mapping, such as a TLS alert in the middle of the body.
_TRANSPORT_ERRORS = (httpcore.NetworkError, httpcore.ProtocolError, httpcore.UnsupportedProtocol, OSError)
# identity: a compressed body could inflate far past max_bytes between two size checks.
_REQUEST_HEADERS = [(b"Accept", b"image/*"), (b"Accept-Encoding", b"identity"), (b"User-Agent", b"flashvqa")]


class RemoteImageFetcher:
    """Fetches the bytes of an http(s) image URL: only when enabled, only from allowlisted hosts at
    addresses `address_allowed` accepts (checked on the address actually connected to, on every redirect
    hop), at most `max_bytes` within `timeout_s` in all."""

    def __init__(
        self,
        options: RemoteImageOptions,
        *,
        address_allowed: AddressPolicy = is_public_address,
        resolve: Resolver = resolve_host,
    ) -> None:
        self._options = options
        self._backend = CheckedNetworkBackend(address_allowed, resolve)
        self._ssl_context = httpcore.default_ssl_context()

    async def fetch(self, url: str, param: str) -> bytes:
        """The body of `url`; raises ImageInputError(message, param) for any refusal or failure."""
        if not self._options.enabled:
            raise ImageInputError(NOT_ENABLED, param)
        try:
            async with asyncio.timeout(self._options.timeout_s):
                return await self._follow(url, param)
        except _TIMEOUTS as error:
            raise ImageInputError(f"image URL took longer than {self._options.timeout_s:g} s", param) from error
        except ForbiddenAddressError as error:
            raise ImageInputError(
                f"image URL host {error} is on a private or otherwise non-public network", param
            ) from error
        except _TRANSPORT_ERRORS as error:
            raise ImageInputError(f"could not fetch the image URL ({type(error).__name__})", param) from error

    async def _follow(self, url: str, param: str) -> bytes:
        # httpx's transport takes no network backend (short of replacing its private `_pool`), so we drive
        # the httpcore pool ourselves; httpx only parses and joins URLs. Redirects are followed here, by hand.
        target = self._checked(_parse(url, "image URL", param), "image URL", param)
        async with httpcore.AsyncConnectionPool(ssl_context=self._ssl_context, network_backend=self._backend) as pool:
            for _ in range(self._options.max_redirects + 1):
                headers = [(b"Host", target.netloc), *_REQUEST_HEADERS]
                async with pool.stream("GET", _core_url(target), headers=headers) as response:
                    location = httpx.Headers(response.headers).get("location")
                    if response.status not in _REDIRECT_STATUSES or location is None:
                        return await self._read_image(response, param)
                next_url = _parse(location, "image URL redirect", param, base=target)
                target = self._checked(next_url, "image URL redirect", param)
        raise ImageInputError(f"image URL redirected more than {self._options.max_redirects} times", param)

    def _checked(self, url: httpx.URL, subject: str, param: str) -> httpx.URL:
        if url.scheme not in self._options.schemes:
            raise ImageInputError(f"{subject} must use {' or '.join(self._options.schemes)}", param)
        if url.userinfo:
            raise ImageInputError(f"{subject} must not contain credentials (user:password@)", param)
        host = url.raw_host.decode("ascii")
        if not host:
            raise ImageInputError(f"{subject} has no host", param)
        if not self._options.is_host_allowed(host):
            raise ImageInputError(f"{subject} host {host!r} is not on this server's allowlist", param)
        return url

    async def _read_image(self, response: httpcore.Response, param: str) -> bytes:
        headers = httpx.Headers(response.headers)
        if response.status != 200:
            raise ImageInputError(f"image URL answered HTTP {response.status}, not 200", param)
        content_type = headers.get("content-type", "").partition(";")[0].strip().lower()
        if not content_type.startswith("image/"):
            raise ImageInputError(f"image URL is not an image (Content-Type: {content_type[:60] or 'none'})", param)
        if headers.get("content-encoding", "identity").strip().lower() not in ("", "identity"):
            raise ImageInputError("image URL answered with a compressed (Content-Encoding) body", param)
        limit = self._options.max_bytes
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise ImageInputError(f"image is larger than {limit} bytes (Content-Length: {declared})", param)
        body = bytearray()
        async for chunk in response.aiter_stream():
            body += chunk
            if len(body) > limit:
                raise ImageInputError(f"image is larger than {limit} bytes", param)
        return bytes(body)


def _parse(url: str, subject: str, param: str, base: httpx.URL | None = None) -> httpx.URL:
    try:
        return base.join(url) if base is not None else httpx.URL(url)
    except (httpx.InvalidURL, ValueError) as error:
        raise ImageInputError(f"{subject} is not a valid URL", param) from error


def _core_url(url: httpx.URL) -> httpcore.URL:
    return httpcore.URL(scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path)
