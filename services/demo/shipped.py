"""Where the trained demo model lives: inside the package, so every install has a model that answers.

It is the default of `flashvqa serve` and `make serve`; `python -m services.demo.training` with the
recipe in docs/demo-model.md rewrites it, `flashvqa eval-demo --model` measures it.
"""

from pathlib import Path

DEMO_MODEL = Path(__file__).parent / "glm4v-demo"
