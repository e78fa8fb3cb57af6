"""Agent pipelines: the definition model (a DAG of typed steps, from z2
nodes/edges, auterity steps or Python code), validation, ``{{variable}}``
templates, stored definitions, executions, templates, tasks and schedules."""
