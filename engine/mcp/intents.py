"""Natural language to an intent and its entities.

With a chat model configured (``WEFT_DEFAULT_CHAT_MODEL``) the model is asked
for a JSON object and its answer is used when it is one; ``interpreted_by``
then names the model that answered. Otherwise, and whenever the model fails or
answers with something that is not such an object, deterministic rules
interpret the command and ``interpreted_by`` is ``rules`` (with a note saying
why the model's answer was not used). Nothing here ever claims a model
answered when it did not: the local extractive provider is not a model.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from dataclasses import dataclass, field
from typing import Any

from engine.ai.chat import complete
from engine.ai.providers.base import ChatMessage, ChatRequest
from engine.ai.providers.local import EXTRACTIVE_MODEL
from engine.ai.runtime import CallContext, ModelRuntime
from engine.platform.errors import WeftError
from engine.platform.settings import Settings
from workflows.command_payloads import Intent

log = logging.getLogger("weft.mcp")

RULES = "rules"
MODEL_TIMEOUT_SECONDS = 30.0
MAX_ENTITIES_CHARS = 4000
INTENTS = frozenset(intent.value for intent in Intent)

# What each intent's entities are (for the model's prompt and for readers).
ENTITIES: dict[Intent, str] = {
    Intent.FILE_UPLOAD: "filename, project",
    Intent.FILE_SEARCH: "query",
    Intent.FILE_LIST: "project",
    Intent.FILE_PROCESS: "file_id or filename",
    Intent.DOCUMENT_SUMMARIZE: "file_id, filename, or target (e.g. 'the latest report')",
    Intent.DOCUMENT_QUERY: "question (about the user's documents)",
    Intent.WORKFLOW_RUN: "workflow_id or workflow_name, input_data (an object)",
    Intent.WORKFLOW_STATUS: "execution_id",
    Intent.WORKFLOW_LIST: "(none)",
    Intent.AI_CHAT: "message",
    Intent.UNKNOWN: "(none): the command fits no other intent",
}
SYSTEM_PROMPT = (
    "You turn a user's command to a document and workflow assistant into JSON. "
    'Answer with one JSON object and nothing else: {"intent": "<intent>", "entities": {...}}. '
    "The intents and their entities:\n"
    + "\n".join(f"- {intent.value}: {entities}" for intent, entities in ENTITIES.items())
    + "\nCopy names, ids and quoted text from the command exactly; leave out entities "
    "the command does not give."
)


@dataclass(frozen=True)
class Interpretation:
    intent: str
    entities: dict[str, Any] = field(default_factory=dict)
    interpreted_by: str = RULES  # the model that answered, or "rules"
    note: str | None = None  # why rules stood in for the configured model


# --- rules -------------------------------------------------------------------

_EXT = (
    r"pdf|docx?|txt|md|markdown|csv|tsv|xlsx?|pptx?|rtf|odt|html?|json|xml|eml|"
    r"png|jpe?g|tiff?|gif|bmp|webp"
)
FILENAME = re.compile(rf"(?<![\w/.-])([\w][\w.-]*\.(?:{_EXT}))\b", re.IGNORECASE)
FILE_ID = re.compile(r"\bfile_[0-9a-f]{6,}\b")
DOC_RUN = re.compile(r"\bdoc-file_[0-9a-f]{6,}\b")
RUN_ID = re.compile(r"\b(?:exe|cmd)_[0-9a-f]{6,}\b")
DEFINITION_ID = re.compile(r"\bwf_[0-9a-f]{6,}\b")
QUOTED = re.compile(r"[\"“‘']([^\"”’']{1,200})[\"”’']")
PROJECT = re.compile(r"\bproject\s+([\w-]+)", re.IGNORECASE)
PAIRS = re.compile(r"([A-Za-z_]\w*)\s*[=:]\s*(\"[^\"]*\"|'[^']*'|[^,;\s]+)")


def _has(pattern: str, text: str) -> bool:
    return re.search(pattern, text, re.IGNORECASE) is not None


def _after(pattern: str, text: str) -> str:
    """The text after the first match of ``pattern`` (stripped), or ''."""
    found = re.search(pattern, text, re.IGNORECASE)
    return text[found.end() :].strip(" \t.,:;!?") if found else ""


def _value(raw: str) -> Any:
    raw = raw.strip().strip("\"'")
    if re.fullmatch(r"-?\d+", raw):
        return int(raw)
    if re.fullmatch(r"-?\d+\.\d+", raw):
        return float(raw)
    if raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    return raw


def _input_data(text: str) -> dict[str, Any]:
    """``input_data`` from a JSON object in the text, else from ``with a=1, b=two``."""
    start = text.find("{")
    if start >= 0:
        try:
            found, _ = json.JSONDecoder().raw_decode(text[start:])
        except ValueError:
            found = None
        if isinstance(found, dict):
            return found
    rest = _after(r"\b(?:with|using|input)\b", text)
    return {key: _value(value) for key, value in PAIRS.findall(rest)}


def _workflow_name(text: str) -> str | None:
    quoted = QUOTED.search(text)
    if quoted:
        return quoted.group(1).strip()
    rest = _after(r"\b(?:workflow|pipeline|automation)s?\b", text)
    rest = re.split(r"\s+(?:with|using|on|for|input)\b|[,{]", rest, maxsplit=1)[0]
    rest = re.sub(r"^(?:called|named)\s+", "", rest, flags=re.IGNORECASE).strip(" .")
    return rest or None


def _search_query(text: str) -> str:
    rest = _after(r"\b(?:search|find|look\s+up|lookup|locate)\b", text)
    rest = re.sub(
        r"^(?:(?:in|through)\s+)?(?:(?:my|the|all|our)\s+)?(?:(?:documents|docs|files|uploads)\s+)?"
        r"(?:(?:for|about|mentioning|on|that\s+mention|containing)\s+)?",
        "",
        rest,
        flags=re.IGNORECASE,
    ).strip()
    quoted = QUOTED.search(rest)
    return (quoted.group(1) if quoted else rest) or text


def interpret_by_rules(command: str, context: dict[str, Any] | None = None) -> Interpretation:
    """A deterministic reading of ``command`` (the fallback when no model answers)."""
    text = " ".join(command.split())
    low = text.lower()
    entities: dict[str, Any] = {}
    filename = FILENAME.search(text)
    file_id = FILE_ID.search(text)
    project = PROJECT.search(text)

    def with_file() -> dict[str, Any]:
        found: dict[str, Any] = {}
        if file_id:
            found["file_id"] = file_id.group(0)
        if filename:
            found["filename"] = filename.group(1)
        return found

    if _has(r"\b(?:upload|import|attach)\b", low):
        if filename:
            entities["filename"] = filename.group(1)
        if project:
            entities["project"] = project.group(0)
        return Interpretation(Intent.FILE_UPLOAD.value, entities)
    run = DOC_RUN.search(text) or RUN_ID.search(text)
    if _has(r"\b(?:status|progress|state)\b", low) or (
        run and _has(r"\b(?:done|finished|complete|completed|running|failed)\b", low)
    ):
        if run:
            entities["execution_id"] = run.group(0)
        return Interpretation(Intent.WORKFLOW_STATUS.value, entities)
    definition = DEFINITION_ID.search(text)
    if _has(r"\b(?:run|start|execute|trigger|launch|kick\s+off)\b", low) and (
        definition or _has(r"\b(?:workflow|pipeline|automation)\b", low)
    ):
        if definition:
            entities["workflow_id"] = definition.group(0)
        else:
            name = _workflow_name(text)
            if name:
                entities["workflow_name"] = name
        data = _input_data(text)
        if data:
            entities["input_data"] = data
        return Interpretation(Intent.WORKFLOW_RUN.value, entities)
    if _has(r"\b(?:list|show|which|what)\b.*\b(?:workflows|pipelines)\b", low):
        return Interpretation(Intent.WORKFLOW_LIST.value, {})
    if _has(r"\b(?:summari[sz]e|summary|tl;?dr|recap)\b", low):
        entities = with_file()
        target = _after(r"\b(?:summari[sz]e|summary\s+of|summary|tl;?dr\s+of|tl;?dr|recap)\b", text)
        if target:
            entities["target"] = target
        if _has(r"\b(?:latest|last|newest|most\s+recent|recent)\b", low):
            entities["latest"] = True
        return Interpretation(Intent.DOCUMENT_SUMMARIZE.value, entities)
    if (file_id or filename) and _has(r"\b(?:process|reprocess|ocr|index|embed)\b", low):
        return Interpretation(Intent.FILE_PROCESS.value, with_file())
    if _has(r"\b(?:list|show)\b.*\b(?:files|documents|docs|uploads)\b", low):
        if project:
            entities["project"] = project.group(0)
        return Interpretation(Intent.FILE_LIST.value, entities)
    if _has(r"\b(?:search|find|look\s+up|lookup|locate)\b", low):
        return Interpretation(Intent.FILE_SEARCH.value, {"query": _search_query(text)})
    question = text.endswith("?") or _has(
        r"^(?:what|who|when|where|why|how|which|does|do|is|are|can|did)\b", low
    )
    about_documents = _has(
        r"\b(?:documents?|docs?|files?|reports?|pdfs?|contracts?|uploads?|uploaded)\b", low
    )
    if question and about_documents:
        return Interpretation(Intent.DOCUMENT_QUERY.value, {"question": text})
    if question or _has(
        r"^(?:chat|ask|tell|explain|write|draft|translate|compose|hi|hello|hey)\b", low
    ):
        message = re.sub(r"^(?:chat|ask)\s*(?::|the\s+ai)?\s*", "", text, flags=re.IGNORECASE)
        return Interpretation(Intent.AI_CHAT.value, {"message": message or text})
    return Interpretation(Intent.UNKNOWN.value, {})


# --- a chat model --------------------------------------------------------------


def _json_object(reply: str) -> dict[str, Any] | None:
    """The first JSON object in ``reply`` (models like code fences and preambles)."""
    decoder = json.JSONDecoder()
    for start in (match.start() for match in re.finditer(r"\{", reply)):
        try:
            found, _ = decoder.raw_decode(reply[start:])
        except ValueError:
            continue
        if isinstance(found, dict):
            return found
    return None


def parse_reply(reply: str) -> tuple[str, dict[str, Any]] | None:
    """``(intent, entities)`` from a model's answer; None when it holds no usable object."""
    found = _json_object(reply)
    if found is None or not isinstance(found.get("intent"), str):
        return None
    intent = found["intent"].strip().lower()
    entities = found.get("entities")
    if entities is None:
        entities = {}
    if not isinstance(entities, dict):
        return None
    entities = {str(key): value for key, value in entities.items() if value not in (None, "")}
    if len(json.dumps(entities, default=str)) > MAX_ENTITIES_CHARS:
        return None
    # An intent the engine has no work for is the model's way of saying "unknown".
    return (intent if intent in INTENTS else Intent.UNKNOWN.value), entities


