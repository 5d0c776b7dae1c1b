"""Serve the whole model in one process (gateway + encoder + engine, no Ray) over HTTP: the baseline
for the split's overhead. Usage: python bench/in_process_server.py MODEL_DIR PORT [DTYPE]"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import cast

import uvicorn

from services.common.dtype_name import DTypeName
from services.in_process_app import build_in_process_app

if __name__ == "__main__":
    model_dir, port = Path(sys.argv[1]), int(sys.argv[2])
    dtype = cast(DTypeName, sys.argv[3] if len(sys.argv) > 3 else "auto")
    uvicorn.run(build_in_process_app(model_dir, dtype=dtype), host="127.0.0.1", port=port, log_level="warning")
