"""Types and input handling shared by the gateway, the encoder and the decoder."""

from services.common.image_embedding import ImageEmbedding
from services.common.image_input import ImageInputError, ImageLimits, content_hash, load_image

__all__ = ["ImageEmbedding", "ImageInputError", "ImageLimits", "content_hash", "load_image"]
