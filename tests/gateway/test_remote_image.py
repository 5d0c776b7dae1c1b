"""Remote image URLs: refused unless enabled and allowlisted, never to a non-public address, size and time capped,
and every refusal a 400-shaped ImageInputError naming the caller's `param`."""

from __future__ import annotations

import contextlib
import gzip
import ipaddress
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from services.common.image_input import ImageInputError
from services.gateway.images.remote_image import NOT_ENABLED, RemoteImageFetcher
from services.gateway.images.remote_image_network import IPAddress, is_public_address
from services.gateway.images.remote_image_options import RemoteImageOptions

PARAM = "messages[0].content[1].image_url"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
MAX_BYTES = 100_000
GZIPPED = gzip.compress(PNG)
LOOPBACK = ipaddress.ip_address("127.0.0.1")


def _only_loopback(ip: IPAddress) -> bool:
    return ip == LOOPBACK


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.stopping = threading.Event()

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients that hang up mid-body are the point of several tests


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _send(self, status: int, headers: dict[str, str], body: bytes = b"") -> None:
        head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        self.wfile.write(f"HTTP/1.1 {status} X\r\n{head}Connection: close\r\n\r\n".encode() + body)

    def _redirect(self, location: str) -> None:
        self._send(302, {"Location": location, "Content-Length": "0"})

    def _stream(self, chunk: bytes, pause_s: float) -> None:
        self._send(200, {"Content-Type": "image/png"})
        while not self.server.stopping.wait(pause_s):
            self.wfile.write(chunk)

    def _declare_huge(self) -> None:
        # Declares a huge body and then sends none: only the header can have refused it in time.
        self._send(200, {"Content-Type": "image/png", "Content-Length": str(10**9)})
        self.server.stopping.wait(5)

    def _slow(self) -> None:
        self.server.stopping.wait(5)
        self._send(200, {"Content-Type": "image/png"}, PNG)

    def do_GET(self) -> None:
        port = self.server.server_address[1]
        routes: dict[str, Callable[[], None]] = {
            "/image.png": lambda: self._send(200, {"Content-Type": "image/png", "Content-Length": str(len(PNG))}, PNG),
            "/host": lambda: self._send(200, {"Content-Type": "image/png"}, self.headers["Host"].encode()),
            "/redirect": lambda: self._redirect("/image.png"),
            "/loop": lambda: self._redirect("/loop"),
            "/redirect-metadata": lambda: self._redirect("http://169.254.169.254/latest/meta-data/"),
            "/redirect-loopback-alias": lambda: self._redirect(f"http://127.0.0.2:{port}/image.png"),
            "/redirect-ftp": lambda: self._redirect(f"ftp://127.0.0.1:{port}/image.png"),
            "/page.html": lambda: self._send(200, {"Content-Type": "text/html", "Content-Length": "4"}, b"<p/>"),
            "/missing": lambda: self._send(404, {"Content-Type": "image/png", "Content-Length": "0"}),
            "/gzip": lambda: self._send(200, {"Content-Type": "image/png", "Content-Encoding": "gzip"}, GZIPPED),
            "/huge": lambda: self._stream(b"\0" * 65536, pause_s=0),
            "/drip": lambda: self._stream(b"\0", pause_s=0.05),
            "/declared-huge": self._declare_huge,
            "/lying-length": lambda: self._send(
                200, {"Content-Type": "image/png", "Content-Length": "100"}, b"\0" * (10 * MAX_BYTES)
            ),
            "/truncated": lambda: self._send(200, {"Content-Type": "image/png", "Content-Length": "1000"}, b"\0" * 10),
            "/slow": self._slow,
        }
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            routes[self.path]()


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    """The base URL (http://127.0.0.1:PORT) of a raw HTTP server whose routes misbehave on purpose."""
    httpd = _Server()
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.stopping.set()
        httpd.shutdown()
        httpd.server_close()


def _fetcher(address_allowed: Callable[[IPAddress], bool] = _only_loopback, **options: object) -> RemoteImageFetcher:
    settings: dict[str, object] = {
        "enabled": True,
        "allowed_hosts": ["127.0.0.1", "127.0.0.2"],
        "allow_http": True,
        "max_bytes": MAX_BYTES,
        "timeout_s": 2.0,
    }
    settings.update(options)
    return RemoteImageFetcher(RemoteImageOptions.model_validate(settings), address_allowed=address_allowed)


