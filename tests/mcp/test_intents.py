"""Reading commands without a model: the rules, and what is taken from a model's answer."""

from __future__ import annotations

from typing import Any

import pytest

from engine.mcp.intents import interpret_by_rules, parse_reply

CASES: list[tuple[str, str, dict[str, Any]]] = [
    # zentoria's own example, entity for entity.
    (
        "Upload document.pdf to project X",
        "file.upload",
        {"filename": "document.pdf", "project": "project X"},
    ),
    ("Search my documents for copper kettles", "file.search", {"query": "copper kettles"}),
    ('find "spring polishing"', "file.search", {"query": "spring polishing"}),
    (
        "Summarize the latest report",
        "document.summarize",
        {"target": "the latest report", "latest": True},
    ),
    (
        "Summarize kettles.txt",
        "document.summarize",
        {"filename": "kettles.txt", "target": "kettles.txt"},
    ),
    (
        'Run the workflow "Kettle digest" with count=3, mode=fast',
        "workflow.run",
        {"workflow_name": "Kettle digest", "input_data": {"count": 3, "mode": "fast"}},
    ),
    (
        'start pipeline wf_0123456789ab {"count": 2}',
        "workflow.run",
        {"workflow_id": "wf_0123456789ab", "input_data": {"count": 2}},
    ),
    (
        "What is the status of exe_0123456789abcdef?",
        "workflow.status",
        {"execution_id": "exe_0123456789abcdef"},
    ),
    ("Is doc-file_0123456789ab done", "workflow.status", {"execution_id": "doc-file_0123456789ab"}),
    ("list my workflows", "workflow.list", {}),
    ("Show the files in project alpha", "file.list", {"project": "project alpha"}),
    ("Process file_0123456789abcdef", "file.process", {"file_id": "file_0123456789abcdef"}),
    (
        "How many kettles does the report mention?",
        "document.query",
        {"question": "How many kettles does the report mention?"},
    ),
    ("Explain recursion briefly", "ai.chat", {"message": "Explain recursion briefly"}),
    ("Frobnicate the widgets", "unknown", {}),
]


@pytest.mark.parametrize(("command", "intent", "entities"), CASES, ids=[c[0] for c in CASES])
def test_rules_read_commands_into_intents_and_entities(
    command: str, intent: str, entities: dict[str, Any]
) -> None:
    found = interpret_by_rules(command)
    assert (found.intent, found.entities) == (intent, entities)
    assert found.interpreted_by == "rules"


def test_a_model_answer_counts_only_when_it_holds_an_intent_object() -> None:
    fenced = 'Sure:\n```json\n{"intent": "file.search", "entities": {"query": "kettles"}}\n```'
    assert parse_reply(fenced) == ("file.search", {"query": "kettles"})
    # An intent the engine has no work for is read as unknown; empty entities are dropped.
    assert parse_reply('{"intent": "file.delete", "entities": {"file": ""}}') == ("unknown", {})
    for useless in (
        "Echo: search my files",
        '{"entities": {}}',
        '{"intent": "ai.chat", "entities": ["x"]}',
        "[1, 2]",
    ):
        assert parse_reply(useless) is None, useless
