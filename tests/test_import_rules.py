"""The layering the design states, held against the code: a change that breaks a rule fails here.

Static rules read every `import` statement of `services/` (module level or inside a function); the gateway's
torch-freedom is also checked where it matters, in a fresh interpreter, since an allowed import may pull a
forbidden one in behind it."""

from __future__ import annotations

import ast
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SERVICES = ROOT / "services"
MODEL_STACK = ("torch", "torchvision", "transformers")
SERVICE_PACKAGES = (
    "services.gateway",
    "services.vision_encoder",
    "services.llm_decoder",
    "services.routing",
    "services.autoscaling",
    "services.safety",
    "services.provenance",
    "services.demo",
)
# The composition roots wire the services together, so they alone may import any of them.
COMPOSITION_ROOTS = ("services.app_builder", "services.cli", "services.in_process_app", "services.local_server")


@dataclass(frozen=True)
class Rule:
    """Modules under one of `sources` (a package or a module, by dotted name) never import a module under one
    of `forbidden`, except the modules named in `allowed`."""

    name: str
    sources: tuple[str, ...]
    forbidden: tuple[str, ...]
    allowed: tuple[str, ...] = ()


RULES = [
    Rule("the encoder never imports the decoder", ("services.vision_encoder",), ("services.llm_decoder",)),
    Rule("the decoder never imports the encoder", ("services.llm_decoder",), ("services.vision_encoder",)),
    Rule(
        "shared model code, messages and common helpers import no service",
        ("services.models", "services.messages", "services.common"),
        SERVICE_PACKAGES,
    ),
    Rule(
        "nothing but the gateway and the composition roots imports the gateway",
        ("services",),
        ("services.gateway",),
        allowed=("services.gateway", *COMPOSITION_ROOTS),
    ),
    Rule(
        "the gateway imports no model code and no torch",
        ("services.gateway",),
        (
            "services.models",
            "services.llm_decoder",
            "services.vision_encoder",
            "services.common.image_embedding",
            *MODEL_STACK,
        ),
    ),
    Rule("the messages import no torch", ("services.messages",), MODEL_STACK),
    Rule(
        "nothing a server runs imports the tiny-model builders or the demo's training",
        ("services",),
        (
            "services.tiny_models.model_builder",
            "services.tiny_models.tokenizer_builder",
            "services.demo.training",
            "services.demo.adapter_training",
        ),
        allowed=("services.tiny_models", "services.demo", "services.cli"),
    ),
    Rule(
        "the engine, the encoder, the models and the messages import no Ray (a deployment.py adds it)",
        ("services.llm_decoder", "services.vision_encoder", "services.models", "services.messages"),
        ("ray",),
        allowed=("services.llm_decoder.deployment", "services.vision_encoder.deployment"),
    ),
]


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def under(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes)


@cache
def imports_of_every_module() -> dict[str, frozenset[str]]:
    imports: dict[str, frozenset[str]] = {}
    for path in SERVICES.rglob("*.py"):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
                names.update(f"{node.module}.{alias.name}" for alias in node.names)
        imports[module_name(path)] = frozenset(names)
    return imports


def violations(rule: Rule, imports: dict[str, frozenset[str]]) -> list[str]:
    return sorted(
        f"{module} imports {imported}"
        for module, imported_names in imports.items()
        if under(module, rule.sources) and not under(module, rule.allowed)
        for imported in imported_names
        if under(imported, rule.forbidden)
    )


class TestImportRules:
    @pytest.mark.parametrize("rule", RULES, ids=[rule.name for rule in RULES])
    def test_rule_holds(self, rule: Rule) -> None:
        assert violations(rule, imports_of_every_module()) == []

    def test_every_rule_would_catch_a_breaking_import(self) -> None:
        """A rule that matches no module it names is no rule: each sees a forbidden import added to one of
        its sources."""
        imports = imports_of_every_module()
        for rule in RULES:
            source = next(m for m in imports if under(m, rule.sources) and not under(m, rule.allowed))
            broken = {**imports, source: imports[source] | {rule.forbidden[0]}}
            assert violations(rule, broken) == [f"{source} imports {rule.forbidden[0]}"], rule.name


def modules_loaded_by(module: str) -> set[str]:
    code = f"import sys, {module}; print(' '.join(sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return set(result.stdout.split())


@pytest.mark.parametrize(
    "module", ["services.gateway.app", "services.gateway.deployment", "services.messages", "services.cli"]
)
def test_loads_no_model_stack_in_a_fresh_interpreter(module: str) -> None:
    """Gateway pods pay for every import in image size, memory and start time: the gateway and the messages it
    shares with the encoder and decoder load no torch, torchvision or transformers, directly or behind
    another import. Nor does the `flashvqa` command before a subcommand needs them (`serve` never does: its
    replicas load the model)."""
    loaded = modules_loaded_by(module)
    assert module in loaded
    assert sorted(name for name in loaded if name.split(".")[0] in MODEL_STACK) == []
