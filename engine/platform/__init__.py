"""Shared plumbing every capability stands on: settings, errors, ids, task
queues, the Temporal client and run options, health checks, the egress guard,
rate limits and secret encryption."""
