"""Which metadata says an image came from a generator, as labels from a fixed vocabulary.

The labels go into a response header, so they never echo client text: a known key, a known generator's slug,
or a known IPTC term. Matching is on the bytes the container holds; none of it is signed, so a label is a
claim the file makes about itself (and is as easy to strip as to forge).
"""

from __future__ import annotations

import re

from services.provenance.exif_fields import IMAGE_DESCRIPTION, SOFTWARE, USER_COMMENT, exif_text_fields

# PNG text keys that generator front-ends write, and the label each gets.
_GENERATOR_TEXT_KEYS: dict[str, str] = {
    "parameters": "png-text:parameters",  # AUTOMATIC1111, Forge, SD.Next, Fooocus, SwarmUI
    "prompt": "png-text:prompt",  # ComfyUI
    "workflow": "png-text:workflow",  # ComfyUI
    "invokeai_metadata": "png-text:invokeai",
    "invokeai_graph": "png-text:invokeai",
    "sd-metadata": "png-text:invokeai",
    "dream": "png-text:invokeai",
    "fooocus_scheme": "png-text:fooocus",
}
# PNG text keys whose value names the producing tool.
_TOOL_TEXT_KEYS = frozenset({"software", "creator", "source", "generator", "creator tool"})

# (slug, lowercase needles): a short list of generators that sign their files with their name.
_GENERATORS: tuple[tuple[str, tuple[bytes, ...]], ...] = (
    ("stable-diffusion", (b"stable diffusion", b"stablediffusion", b"sdxl")),
    ("midjourney", (b"midjourney", b"nijijourney")),
    ("dall-e", (b"dall-e", "dall·e".encode(), b"dalle")),
    ("gpt-image", (b"gpt-image", b"chatgpt")),
    ("firefly", (b"firefly",)),
    ("novelai", (b"novelai",)),
    ("comfyui", (b"comfyui",)),
    ("automatic1111", (b"automatic1111", b"stable-diffusion-webui")),
    ("invokeai", (b"invokeai",)),
    ("fooocus", (b"fooocus",)),
    ("flux", (b"flux.1", b"flux.2", b"black forest labs")),
    ("ideogram", (b"ideogram",)),
)

# IPTC digital source types that mean generative AI (plain `algorithmicMedia` does not).
_XMP_TERMS: tuple[tuple[bytes, str], ...] = (
    (b"trainedAlgorithmicMedia", "xmp:trainedAlgorithmicMedia"),
    (b"compositeWithTrainedAlgorithmicMedia", "xmp:compositeWithTrainedAlgorithmicMedia"),
    (b"tc260.org.cn/ns/AIGC", "xmp:aigc-label"),  # China's mandatory AI-content label (GB 45438-2025)
    (b"Made with Google AI", "xmp:made-with-google-ai"),
)
_CREATOR_TOOL = re.compile(rb"CreatorTool(?:\s*=\s*[\"']([^\"'<]{0,200})|>([^<]{0,200})<)")
# AUTOMATIC1111's parameters block, as written to EXIF UserComment and JPEG comments.
_A1111_PARAMETERS = re.compile(rb"Steps: \d+, Sampler: ")


def generator_label(value: bytes) -> str | None:
    """A tool-identity value (Software, CreatorTool...) -> `generator:<slug>` when it names a known generator."""
    lowered = value[:400].lower()
    for slug, needles in _GENERATORS:
        if any(needle in lowered for needle in needles):
            return f"generator:{slug}"
    return None


def png_text_labels(key: bytes, text: bytes) -> list[str]:
    """One PNG tEXt/zTXt/iTXt entry (text already inflated) -> its labels."""
    name = key.decode("latin-1").strip().lower()
    if name in _GENERATOR_TEXT_KEYS:
        return [_GENERATOR_TEXT_KEYS[name]]
    if name == "xml:com.adobe.xmp":
        return xmp_labels(text)
    if name in _TOOL_TEXT_KEYS:
        label = generator_label(text)
        return [label] if label else []
    return comment_labels(text) if name in ("comment", "description") else []


def comment_labels(text: bytes) -> list[str]:
    """Free text (a JPEG or PNG comment, an EXIF description) -> a label if it holds A1111 parameters."""
    return ["text:parameters"] if _A1111_PARAMETERS.search(text.replace(b"\x00", b"")) else []


def xmp_labels(xmp: bytes) -> list[str]:
    labels = [label for term, label in _XMP_TERMS if term in xmp]
    for match in _CREATOR_TOOL.finditer(xmp):
        label = generator_label(match.group(1) or match.group(2) or b"")
        if label:
            labels.append(label)
    return labels


def exif_labels(tiff: bytes) -> list[str]:
    fields = exif_text_fields(tiff)
    labels = []
    if SOFTWARE in fields and (label := generator_label(fields[SOFTWARE])):
        labels.append(label)
    for tag in (USER_COMMENT, IMAGE_DESCRIPTION):
        if tag in fields:
            # UserComment may be UTF-16 (A1111 writes "UNICODE\0" + UTF-16): the NUL bytes go before matching.
            labels += comment_labels(fields[tag])
    return labels
