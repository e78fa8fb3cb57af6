"""Partio's process and process/batch, as a partio client calls them."""

from __future__ import annotations

import math

import pytest

from tests.conftest import DocStack, make_tenant

pytestmark = pytest.mark.asyncio

TEXT = (
    "Semantic cells are pieces of text. Each is chunked and embedded. "
    "Partio returns every chunk with its labels, tags and embedding vector. " * 8
)


async def test_process_one_cell(doc_stack: DocStack) -> None:
    http, tenant = doc_stack.http, doc_stack.tenant
    bearer = {"Authorization": f"Bearer {tenant.key}"}
    response = await http.post(
        f"/v1.0/endpoints/{tenant.endpoint_id}/process",
        headers=bearer,
        json={
            "Type": "Text",
            "Text": TEXT,
            "ChunkingConfiguration": {
                "Strategy": "FixedTokenCount",
                "FixedTokenCount": 32,
                "OverlapCount": 4,
                "OverlapStrategy": "SlidingWindow",
                "ContextPrefix": "doc-123 ",
            },
            "EmbeddingConfiguration": {"L2Normalization": True},
            "Labels": ["label1"],
            "Tags": {"key": "value"},
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["Text"] == TEXT and len(body["Chunks"]) > 3
    for chunk in body["Chunks"]:
        assert chunk["Text"].startswith("doc-123 ")
        assert chunk["Labels"] == ["label1"] and chunk["Tags"] == {"key": "value"}
        assert len(chunk["Embeddings"]) == 384
        assert math.isclose(math.sqrt(sum(x * x for x in chunk["Embeddings"])), 1.0, rel_tol=1e-3)


async def test_process_batch_and_errors(doc_stack: DocStack) -> None:
    http, tenant = doc_stack.http, doc_stack.tenant
    bearer = {"Authorization": f"Bearer {tenant.key}"}
    cells = [
        {"Text": f"Cell number {i}. It has a sentence or two about item {i}."} for i in range(12)
    ]
    batch = await http.post(
        f"/v1.0/endpoints/{tenant.endpoint_id}/process/batch", headers=bearer, json=cells
    )
    assert batch.status_code == 200, batch.text
    assert [cell["Text"] for cell in batch.json()] == [c["Text"] for c in cells]
    assert all(len(cell["Chunks"]) == 1 for cell in batch.json())

    other = await make_tenant(doc_stack.settings, "other")
    foreign = await http.post(
        f"/v1.0/endpoints/{other.endpoint_id}/process", headers=bearer, json={"Text": "hello"}
    )
    assert foreign.status_code == 404 and foreign.json()["StatusCode"] == 404
    unknown = await http.post(
        "/v1.0/endpoints/ep_nope/process", headers=bearer, json={"Text": "hello"}
    )
    assert unknown.status_code == 404
    empty = await http.post(
        f"/v1.0/endpoints/{tenant.endpoint_id}/process", headers=bearer, json={"Text": ""}
    )
    assert empty.status_code == 400 and empty.json()["Error"] == "BadRequest"

    admin = await http.post(
        "/api/v1/auth/login", json={"email": tenant.email, "password": tenant.password}
    )
    as_admin = {"Authorization": f"Bearer {admin.json()['data']['access_token']}"}
    off = await http.put(
        f"/v1.0/endpoints/{tenant.endpoint_id}", headers=as_admin, json={"Active": False}
    )
    assert off.status_code == 200
    inactive = await http.post(
        f"/v1.0/endpoints/{tenant.endpoint_id}/process", headers=bearer, json={"Text": "hello"}
    )
    assert inactive.status_code == 400 and "inactive" in inactive.json()["Message"]
