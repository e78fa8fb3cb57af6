"""(Filled in by the A2A and MCP work.)"""

from fastapi import APIRouter

router = APIRouter()
