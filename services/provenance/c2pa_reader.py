"""Reading an embedded C2PA manifest store with `c2pa-python`, offline: who made the claim, whether it
asserts AI generation, and whether it validates.

Only called when the container scan saw a manifest. The settings turn off the two things that would reach
the network while a request waits (fetching a remote manifest, OCSP revocation checks); the SDK silently
ignores unknown setting keys, so a test checks that these two are honoured.
"""

from __future__ import annotations

import io
import json
import logging
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

logger = logging.getLogger(__name__)

OFFLINE_SETTINGS: dict[str, Any] = {"verify": {"remote_manifest_fetch": False, "ocsp_fetch": False}}
# IPTC digital source types that mean generative AI made all or part of the asset.
AI_SOURCE_TYPES = ("trainedAlgorithmicMedia", "compositeWithTrainedAlgorithmicMedia")
_MAX_GENERATOR_CHARS = 120


class C2paValidation(StrEnum):
    TRUSTED = "trusted"  # valid, and the signer chains to a configured trust anchor
    VALID = "valid"  # signature and hashes check out; the signer is not on a trust list
    INVALID = "invalid"  # the asset or the manifest was altered after signing
    UNREADABLE = "unreadable"  # malformed beyond parsing
    UNAVAILABLE = "unavailable"  # c2pa-python could not be loaded here


@dataclass(frozen=True)
class ManifestSummary:
    validation: C2paValidation
    claim_generator: str | None = None  # manifest text, sanitised: fine in JSON, not in a header
    ai_generated: bool = False


class C2paManifestReader:
    """Reads manifest stores with one offline `c2pa.Context`, created on first use."""

    def __init__(self, settings: dict[str, Any] | None = None) -> None:
        self._settings = settings or OFFLINE_SETTINGS
        self._context: Any = None

    def read(self, data: bytes, mime_type: str) -> ManifestSummary:
        """Never raises: a manifest the SDK rejects is reported as unreadable, a missing SDK as unavailable."""
        try:
            import c2pa
        except ImportError:
            return ManifestSummary(C2paValidation.UNAVAILABLE)
        try:
            if self._context is None:
                self._context = c2pa.Context.from_dict(self._settings)
            with c2pa.Reader(mime_type, io.BytesIO(data), context=self._context) as reader:
                store = json.loads(reader.json())
        # The bytes are hostile and the parser is native code behind a wrapper whose error types vary.
        except Exception as error:
            logger.debug("unreadable C2PA manifest: %s", error)
            return ManifestSummary(C2paValidation.UNREADABLE)
        return summarize_store(store)


def summarize_store(store: Any) -> ManifestSummary:
    """A manifest store as `Reader.json()` returns it -> its summary; tolerant of missing or odd fields."""
    if not isinstance(store, dict):
        return ManifestSummary(C2paValidation.UNREADABLE)
    manifests = store.get("manifests")
    manifests = manifests if isinstance(manifests, dict) else {}
    active = manifests.get(store.get("active_manifest"))
    return ManifestSummary(
        validation=_validation(store.get("validation_state")),
        claim_generator=_claim_generator(active) if isinstance(active, dict) else None,
        # Any manifest in the store counts: an edit of an AI image keeps the AI ingredient's manifest.
        ai_generated=any(_asserts_ai(manifest) for manifest in manifests.values() if isinstance(manifest, dict)),
    )


def _validation(state: Any) -> C2paValidation:
    if state == "Trusted":
        return C2paValidation.TRUSTED
    return C2paValidation.VALID if state == "Valid" else C2paValidation.INVALID


def _claim_generator(manifest: dict[str, Any]) -> str | None:
    infos = manifest.get("claim_generator_info")
    if isinstance(infos, list) and infos and isinstance(infos[0], dict):
        name, version = infos[0].get("name"), infos[0].get("version")
        text = f"{name} {version}" if isinstance(name, str) and isinstance(version, str) else name
    else:
        text = manifest.get("claim_generator")  # claims of version 1
    if not isinstance(text, str):
        return None
    printable = "".join(char for char in text if char.isprintable())
    return printable[:_MAX_GENERATOR_CHARS] or None


def _asserts_ai(manifest: dict[str, Any]) -> bool:
    assertions = manifest.get("assertions")
    for assertion in assertions if isinstance(assertions, list) else ():
        if not isinstance(assertion, dict) or not str(assertion.get("label", "")).startswith("c2pa.actions"):
            continue
        data = assertion.get("data")
        actions = data.get("actions") if isinstance(data, dict) else None
        for action in actions if isinstance(actions, list) else ():
            source = action.get("digitalSourceType") if isinstance(action, dict) else None
            if isinstance(source, str) and source.rsplit("/", 1)[-1] in AI_SOURCE_TYPES:
                return True
    return False
