"""Real documents made by the tests: PDFs with known text, images with rendered text."""

from __future__ import annotations

import asyncio
import io
import time

import httpx
from fpdf import FPDF
from PIL import Image, ImageDraw, ImageFont


def make_pdf(pages: list[str]) -> bytes:
    pdf = FPDF()
    pdf.set_font("Helvetica", size=12)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 8, text)
    return bytes(pdf.output())


def make_png(text: str, size: tuple[int, int] = (1000, 160)) -> bytes:
    image = Image.new("RGB", size, "white")
    font = ImageFont.load_default(size=36)
    ImageDraw.Draw(image).text((20, 50), text, fill="black", font=font)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


async def upload(
    http: httpx.AsyncClient,
    headers: dict[str, str],
    name: str,
    data: bytes,
    content_type: str = "application/octet-stream",
    **form: str,
) -> httpx.Response:
    return await http.post(
        "/api/v1/mcp/upload",
        headers=headers,
        files={"file": (name, data, content_type)},
        data=form,
    )


async def wait_run(
    http: httpx.AsyncClient, headers: dict[str, str], execution_id: str, seconds: float = 180
) -> dict:
    deadline = time.monotonic() + seconds
    body: dict = {}
    while time.monotonic() < deadline:
        body = (await http.get(f"/api/v1/mcp/workflow/{execution_id}", headers=headers)).json()
        if body["data"]["status"] != "running":
            return body["data"]
        await asyncio.sleep(0.3)
    raise AssertionError(f"run {execution_id} did not finish: {body}")
