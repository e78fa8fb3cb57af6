"""Which providers exist and which one serves a model.

Providers come from settings (``WEFT_PROVIDERS``), from active ``ModelProvider``
rows (added at run time; API keys decrypted here and nowhere else), and the
local provider, which is always present. Rows are re-read every few seconds,
and at once after a change made through this process.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.ai.providers.base import ModelInfo, ModelNotAvailable
from engine.ai.providers.catalog import ModelSpec, discovered_spec, local_specs, parse_specs
from engine.ai.providers.factory import Provider, provider_client
from engine.ai.providers.local import EXTRACTIVE_MODEL
from engine.ai.providers.local_chat import LOCAL_PROVIDER, LocalProvider, is_extractive_model
from engine.db.tables import ModelProvider
from engine.platform.crypto import decrypt_secret
from engine.platform.errors import NotFound, WeftError
from engine.platform.settings import Settings

log = logging.getLogger("weft.models")

ROWS_TTL_SECONDS = 5.0
DISCOVERY_TTL_SECONDS = 60.0


@dataclass(frozen=True)
class ProviderEntry:
    name: str
    kind: str
    base_url: str | None
    priority: int
    source: str  # settings, database, builtin
    models: tuple[ModelSpec, ...]
    client: Provider
    id: str | None = None
    has_api_key: bool = False

    def spec(self, model: str) -> ModelSpec | None:
        for spec in self.models:
            if spec.id == model:
                return spec
        return None

    @property
    def chat_specs(self) -> tuple[ModelSpec, ...]:
        return tuple(spec for spec in self.models if spec.kind == "chat")


@dataclass(frozen=True)
class Resolved:
    entry: ProviderEntry
    model: str

    @property
    def spec(self) -> ModelSpec | None:
        return self.entry.spec(self.model)


class ProviderRegistry:
    def __init__(
        self,
        settings: Settings,
        http: httpx.AsyncClient,
        sessions: async_sessionmaker[AsyncSession] | None,
    ) -> None:
        self.settings = settings
        self.http = http
        self.sessions = sessions
        self._local = ProviderEntry(
            LOCAL_PROVIDER, "local", None, 1_000_000, "builtin", local_specs(), LocalProvider()
        )
        self._cached: tuple[float, list[ProviderEntry]] | None = None
        self._discovered: dict[str, tuple[float, list[ModelInfo]]] = {}
        self.listing_errors: dict[str, str] = {}  # provider -> code of its last listing failure
        self._failed_at: dict[str, float] = {}  # provider -> when its last listing failed

    def invalidate(self) -> None:
        self._cached = None
        self._discovered.clear()
        self._failed_at.clear()

    async def entries(self) -> list[ProviderEntry]:
        """Every provider, remote ones by priority, the local one last."""
        now = time.monotonic()
        if self._cached is not None and now - self._cached[0] < ROWS_TTL_SECONDS:
            return self._cached[1]
        found = self._from_settings()
        taken = {entry.name for entry in found} | {LOCAL_PROVIDER}
        found += [entry for entry in await self._from_database() if entry.name not in taken]
        found.sort(key=lambda entry: (entry.priority, entry.name))
        entries = [*found, self._local]
        self._cached = (now, entries)
        return entries

    def configured_entries(self) -> list[ProviderEntry]:
        """The providers from settings and the local one, without the database
        (what a health report lists while the database cannot be read)."""
        found = sorted(self._from_settings(), key=lambda entry: (entry.priority, entry.name))
        return [*found, self._local]

    def _entry(
        self, name: str, kind: str, base_url: str | None, api_key: str | None, **extra: Any
    ) -> ProviderEntry | None:
        """A usable entry, or None (logged) for a configuration that cannot work."""
        try:
            client = provider_client(
                kind, name, base_url, api_key, http=self.http, settings=self.settings
            )
            models = parse_specs(extra.pop("models", None) or [], name)
        except WeftError as exc:
            log.error("provider %s is misconfigured and left out: %s", name, exc.message)
            return None
        return ProviderEntry(
            name=name,
            kind=kind,
            base_url=base_url,
            models=models,
            client=client,
            has_api_key=bool(api_key),
            **extra,
        )

    def _from_settings(self) -> list[ProviderEntry]:
        entries = []
        for name, config in self.settings.providers.items():
            kind = str(config.get("kind", "ollama")).lower()
            if name == LOCAL_PROVIDER or kind == "local":
                continue
            entry = self._entry(
                name,
                kind,
                config.get("base_url"),
                config.get("api_key"),
                priority=int(config.get("priority", 100)),
                source="settings",
                models=config.get("models"),
            )
            if entry is not None:
                entries.append(entry)
        return entries

    async def _from_database(self) -> list[ProviderEntry]:
        if self.sessions is None:
            return []
        async with self.sessions() as session:
            rows = (
                await session.scalars(select(ModelProvider).where(ModelProvider.active.is_(True)))
            ).all()
        entries = []
        for row in rows:
            api_key = None
            if row.api_key_encrypted:
                try:
                    api_key = decrypt_secret(self.settings, row.api_key_encrypted)
                except ValueError:
                    log.warning("provider %s: its stored API key cannot be decrypted", row.name)
            entry = self._entry(
                row.name,
                row.kind,
                row.base_url,
                api_key,
                priority=row.priority,
                source="database",
                models=row.models,
                id=row.id,
            )
            if entry is not None:
                entries.append(entry)
        return entries

    async def get(self, name: str) -> ProviderEntry:
        for entry in await self.entries():
            if entry.name == name:
                return entry
        raise NotFound(f"Provider {name} not found")

    async def discovered(self, entry: ProviderEntry, *, strict: bool = False) -> list[ModelInfo]:
        """The models the provider itself lists (cached a minute).

        Failures give an empty list, unless ``strict``, when they are raised.
        """
        now = time.monotonic()
        cached = self._discovered.get(entry.name)
        if cached is not None and now - cached[0] < DISCOVERY_TTL_SECONDS:
            return cached[1]
        try:
            models = await entry.client.list_models()
        except Exception as exc:
            self.listing_errors[entry.name] = getattr(exc, "code", type(exc).__name__)
            self._failed_at[entry.name] = time.monotonic()
            if strict:
                raise
            log.info("provider %s did not list its models: %s", entry.name, exc)
            return []
        self.listing_errors.pop(entry.name, None)
        self._discovered[entry.name] = (now, models)
        return models

    async def checked(self, entry: ProviderEntry, seconds: float) -> None:
        """Refresh what is known of a remote provider's state (``listing_errors``),
        unless a listing, or a failed attempt, is under ``DISCOVERY_TTL_SECONDS``
        old: health reports call this, and never probe a provider more often.
        A provider silent for ``seconds`` counts as failed (``GATEWAY_TIMEOUT``)."""
        now = time.monotonic()
        cached = self._discovered.get(entry.name)
        failed = self._failed_at.get(entry.name)
        if cached is not None and now - cached[0] < DISCOVERY_TTL_SECONDS:
            return
        if failed is not None and now - failed < DISCOVERY_TTL_SECONDS:
            return
        try:
            await asyncio.wait_for(self.discovered(entry), seconds)
        except TimeoutError:
            self.listing_errors[entry.name] = "GATEWAY_TIMEOUT"
            self._failed_at[entry.name] = time.monotonic()

    async def default_chat_model(self) -> str:
        """WEFT_DEFAULT_CHAT_MODEL, else the first remote chat model, else extractive."""
        if self.settings.default_chat_model:
            return self.settings.default_chat_model
        remote = [entry for entry in await self.entries() if entry.kind != "local"]
        for entry in remote:
            if entry.chat_specs:
                return entry.chat_specs[0].id
        for entry in remote:
            for info in await self.discovered(entry, strict=True):
                if discovered_spec(info.name, entry.name).kind == "chat":
                    return info.name
        if not remote:
            return EXTRACTIVE_MODEL
        raise ModelNotAvailable(
            "No default chat model: set WEFT_DEFAULT_CHAT_MODEL or list models for a provider",
            details={"providers": [entry.name for entry in remote]},
        )

    async def resolve(self, model: str | None) -> Resolved:
        """The provider that serves ``model`` (``provider/model`` names one explicitly)."""
        entries = await self.entries()
        remote = [entry for entry in entries if entry.kind != "local"]
        named = model if model and model.lower() != "auto" else None
        name = named or await self.default_chat_model()
        if is_extractive_model(name):
            # The local provider answers, and its model name says what it is.
            return Resolved(self._local, EXTRACTIVE_MODEL)
        prefix, _, rest = name.partition("/")
        for entry in entries:
            if rest and entry.name == prefix:
                return Resolved(entry, rest)
        for entry in remote:
            if entry.spec(name) is not None:
                return Resolved(entry, name)
        # Providers without a model list: the model must be among those they list
        # themselves. One that could not list its models is asked anyway (its own
        # answer says whether it has the model); no provider is a stand-in.
        unlisted = []
        for entry in (entry for entry in remote if not entry.chat_specs):
            listed = {info.name for info in await self.discovered(entry)}
            if name not in listed and f"{name}:latest" not in listed:
                self._discovered.pop(entry.name, None)  # a model pulled a moment ago
                listed = {info.name for info in await self.discovered(entry)}
            if name in listed or f"{name}:latest" in listed:
                return Resolved(entry, name)
            if entry.name in self.listing_errors:
                unlisted.append(entry)
        if unlisted:
            return Resolved(unlisted[0], name)
        raise ModelNotAvailable(
            f"Model {name!r} is not available: no configured provider offers it",
            details={"model": name, "providers": [entry.name for entry in remote]},
        )

    async def chat_candidates(self) -> list[Resolved]:
        """Every chat model known, listed or discovered (routing and listings)."""
        found: list[Resolved] = []
        for entry in await self.entries():
            if entry.chat_specs:
                found += [Resolved(entry, spec.id) for spec in entry.chat_specs]
            elif entry.kind != "local":
                for info in await self.discovered(entry):
                    if discovered_spec(info.name, entry.name).kind == "chat":
                        found.append(Resolved(entry, info.name))
        return found

    async def price_table(self) -> dict[str, dict[str, float]]:
        """Prices from provider model lists, overridden by ``model_prices``."""
        table: dict[str, dict[str, float]] = {}
        for entry in await self.entries():
            for spec in entry.models:
                if spec.cost_per_1k_input is not None or spec.cost_per_1k_output is not None:
                    table[spec.id] = {
                        "input": spec.cost_per_1k_input or 0.0,
                        "output": spec.cost_per_1k_output or 0.0,
                    }
        return {**table, **self.settings.model_prices}
