"""The container scan: finds C2PA manifests and generator metadata, finds nothing in ordinary files, and
never raises or runs away on hostile bytes."""

from __future__ import annotations

import io
import json
import random
import struct
import time
import zlib

import pytest
from PIL import Image, PngImagePlugin

from services.provenance.container_scan import ContainerScan, ScanLimits, scan_container
from tests.provenance.c2pa_signing import SigningChain, sign
from tests.provenance.synthetic import encoded, natural_image

TRAINED = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
A1111 = "a lighthouse at dusk\nNegative prompt: blurry\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1"


def _xmp(source_type: str | None = TRAINED, tool: str = "Adobe Photoshop 25.0") -> bytes:
    source = f' Iptc4xmpExt:DigitalSourceType="{source_type}"' if source_type else ""
    return (
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/"'
        f' xmlns:xmp="http://ns.adobe.com/xap/1.0/"{source} xmp:CreatorTool="{tool}"/></rdf:RDF></x:xmpmeta>'
    ).encode()


def _png(texts: dict[str, str] | None = None, compressed: str = "", **params: object) -> bytes:
    info = PngImagePlugin.PngInfo()
    for key, value in (texts or {}).items():
        if compressed == "itxt":
            info.add_itxt(key, value, zip=True)
        else:
            info.add_text(key, value, zip=compressed == "ztxt")
    buffer = io.BytesIO()
    Image.fromarray(natural_image(1, 64, 48)).save(buffer, format="PNG", pnginfo=info, **params)
    return buffer.getvalue()


def _exif(software: str = "Adobe Photoshop 25.0", user_comment: bytes | None = None) -> bytes:
    exif = Image.Exif()
    exif[0x0131] = software
    if user_comment is not None:
        exif.get_ifd(0x8769)[0x9286] = user_comment
    return exif.tobytes()


class TestFindsGeneratorMetadata:
    """Each generator's own metadata convention yields its label, in every container that carries it."""

    @pytest.mark.parametrize("compressed", ["", "ztxt", "itxt"])
    def test_a1111_parameters(self, compressed: str) -> None:
        scan = scan_container(_png({"parameters": A1111}, compressed))
        assert scan.format == "png" and scan.ai_metadata == ("png-text:parameters",)

    def test_comfyui_prompt_and_workflow(self) -> None:
        graph = json.dumps({"3": {"class_type": "KSampler", "inputs": {"seed": 1}}})
        scan = scan_container(_png({"prompt": graph, "workflow": graph}))
        assert scan.ai_metadata == ("png-text:prompt", "png-text:workflow")

    def test_novelai_software_and_source(self) -> None:
        scan = scan_container(_png({"Software": "NovelAI", "Source": "Stable Diffusion XL C1E1DE52"}))
        assert scan.ai_metadata == ("generator:novelai", "generator:stable-diffusion")

    def test_xmp_in_png(self) -> None:
        scan = scan_container(_png({"XML:com.adobe.xmp": _xmp().decode()}, "itxt"))
        assert scan.ai_metadata == ("xmp:trainedAlgorithmicMedia",)

    @pytest.mark.parametrize("fmt", ["JPEG", "WEBP"])
    def test_xmp_source_type_and_creator_tool(self, fmt: str) -> None:
        data = encoded(natural_image(2, 64, 48), fmt, xmp=_xmp(tool="Adobe Firefly 3"))
        assert scan_container(data).ai_metadata == ("xmp:trainedAlgorithmicMedia", "generator:firefly")

    def test_composite_with_ai(self) -> None:
        source = "http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia"
        data = encoded(natural_image(2, 64, 48), "JPEG", xmp=_xmp(source))
        assert scan_container(data).ai_metadata == ("xmp:compositeWithTrainedAlgorithmicMedia",)

    @pytest.mark.parametrize("fmt", ["JPEG", "WEBP", "PNG"])
    def test_exif_software_and_a1111_user_comment(self, fmt: str) -> None:
        comment = b"UNICODE\x00" + A1111.encode("utf-16-be")  # as A1111 writes it through piexif
        data = encoded(natural_image(3, 64, 48), fmt, exif=_exif("Midjourney", comment))
        assert scan_container(data).ai_metadata == ("generator:midjourney", "text:parameters")

    @pytest.mark.parametrize("fmt", ["JPEG", "GIF"])
    def test_parameters_in_a_comment(self, fmt: str) -> None:
        data = encoded(natural_image(4, 64, 48), fmt, comment=A1111.encode())
        assert scan_container(data).ai_metadata == ("text:parameters",)


class TestFindsC2paManifests:
    """A manifest embedded by c2pa-python is seen in PNG (caBX), JPEG (APP11), WebP (C2PA) and GIF."""

    @pytest.mark.parametrize(
        ("fmt", "mime_type"),
        [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("WEBP", "image/webp"), ("GIF", "image/gif")],
    )
    def test_signed(self, signing_chain: SigningChain, fmt: str, mime_type: str) -> None:
        scan = scan_container(sign(encoded(natural_image(5, 80, 60), fmt), mime_type, signing_chain))
        assert scan.c2pa_present and scan.mime_type == mime_type and scan.ai_metadata == ()