async def interpret_by_model(
    rt: ModelRuntime,
    ctx: CallContext,
    model: str,
    command: str,
    context: dict[str, Any],
) -> tuple[Interpretation | None, str]:
    """The model's interpretation, or None and why it is not used."""
    hints = json.dumps(context, default=str)[:1000] if context else "{}"
    request = ChatRequest(
        model=model,
        temperature=0.0,
        max_tokens=400,
        messages=[
            ChatMessage(role="system", content=SYSTEM_PROMPT),
            ChatMessage(role="user", content=f"Context: {hints}\nCommand: {command}"),
        ],
    )
    try:
        async with asyncio.timeout(MODEL_TIMEOUT_SECONDS):
            outcome = await complete(rt, ctx, request)
    except TimeoutError:
        return None, f"model {model} did not answer within {MODEL_TIMEOUT_SECONDS:g}s"
    except WeftError as exc:
        return None, f"model {model} failed ({exc.code}: {exc.message[:200]})"
    except Exception as exc:  # a command is still understood, by rules, when the model breaks
        log.warning("command interpretation by %s failed", model, exc_info=exc)
        return None, f"model {model} failed ({type(exc).__name__})"
    if outcome.model == EXTRACTIVE_MODEL or outcome.provider == "local":
        return None, "no generative model answered (the local provider only extracts)"
    parsed = parse_reply(outcome.content)
    if parsed is None:
        return None, f"model {outcome.model} answered without a usable JSON intent"
    intent, entities = parsed
    return Interpretation(intent, entities, interpreted_by=outcome.model), ""


async def interpret(
    rt: ModelRuntime,
    ctx: CallContext,
    settings: Settings,
    command: str,
    context: dict[str, Any] | None = None,
) -> Interpretation:
    """The configured chat model's reading of ``command``, else the rules'."""
    context = context or {}
    model = settings.default_chat_model
    note = None
    if model:
        by_model, why = await interpret_by_model(rt, ctx, model, command, context)
        if by_model is not None:
            return by_model
        note = f"{why}; rules were used"
    ruled = interpret_by_rules(command, context)
    return Interpretation(ruled.intent, ruled.entities, RULES, note)
