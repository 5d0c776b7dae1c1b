"""Real, signed C2PA manifests made offline: a throwaway ES256 root CA and signer certificate built with
`cryptography` (c2pa-rs refuses self-signed signers, so the chain has two links) and `c2pa.Builder`."""

from __future__ import annotations

import datetime
import io
from dataclasses import dataclass
from typing import Any

import c2pa
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

IPTC_SOURCE_TYPE = "http://cv.iptc.org/newscodes/digitalsourcetype/"
_NO_USAGE = dict.fromkeys(
    ("content_commitment", "key_encipherment", "data_encipherment", "key_agreement", "encipher_only", "decipher_only"),
    False,
)


@dataclass(frozen=True)
class SigningChain:
    chain_pem: bytes  # signer certificate, then the root
    key_pem: bytes

    def signer(self) -> c2pa.Signer:
        return c2pa.Signer.from_info(c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, self.chain_pem, self.key_pem, None))


def make_chain(ocsp_url: str | None = None) -> SigningChain:
    now = datetime.datetime.now(datetime.UTC)
    root_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    root_name, name = _name("flashvqa test root"), _name("flashvqa test signer")
    root = (
        _certificate(root_name, root_name, root_key.public_key(), now)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=False, key_cert_sign=True, crl_sign=True, **_NO_USAGE), True)
        .sign(root_key, hashes.SHA256())
    )
    builder = (
        _certificate(name, root_name, key.public_key(), now)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=False, crl_sign=False, **_NO_USAGE), True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), critical=False)
    )
    if ocsp_url:
        access = x509.AccessDescription(AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(ocsp_url))
        builder = builder.add_extension(x509.AuthorityInformationAccess([access]), critical=False)
    leaf = builder.sign(root_key, hashes.SHA256())
    chain = leaf.public_bytes(serialization.Encoding.PEM) + root.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return SigningChain(chain, key_pem)


def manifest_definition(
    source_type: str = "trainedAlgorithmicMedia", generator: str = "flashvqa-test-generator"
) -> dict[str, Any]:
    action = {"action": "c2pa.created", "digitalSourceType": IPTC_SOURCE_TYPE + source_type}
    return {
        "claim_generator_info": [{"name": generator, "version": "1.0"}],
        "title": "generated image",
        "assertions": [{"label": "c2pa.actions", "data": {"actions": [action]}}],
    }


def sign(
    data: bytes,
    mime_type: str,
    chain: SigningChain,
    manifest: dict[str, Any] | None = None,
    remote_url: str | None = None,
) -> bytes:
    """Encoded image -> the same image with a signed manifest embedded (or only referenced, with `remote_url`)."""
    context = c2pa.Context.from_dict({"builder": {"thumbnail": {"enabled": False}}})
    builder = c2pa.Builder(manifest or manifest_definition(), context=context)
    if remote_url:
        builder.set_no_embed()
        builder.set_remote_url(remote_url)
    output = io.BytesIO()
    builder.sign(chain.signer(), mime_type, io.BytesIO(data), output)
    return output.getvalue()


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "flashvqa tests"),
        ]
    )


def _certificate(
    subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey, now: datetime.datetime
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )
