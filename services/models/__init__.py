"""Model families and their split into a vision half and a language half."""

from services.models.family import FAMILIES, ModelFamily, UnsupportedModelError
from services.models.language_half import LanguageHalf, Prompt
from services.models.vision_half import VisionHalf

__all__ = ["FAMILIES", "LanguageHalf", "ModelFamily", "Prompt", "UnsupportedModelError", "VisionHalf"]
