"""Text that must say something, declared so that the schema and the server agree.

The schema says ``pattern: "\\S"`` (a character that is not white space). JSON
Schema validators read ``\\s`` as ECMAScript does, which counts U+FEFF as white
space and Python does not; Python counts U+001C–U+001F and U+0085, which
ECMAScript does not. The server refuses text made only of either kind, so no
text the schema calls blank is ever accepted.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field

NOT_BLANK = r"\S"
_ALSO_BLANK = "\ufeff"  # white space to ECMAScript, not to str.isspace()


def is_blank(text: str) -> bool:
    return all(char.isspace() or char in _ALSO_BLANK for char in text)


def _said(text: str) -> str:
    if is_blank(text):
        raise ValueError("the text is empty (only white space)")
    return text


# A string with something other than white space in it (any length limits go on the field).
Said = Annotated[str, AfterValidator(_said), Field(json_schema_extra={"pattern": NOT_BLANK})]
