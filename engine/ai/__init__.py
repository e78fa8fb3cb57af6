"""AI models: the model runtime, chat and streaming with fallback, routing,
the response cache, circuit breakers, usage and cost ledger, model listings
and run-time provider administration. Provider clients live in ``providers/``."""
