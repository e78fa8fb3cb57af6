"""Weftworks' chat route side by side with the LiteLLM proxy (prints figures; asserts nothing).

    make bench-litellm-venv        # once: LiteLLM's proxy in its own .venv-litellm
    .venv/bin/python bench/litellm_compare.py [--concurrency 50] [--requests 3000]

Both gateways forward the same chat to the same fake Ollama (tests/fake_providers.py,
answering at once), each as one process, measured in the same run with rounds
alternating, so the ratios hold on a noisy machine:

- throughput at ``--concurrency`` closed-loop clients;
- CPU per request at 10 clients, from each process's /proc counters.

`weft api` runs as in bench/api_hotpath.py (SQLite, API-key auth, ledger and
request history on, rate limits off). LiteLLM runs ``litellm --config`` with a
master key (its authentication) and no database, which is the lightest way it
runs: no spend tracking, no virtual keys. LiteLLM lives in its own virtual
environment because its proxy pins versions of FastAPI and friends that are
not ours.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.api_hotpath import closed_loop, per_request_cpu  # noqa: E402
from bench.chat_overhead import (  # noqa: E402
    FAKE_SERVER,
    MESSAGES,
    api_environment,
    load,
    prepare,
    stop,
    wait_for,
)
from tests.conftest import free_port  # noqa: E402

LITELLM = ROOT / ".venv-litellm" / "bin" / "litellm"
MASTER_KEY = "sk-bench-master-key"
CONFIG = """
model_list:
  - model_name: llama-test
    litellm_params:
      model: ollama_chat/llama-test
      api_base: {fake}
general_settings:
  master_key: {key}
litellm_settings:
  telemetry: false
"""


async def check(url: str, path: str, body: dict[str, object], headers: dict[str, str]) -> None:
    """One call must answer 200 with the fake's echo, or the figures mean nothing."""
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        answer = await http.post(path, json=body, headers=headers)
    if answer.status_code != 200 or "Echo: What is the capital" not in answer.text:
        raise SystemExit(f"{url}{path} answered {answer.status_code}: {answer.text[:300]}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--litellm", type=Path, default=LITELLM)
    args = parser.parse_args()
    if not args.litellm.exists():
        raise SystemExit(f"{args.litellm} is missing: run `make bench-litellm-venv` first")

    data = Path(tempfile.mkdtemp(prefix="weft-bench-litellm-"))
    fake_port, api_port, lite_port = free_port(), free_port(), free_port()
    fake_url = f"http://127.0.0.1:{fake_port}"
    api_url, lite_url = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{lite_port}"
    key = await prepare(data)
    config = data / "litellm.yaml"
    config.write_text(CONFIG.format(fake=fake_url, key=MASTER_KEY))
    fake = subprocess.Popen(
        [sys.executable, "-c", FAKE_SERVER.format(root=str(ROOT), port=fake_port)]
    )
    api = subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "api", "--port", str(api_port)],
        env=api_environment(data, fake_url), cwd=ROOT,
    )  # fmt: skip
    lite_env = {"PATH": "/usr/bin:/bin", "HOME": str(data), "LITELLM_LOG": "ERROR",
                "LITELLM_LOCAL_MODEL_COST_MAP": "True", "DISABLE_SCHEMA_UPDATE": "True"}  # fmt: skip
    lite = subprocess.Popen(
        [str(args.litellm), "--config", str(config), "--host", "127.0.0.1",
         "--port", str(lite_port), "--num_workers", "1"],
        env=lite_env, cwd=data, stdout=subprocess.DEVNULL,
    )  # fmt: skip

    weft_path, lite_path = "/api/v1/ai/chat", "/chat/completions"
    weft_auth = {"X-API-Key": key}
    lite_auth = {"Authorization": f"Bearer {MASTER_KEY}"}
    weft_body: dict[str, object] = {"messages": MESSAGES, "model": "llama-test"}
    lite_body: dict[str, object] = {"messages": MESSAGES, "model": "llama-test"}
    n = args.concurrency
    rates: dict[str, list[float]] = {"weft": [], "litellm": []}
    try:
        await wait_for(f"{fake_url}/api/tags")
        await wait_for(f"{api_url}/openapi.json")
        await wait_for(f"{lite_url}/health/liveliness", seconds=180)
        await check(api_url, weft_path, weft_body, weft_auth)
        await check(lite_url, lite_path, lite_body, lite_auth)
        await load(api_url, weft_path, weft_body, 300, n, weft_auth)  # warm-up
        await load(lite_url, lite_path, lite_body, 300, n, lite_auth)
        per_round = max(n, args.requests // args.rounds)
        for _ in range(args.rounds):
            rates["weft"].append(
                await closed_loop(api_url, weft_path, weft_body, per_round, n, weft_auth)
            )
            rates["litellm"].append(
                await closed_loop(lite_url, lite_path, lite_body, per_round, n, lite_auth)
            )
        cpu = {
            "weft": await per_request_cpu(
                api.pid, api_url, "POST", weft_path, weft_body, 1000, weft_auth
            ),
            "litellm": await per_request_cpu(
                lite.pid, lite_url, "POST", lite_path, lite_body, 1000, lite_auth
            ),
        }
    finally:
        stop(api, lite, fake)

    weft, lite_rate = statistics.median(rates["weft"]), statistics.median(rates["litellm"])
    print("machine: 2 CPUs; each gateway one process; the fake Ollama answers at once")
    print(
        f"throughput at {n} clients: weft {weft:7.1f} req/s | LiteLLM proxy {lite_rate:7.1f} "
        f"req/s | ratio {weft / lite_rate:.2f}x  (rounds: weft "
        f"{[round(r) for r in rates['weft']]}, LiteLLM {[round(r) for r in rates['litellm']]})"
    )
    print(
        f"CPU per chat request, 10 clients: weft {cpu['weft']:.2f} ms | LiteLLM proxy "
        f"{cpu['litellm']:.2f} ms | ratio {cpu['weft'] / cpu['litellm']:.2f}x"
    )
    print(json.dumps({"rates": rates, "cpu_ms": cpu}))


if __name__ == "__main__":
    asyncio.run(main())
