"""The HTTP layer: routers translate HTTP to engine calls and back."""