class TestOrdinaryFilesHaveNothing:
    """Photos and graphics with everyday metadata (editors, cameras, ICC, comments) give no finding."""

    @pytest.mark.parametrize(
        ("fmt", "params"),
        [
            ("PNG", {}),
            ("JPEG", {"quality": 90, "exif": _exif(), "xmp": _xmp(None), "comment": b"holiday, day 3"}),
            ("JPEG", {"progressive": True, "icc_profile": b"\x00" * 600}),
            ("WEBP", {"exif": _exif("GIMP 2.10"), "xmp": _xmp(None)}),
            ("WEBP", {"lossless": True}),
            ("GIF", {"comment": b"made by hand"}),
            ("BMP", {}),
        ],
    )
    def test_clean(self, fmt: str, params: dict[str, object]) -> None:
        scan = scan_container(encoded(natural_image(6, 120, 90), fmt, **params))
        assert not scan.c2pa_present and scan.ai_metadata == ()

    def test_everyday_png_text(self) -> None:
        texts = {"Software": "GIMP 2.10.36", "Comment": "scan of page 4", "Title": "prompt engineering", "Author": "me"}
        assert scan_container(_png(texts)).ai_metadata == ()

    def test_animated_gif(self) -> None:
        frames = [Image.fromarray(natural_image(seed, 64, 48)) for seed in range(3)]
        buffer = io.BytesIO()
        frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], loop=0, duration=50)
        assert scan_container(buffer.getvalue()) == ContainerScan("gif")


def _png_chunk(kind: bytes, body: bytes, length: int | None = None) -> bytes:
    size = len(body) if length is None else length
    return struct.pack(">I", size) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


class TestHostileBytes:
    """Garbage, truncation and lying lengths end the scan quietly with what came before; bounds hold."""

    def test_garbage(self) -> None:
        rng = random.Random(0)
        for magic in (b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"RIFF\x00\x00\x00\x00WEBP", b"GIF89a", b"BM"):
            for length in (0, 1, 7, 64, 4096):
                scan = scan_container(magic + rng.randbytes(length))
                assert not scan.c2pa_present and scan.ai_metadata == ()

    def test_every_truncation_of_every_format(self, signing_chain: SigningChain) -> None:
        samples = [
            sign(_png({"parameters": A1111}), "image/png", signing_chain),
            sign(encoded(natural_image(7, 64, 48), "JPEG", exif=_exif("Midjourney")), "image/jpeg", signing_chain),
            sign(encoded(natural_image(7, 64, 48), "WEBP", xmp=_xmp()), "image/webp", signing_chain),
            sign(encoded(natural_image(7, 64, 48), "GIF", comment=A1111.encode()), "image/gif", signing_chain),
        ]
        for data in samples:
            for cut in range(0, len(data), 7):
                scan_container(data[:cut])
            assert scan_container(data).c2pa_present

    def test_metadata_before_the_damage_survives(self) -> None:
        data = _png({"parameters": A1111})
        broken = data[: data.index(b"IDAT") - 4] + _png_chunk(b"IDAT", b"", length=0xFFFFFFF0)
        assert scan_container(broken).ai_metadata == ("png-text:parameters",)

    def test_lying_lengths(self) -> None:
        png = b"\x89PNG\r\n\x1a\n" + _png_chunk(b"tEXt", b"parameters\x00x", length=0xFFFFFFFF)
        jpeg = b"\xff\xd8" + b"\xff\xe1\x00\x01" + b"\xff\xe1\xff\xff" + b"Exif\x00\x00MM\x00*\xff\xff\xff\xff"
        webp = b"RIFF\xff\xff\xff\xffWEBP" + b"EXIF\xff\xff\xff\xff" + b"II*\x00\x08\x00\x00\x00\xff\xff"
        gif = b"GIF89a" + b"\x01\x00\x01\x00\xf7\x00\x00" + b"\x21\xff\x0bC2PA"
        exif = _exif()
        bad_offsets = exif[:4] + b"\xff\xff\xff\x7f" + exif[8:]
        assert scan_container(png).ai_metadata == ("png-text:parameters",)  # the key came before the lie
        for data in (jpeg, webp, gif, encoded(natural_image(8, 32, 32), "JPEG", exif=bad_offsets)):
            assert scan_container(data) == ContainerScan(scan_container(data).format)

    def test_deflate_bomb_is_bounded(self) -> None:
        bomb = b"parameters\x00\x00" + zlib.compress(bytes(64 << 20), 9)
        png = b"\x89PNG\r\n\x1a\n" + _png_chunk(b"zTXt", bomb)
        start = time.perf_counter()
        assert scan_container(png).ai_metadata == ("png-text:parameters",)
        assert time.perf_counter() - start < 0.5

    def test_many_tiny_chunks_hit_the_block_cap(self) -> None:
        chunks = _png_chunk(b"abCd", b"") * 200_000 + _png_chunk(b"tEXt", b"parameters\x00x")
        data = b"\x89PNG\r\n\x1a\n" + chunks
        start = time.perf_counter()
        assert scan_container(data).ai_metadata == ()  # past 20,000 blocks: not looked at
        assert scan_container(data, ScanLimits(max_blocks=300_000)).ai_metadata == ("png-text:parameters",)
        assert time.perf_counter() - start < 2.0

    def test_byte_cap(self) -> None:
        data = _png({"parameters": A1111})
        assert scan_container(data, ScanLimits(max_bytes=data.index(b"tEXt"))).ai_metadata == ()
