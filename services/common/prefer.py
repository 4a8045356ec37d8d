"""RFC 7240 `Prefer` headers, read as the RFC says: by a service that honours a preference, and
by its callers reading `Preference-Applied` in the answer.

    Prefer = 1#( token [ BWS "=" BWS ( token / quoted-string ) ] *( OWS ";" [ OWS parameter ] ) )

A request may carry several `Prefer` fields and several preferences per field; names compare
case-insensitively, values case-sensitively; a preference given twice counts the first time
(RFC 7240, section 2). Parameters after `;` are dropped: no preference honoured here has any.
Commas and semicolons inside a quoted string do not split. Anything unparseable is ignored, as
the RFC asks of a server that does not understand a preference.
"""

from __future__ import annotations

from collections.abc import Iterable

RETURN_REPRESENTATION = "return=representation"


def _split_unquoted(text: str, separator: str) -> list[str]:
    """Split at `separator` outside quoted strings (whose backslash escapes are kept)."""
    parts: list[str] = []
    start, quoted, escaped = 0, False, False
    for index, char in enumerate(text):
        if escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == separator and not quoted:
            parts.append(text[start:index])
            start = index + 1
    parts.append(text[start:])
    return parts


def _unquote(word: str) -> str:
    if len(word) >= 2 and word[0] == word[-1] == '"':
        inner, out, escaped = word[1:-1], [], False
        for char in inner:
            if escaped or char != "\\":
                out.append(char)
                escaped = False
            else:
                escaped = True
        return "".join(out)
    return word


def preferences(fields: Iterable[str]) -> dict[str, str]:
    """The preferences of every `Prefer` field, name (lower case) -> value ("" when none)."""
    found: dict[str, str] = {}
    for field in fields:
        for element in _split_unquoted(field, ","):
            preference = _split_unquoted(element, ";")[0]
            name, _, value = preference.partition("=")
            name = name.strip().lower()
            if name and name not in found:
                found[name] = _unquote(value.strip())
    return found


def says_return_representation(fields: Iterable[str]) -> bool:
    """Whether these `Prefer` fields (or the answer's `Preference-Applied` ones, the same
    grammar without parameters) name `return=representation`."""
    return preferences(fields).get("return") == "representation"
