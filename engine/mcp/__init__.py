"""MCP: zentoria natural-language commands (interpretation into an intent and
entities, by the configured chat model or by rules, then a ``CommandWorkflow``
that does the work), the MCP tools that REST (z2 ``/mcp/tools``) and the MCP
server at ``/mcp`` share, and z2's MCP sessions."""
