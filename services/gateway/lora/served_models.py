"""The models this gateway serves, per tenant: the base model and the LoRA adapters in the shared catalog.

A tenant restricted to some models is told that any other "does not exist", in the same words as for a model
that truly does not, so that it cannot learn which adapters other tenants have."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from services.gateway.admission.auth import Tenant
from services.gateway.api.api_error import APIError
from services.gateway.backends import Backends
from services.gateway.lora.adapter_catalog import AdapterCatalog
from services.messages import AdapterLoadError, AdapterRef

ADAPTER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class ServedModel:
    id: str  # what the request named (or the tenant's default) and the response names
    adapter: AdapterRef | None  # None: the base model

    @property
    def cache_name(self) -> str:
        """What the response cache keys answers by: an adapter loaded again answers anew."""
        return self.id if self.adapter is None else self.adapter.key


class ServedModels:
    def __init__(self, base: str, catalog: AdapterCatalog, backends: Backends, runtime_loading: bool) -> None:
        self.base = base
        self._catalog = catalog
        self._backends = backends
        self._runtime_loading = runtime_loading

    async def resolve(self, model: str | None, tenant: Tenant) -> ServedModel:
        """The model that answers a request naming `model`; 404 `model_not_found` for one that does not exist
        or that this tenant may not use."""
        name = model or tenant.default_model or self.base
        if tenant.may_use(name):
            if name == self.base:
                return ServedModel(name, None)
            ref = await self._catalog.get(name)
            if ref is not None:
                return ServedModel(name, ref)
        # The view `get` just read or found fresh: a flood of unknown model ids costs the shared store nothing more.
        usable = [self.base, *(ref.name for ref in self._catalog.known())]
        served = ", ".join(repr(model_id) for model_id in _usable(usable, tenant))
        raise APIError(
            404,
            f"the model {name!r} does not exist; models you can use: {served or 'none'}",
            param="model",
            code="model_not_found",
        )

    async def ids(self, tenant: Tenant) -> list[str]:
        """The model ids this tenant can use, the base first."""
        return _usable([self.base, *(ref.name for ref in await self._catalog.all())], tenant)

    async def load(self, name: str, path: str, replace: bool) -> AdapterRef:
        """Check an adapter on a decoder replica, then serve it from every replica. Raises 400 (nothing changed)
        for a bad name, path or adapter, or a name already served unless `replace`."""
        self._require_runtime_loading()
        if not ADAPTER_NAME.fullmatch(name) or name == self.base:
            raise APIError(
                400,
                f"{name!r} cannot name an adapter: 1-64 letters, digits, '.', '_' or '-', not the base model's id",
                param="lora_name",
            )
        if not replace and await self._catalog.get(name) is not None:
            raise _already_loaded(name)
        ref = AdapterRef(name, path, uuid.uuid4().hex[:12])
        try:
            await self._backends.check_adapter(ref)
        except AdapterLoadError as error:
            raise APIError(400, str(error), param="lora_path", code="invalid_lora_adapter") from None
        if not await self._catalog.add(ref, replace):  # loaded meanwhile through another request
            raise _already_loaded(name)
        return ref

    async def unload(self, name: str) -> None:
        """Stop serving adapter `name` (answers underway finish); 404 if it is not served."""
        self._require_runtime_loading()
        if not await self._catalog.remove(name):
            raise APIError(404, f"no LoRA adapter is named {name!r}", param="lora_name", code="lora_adapter_not_found")

    def _require_runtime_loading(self) -> None:
        if not self._runtime_loading:
            raise APIError(
                403,
                "this server loads no LoRA adapters at run time: its decoders have no adapter root "
                "(decoder.lora.adapter_root)",
                type="permission_error",
                code="lora_loading_disabled",
            )


def _usable(names: list[str], tenant: Tenant) -> list[str]:
    return [name for name in names if tenant.may_use(name)]


def _already_loaded(name: str) -> APIError:
    return APIError(
        400,
        f"a LoRA adapter named {name!r} is already loaded; unload it first or send load_inplace: true",
        param="lora_name",
        code="lora_adapter_exists",
    )
