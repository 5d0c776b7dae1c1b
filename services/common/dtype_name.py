"""The dtypes an operator may name (`--dtype`, the Serve app's `dtype`), torch-free for the CLI and the config."""

from typing import Literal

DTypeName = Literal["auto", "float32", "bfloat16", "float16"]
AUTO_DTYPE_RULE = (
    "auto: bf16 on CUDA; on a CPU, a bf16 checkpoint stays bf16 where the CPU has bf16 instructions, "
    "anything else runs in fp32"
)
