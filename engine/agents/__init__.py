"""Agents (z2 and sutazai): a tenant's LLM roles — type, capabilities, a system
prompt and model preferences — with their create/read/update/delete, the metrics
of the executions that use them, and their health (can their model be reached).
Pipeline steps name agents by id; a run carries a snapshot of each."""
