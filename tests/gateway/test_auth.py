"""API keys -> tenants: keys stored hashed, every refusal a 401 in the OpenAI envelope."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.gateway.admission.auth import ANONYMOUS, Authenticator, TenantConfig, hash_api_key
from services.gateway.api.errors import APIError

ACME_KEY = "sk-acme-0123456789"
GLOBEX_KEY = "sk-globex-9876543210"


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "keys.yaml"
    path.write_text(
        "tenants:\n"
        f"  - name: acme\n    key_sha256: [{hash_api_key(ACME_KEY)}, {hash_api_key('sk-acme-rotated')}]\n"
        "    requests_per_minute: 10\n"
        f"  - name: globex\n    key_sha256: [{hash_api_key(GLOBEX_KEY)}]\n    tokens_per_minute: 5000\n"
    )
    return path


class TestAuthenticate:
    """A key resolves to its tenant with that tenant's limits; anything else is a 401."""

    def test_each_key_maps_to_its_tenant(self, key_file: Path) -> None:
        auth = Authenticator.from_file(key_file, allow_anonymous=False)
        acme = auth.authenticate(f"Bearer {ACME_KEY}")
        assert (acme.name, acme.requests_per_minute, acme.tokens_per_minute) == ("acme", 10, None)
        assert auth.authenticate("Bearer sk-acme-rotated").name == "acme"
        assert auth.authenticate(f"bearer {GLOBEX_KEY}").tokens_per_minute == 5000

    @pytest.mark.parametrize(
        "header",
        [None, "", "Bearer", "Bearer   ", "Basic abc", f"Token {ACME_KEY}", "Bearer sk-wrong", f"Bearer {ACME_KEY}x"],
    )
    def test_missing_malformed_or_unknown_key_is_401(self, key_file: Path, header: str | None) -> None:
        auth = Authenticator.from_file(key_file, allow_anonymous=False)
        with pytest.raises(APIError) as refused:
            auth.authenticate(header)
        assert refused.value.status == 401
        assert refused.value.detail.type == "authentication_error"
        assert refused.value.headers["WWW-Authenticate"] == "Bearer"

    def test_the_file_holds_no_key_in_the_clear(self, key_file: Path) -> None:
        assert ACME_KEY not in key_file.read_text() and GLOBEX_KEY not in key_file.read_text()

    def test_environment_names_the_key_file(self, key_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("FLASHVQA_API_KEYS_FILE", str(key_file))
        assert Authenticator.from_file(None, allow_anonymous=False).authenticate(f"Bearer {ACME_KEY}").name == "acme"


class TestAnonymousAccess:
    """Open access happens only when configured; with keys configured it never hides a wrong key."""

    def test_no_keys_and_no_open_mode_refuses_to_start(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv("FLASHVQA_API_KEYS_FILE", raising=False)
        with pytest.raises(ValueError, match="allow anonymous access explicitly"):
            Authenticator.from_file(None, allow_anonymous=False)

    def test_open_mode_accepts_any_or_no_key(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv("FLASHVQA_API_KEYS_FILE", raising=False)
        auth = Authenticator.from_file(None, allow_anonymous=True)
        assert auth.authenticate(None).name == ANONYMOUS
        assert auth.authenticate("Bearer EMPTY").name == ANONYMOUS

    def test_keys_plus_anonymous_serves_keyless_but_refuses_wrong_keys(self) -> None:
        auth = Authenticator([TenantConfig(name="acme", key_sha256=[hash_api_key(ACME_KEY)])], allow_anonymous=True)
        assert auth.authenticate(None).name == ANONYMOUS
        assert auth.authenticate(f"Bearer {ACME_KEY}").name == "acme"
        with pytest.raises(APIError):
            auth.authenticate("Bearer sk-wrong")

    def test_malformed_key_file_is_refused(self, tmp_path: Path) -> None:
        path = tmp_path / "keys.yaml"
        path.write_text("tenants:\n  - name: acme\n    key: sk-in-the-clear\n")
        with pytest.raises(ValueError, match="key"):
            Authenticator.from_file(path, allow_anonymous=False)

    def test_a_default_model_the_tenant_may_not_use_is_refused(self, tmp_path: Path) -> None:
        path = tmp_path / "keys.yaml"
        path.write_text(
            f"tenants:\n  - name: acme\n    key_sha256: [{hash_api_key(ACME_KEY)}]\n"
            "    models: [receipts]\n    default_model: moderation\n"
        )
        with pytest.raises(ValueError, match="default_model 'moderation' is not in its models"):
            Authenticator.from_file(path, allow_anonymous=False)
