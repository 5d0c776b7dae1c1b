"""Where the trained demo model and its demo adapter live: inside the package, so every install has a model
that answers.

The model is the default of `flashvqa serve` and `make serve`; `python -m services.demo.training` with the
recipe in docs/demo-model.md rewrites it, `flashvqa eval-demo --model` measures it. The adapter, a LoRA that
makes it answer in sentences, is what `make serve-lora` serves as model `sentences`;
`python -m services.demo.adapter_training` rewrites it.
"""

from pathlib import Path

DEMO_MODEL = Path(__file__).parent / "glm4v-demo"
SENTENCES_ADAPTER = Path(__file__).parent / "sentences-adapter"
