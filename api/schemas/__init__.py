"""Response models (``XPublic``) of the JSON routes, so /openapi.json describes
real bodies; routes build their answers through them. Partio's PascalCase
shapes live in ``api.partio``."""