async def _refusal(fetcher: RemoteImageFetcher, url: str) -> str:
    with pytest.raises(ImageInputError) as caught:
        await fetcher.fetch(url, PARAM)
    assert caught.value.param == PARAM
    return str(caught.value)


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("127.0.0.1", False),
        ("::1", False),
        ("10.1.2.3", False),
        ("172.16.0.1", False),
        ("172.31.255.255", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("0.0.0.0", False),
        ("::", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:169.254.169.254", False),
        ("fc00::1", False),
        ("fd12:3456::1", False),
        ("fe80::1", False),
        ("224.0.0.1", False),
        ("ff02::1", False),
        ("255.255.255.255", False),
        ("240.0.0.1", False),
        ("2002:7f00:1::", False),
        ("64:ff9b::a00:1", False),
        ("8.8.8.8", True),
        ("1.1.1.1", True),
        ("2606:4700:4700::1111", True),
    ],
)
def test_is_public_address(address: str, public: bool) -> None:
    assert is_public_address(ipaddress.ip_address(address)) is public


class TestAllowlist:
    """Hosts match exactly or as subdomains of a `*.` pattern, case- and trailing-dot-insensitively; an empty
    list matches nothing."""

    @pytest.mark.parametrize(
        ("host", "allowed"),
        [
            ("images.example.com", True),
            ("IMAGES.example.com.", True),
            ("a.cdn.example.net", True),
            ("a.b.cdn.example.net", True),
            ("cdn.example.net", False),
            ("evilcdn.example.net", False),
            ("example.com", False),
            ("images.example.com.evil.org", False),
        ],
    )
    def test_matching(self, host: str, allowed: bool) -> None:
        options = RemoteImageOptions(allowed_hosts=["Images.Example.com", "*.cdn.example.net"])
        assert options.is_host_allowed(host) is allowed

    def test_empty_allows_none(self) -> None:
        assert not RemoteImageOptions(enabled=True).is_host_allowed("example.com")

    @pytest.mark.parametrize("pattern", ["*", "*.", "img*.example.com", "*.*.example.com", ""])
    def test_malformed_patterns_are_refused_at_startup(self, pattern: str) -> None:
        with pytest.raises(ValueError, match="allowed host"):
            RemoteImageOptions(allowed_hosts=[pattern])


class TestRefusedBeforeConnecting:
    """A URL outside the policy is refused from its text alone, with the caller's param."""

    async def test_disabled_by_default(self, server: str) -> None:
        fetcher = RemoteImageFetcher(RemoteImageOptions(allowed_hosts=["127.0.0.1"]), address_allowed=_only_loopback)
        assert await _refusal(fetcher, f"{server}/image.png") == NOT_ENABLED

    async def test_http_needs_allow_http(self, server: str) -> None:
        assert "must use https" in await _refusal(_fetcher(allow_http=False), f"{server}/image.png")

    @pytest.mark.parametrize("url", ["ftp://127.0.0.1/image.png", "file:///etc/passwd", "/image.png", "127.0.0.1"])
    async def test_other_schemes(self, url: str) -> None:
        assert "must use https or http" in await _refusal(_fetcher(), url)

    async def test_credentials_in_url(self, server: str) -> None:
        assert "credentials" in await _refusal(_fetcher(), server.replace("//", "//user:secret@") + "/image.png")

    async def test_host_not_on_allowlist(self) -> None:
        assert "allowlist" in await _refusal(_fetcher(), "http://169.254.169.254/latest/meta-data/")

    async def test_empty_allowlist_allows_nothing(self, server: str) -> None:
        assert "allowlist" in await _refusal(_fetcher(allowed_hosts=[]), f"{server}/image.png")

    async def test_malformed_url(self) -> None:
        assert "not a valid URL" in await _refusal(_fetcher(), "http://[::1/image.png")


