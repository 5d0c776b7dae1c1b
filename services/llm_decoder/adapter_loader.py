"""The LoRA adapters a decoder replica holds in host memory, read when a request first names one.

A request's `AdapterRef` says where the adapter's files are; the replica reads and checks them in a worker
thread, and the engine registers them between steps under `ref.key`. Loading a name again (new files) is thus
another adapter, and never changes an answer underway. The adapters an operator configured are read at start,
so a bad one fails the replica loudly; any other must lie under the adapter root. At most `max_held` stay
registered: past that, the least recently used that no request holds is dropped, and read again if named again.
"""

from __future__ import annotations

import asyncio
from collections import Counter, OrderedDict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path

from services.llm_decoder.engine import LLMEngine
from services.messages import CONFIGURED_REVISION, AdapterLoadError, AdapterRef
from services.models.lora import AdapterError, LoRAAdapter


@dataclass(frozen=True)
class AdapterLoading:
    configured: Sequence[AdapterRef] = ()  # read at start; served from wherever the operator put them
    root: Path | None = None  # where runtime-loaded adapters must lie; None: only the configured ones are served
    max_held: int = 16  # adapters kept in host memory (the engine's slots hold the few resident on the device)

    def __post_init__(self) -> None:
        if self.max_held < max(1, len(self.configured)):
            raise ValueError(f"max_held ({self.max_held}) must hold every configured adapter ({len(self.configured)})")

    @classmethod
    def serving(cls, adapters: Mapping[str, str | Path], root: Path | None, max_held: int = 16) -> AdapterLoading:
        """The operator's adapters (model id -> directory), every one of them held whatever `max_held` says."""
        configured = [AdapterRef(name, str(path), CONFIGURED_REVISION) for name, path in sorted(adapters.items())]
        return cls(configured, root, max(max_held, len(configured)))


@dataclass
class _Read:
    adapter: LoRAAdapter
    registered: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class AdapterLoader:
    def __init__(self, engine: LLMEngine, loading: AdapterLoading, reader: Executor, wake: Callable[[], None]) -> None:
        """`reader`: the thread that reads adapters; `wake`: starts the engine's loop, which calls
        `between_steps`."""
        self._engine = engine
        self._loading = loading
        self._reader = reader
        self._wake = wake
        self._registered: OrderedDict[str, None] = OrderedDict()  # least recently used first
        self._holders: Counter[str] = Counter()  # requests answering with, or waiting for, each adapter
        self._reads: dict[str, asyncio.Future[None]] = {}  # one read per adapter however many requests wait
        self._to_register: list[_Read] = []
        for ref in loading.configured:
            engine.load_adapter(ref.key, Path(ref.path))
            self._registered[ref.key] = None

    async def acquire(self, ref: AdapterRef) -> str:
        """The engine's name for `ref`'s adapter, read and registered first if needed; held until `release`.
        Raises AdapterLoadError."""
        self._holders[ref.key] += 1
        try:
            if ref.key not in self._registered:
                read = self._reads.get(ref.key)
                if read is None:
                    read = self._reads[ref.key] = asyncio.ensure_future(self._read(ref))
                    read.add_done_callback(lambda _: self._reads.pop(ref.key, None))
                await asyncio.shield(read)  # a waiter that goes away must not fail the others' read
            self._registered.move_to_end(ref.key)
            return ref.key
        except BaseException:
            self.release(ref)
            raise

    def release(self, ref: AdapterRef) -> None:
        self._holders[ref.key] -= 1
        if self._holders[ref.key] <= 0:
            del self._holders[ref.key]

    def between_steps(self) -> None:
        """Register what was read, and drop what is over `max_held` and held by no request (engine thread)."""
        reads, self._to_register = self._to_register, []
        for read in reads:
            try:
                self._engine.register_adapter(read.adapter)
            except AdapterError as error:
                read.registered.set_exception(AdapterLoadError(f"adapter cannot be served: {error}"))
                continue
            self._registered[read.adapter.name] = None
            read.registered.set_result(None)
        idle = [key for key in self._registered if key not in self._holders]
        for key in idle[: max(0, len(self._registered) - self._loading.max_held)]:
            self._engine.unload_adapter(key)
            del self._registered[key]

    def fail(self, error: BaseException) -> None:
        """The engine stopped: what waits to be registered never will be."""
        reads, self._to_register = self._to_register, []
        for read in reads:
            read.registered.set_exception(error)

    async def _read(self, ref: AdapterRef) -> None:
        directory = self._checked_path(ref)
        loop = asyncio.get_running_loop()
        try:
            adapter = await loop.run_in_executor(self._reader, self._engine.read_adapter, ref.key, directory)
        except AdapterError as error:
            raise AdapterLoadError(f"adapter {ref.name!r} cannot be served: {error}") from None
        read = _Read(adapter)
        self._to_register.append(read)
        self._wake()
        await read.registered

    def _checked_path(self, ref: AdapterRef) -> Path:
        if ref in self._loading.configured:
            return Path(ref.path)
        root = self._loading.root
        if root is None:
            raise AdapterLoadError("this decoder loads no adapters at run time (no adapter root is configured)")
        try:
            directory = (root / ref.path).resolve()  # an absolute `ref.path` stands alone; `..` and links resolved
        except (OSError, ValueError) as error:  # a NUL byte, a link loop
            raise AdapterLoadError(f"{ref.path!r} is not a usable path: {error}") from None
        if not directory.is_relative_to(root.resolve()):
            raise AdapterLoadError(f"{ref.path!r} is not under the adapter root {str(root)!r}")
        return directory
