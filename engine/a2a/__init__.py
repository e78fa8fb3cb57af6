"""Agent-to-agent (A2A, protocol 1.0 and 0.3): the agent card (``card``), the
JSON-RPC request handler that maps A2A calls onto ``A2ATaskWorkflow`` runs and
their index rows (``handler``, ``tasks``, ``push``), the work those runs do
(``work``), and the client that calls remote A2A agents through the egress
guard (``client``, ``transport``)."""