class TestAddressCheck:
    """The address connected to is the address checked: every address a host resolves to must pass the
    policy, and the default policy refuses loopback even for an allowlisted host."""

    async def test_default_policy_refuses_loopback(self, server: str) -> None:
        message = await _refusal(_fetcher(address_allowed=is_public_address), f"{server}/image.png")
        assert "non-public" in message

    async def test_default_policy_resolves_names(self, server: str) -> None:
        url = server.replace("127.0.0.1", "localhost") + "/image.png"
        message = await _refusal(_fetcher(address_allowed=is_public_address, allowed_hosts=["localhost"]), url)
        assert "non-public" in message

    async def test_connects_to_the_checked_address_under_the_name(self, server: str) -> None:
        async def resolve(host: str, port: int) -> list[IPAddress]:
            assert host == "images.test"
            return [LOOPBACK]

        options = RemoteImageOptions(enabled=True, allowed_hosts=["images.test"], allow_http=True)
        fetcher = RemoteImageFetcher(options, address_allowed=_only_loopback, resolve=resolve)
        port = server.rsplit(":", 1)[1]
        assert await fetcher.fetch(f"http://images.test:{port}/host", PARAM) == f"images.test:{port}".encode()

    async def test_one_forbidden_address_among_several_refuses(self, server: str) -> None:
        async def resolve(host: str, port: int) -> list[IPAddress]:
            return [LOOPBACK, ipaddress.ip_address("10.0.0.1")]

        options = RemoteImageOptions(enabled=True, allowed_hosts=["127.0.0.1"], allow_http=True)
        fetcher = RemoteImageFetcher(options, address_allowed=_only_loopback, resolve=resolve)
        assert "non-public" in await _refusal(fetcher, f"{server}/image.png")


class TestFetch:
    """An allowed URL yields the image bytes, through allowed redirects."""

    async def test_image(self, server: str) -> None:
        assert await _fetcher().fetch(f"{server}/image.png", PARAM) == PNG

    async def test_relative_redirect(self, server: str) -> None:
        assert await _fetcher().fetch(f"{server}/redirect", PARAM) == PNG


class TestRedirects:
    """Each redirect hop is checked like the first URL, and their number is capped."""

    async def test_loop(self, server: str) -> None:
        assert "more than 3 times" in await _refusal(_fetcher(), f"{server}/loop")

    async def test_cap_of_zero(self, server: str) -> None:
        assert "more than 0 times" in await _refusal(_fetcher(max_redirects=0), f"{server}/redirect")

    async def test_to_host_off_the_allowlist(self, server: str) -> None:
        message = await _refusal(_fetcher(), f"{server}/redirect-metadata")
        assert "redirect host '169.254.169.254' is not on this server's allowlist" in message

    async def test_to_forbidden_address(self, server: str) -> None:
        assert "non-public" in await _refusal(_fetcher(), f"{server}/redirect-loopback-alias")

    async def test_to_other_scheme(self, server: str) -> None:
        assert "redirect must use" in await _refusal(_fetcher(), f"{server}/redirect-ftp")


class TestResponseChecks:
    """Only a 200 image/* body of at most max_bytes, uncompressed, is accepted; the cap holds whether or not
    the server declares (or lies about) the length."""

    @pytest.mark.parametrize(
        ("path", "expected"),
        [
            ("/missing", "HTTP 404"),
            ("/page.html", "not an image (Content-Type: text/html)"),
            ("/gzip", "compressed"),
            ("/declared-huge", f"larger than {MAX_BYTES} bytes (Content-Length"),
            ("/huge", f"larger than {MAX_BYTES} bytes"),
            ("/truncated", "could not fetch"),
        ],
    )
    async def test_refused(self, server: str, path: str, expected: str) -> None:
        assert expected in await _refusal(_fetcher(), f"{server}{path}")

    async def test_lying_content_length_reads_no_more_than_declared(self, server: str) -> None:
        assert len(await _fetcher().fetch(f"{server}/lying-length", PARAM)) == 100


class TestLimits:
    """The time cap covers the whole fetch, body included; connection failures are client errors too."""

    @pytest.mark.parametrize("path", ["/slow", "/drip"])
    async def test_time_cap(self, server: str, path: str) -> None:
        start = time.monotonic()
        assert "took longer than 0.3 s" in await _refusal(_fetcher(timeout_s=0.3), f"{server}{path}")
        assert time.monotonic() - start < 1.5

    async def test_connection_refused(self) -> None:
        with socket.socket() as unused:
            unused.bind(("127.0.0.1", 0))
            port = unused.getsockname()[1]
        assert "could not fetch" in await _refusal(_fetcher(), f"http://127.0.0.1:{port}/image.png")

    async def test_unresolvable_host(self) -> None:
        async def resolve(host: str, port: int) -> list[IPAddress]:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

        options = RemoteImageOptions(enabled=True, allowed_hosts=["nowhere.test"])
        fetcher = RemoteImageFetcher(options, resolve=resolve)
        assert "could not fetch" in await _refusal(fetcher, "https://nowhere.test/image.png")
