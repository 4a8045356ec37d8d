"""HTML held to the WHATWG parsing rules, where a browser would silently repair it.

html5lib implements the specification's parser; in strict mode it raises at the first parse
error the specification defines: a missing or legacy doctype (quirks mode), a stray or unclosed
tag, bad nesting, a duplicate attribute, a bad character reference. It does not check content
models (which element may contain which, required attributes): the Nu validator does, but needs
a Java runtime, so the callers check the few attributes that matter to them (lang, title, alt).
"""

from __future__ import annotations

from dataclasses import dataclass
from xml.etree.ElementTree import Element

import html5lib
from html5lib.html5parser import ParseError


@dataclass(frozen=True)
class Document:
    lang: str | None
    title: str
    images: list[dict[str, str]]  # each <img>'s attributes, in document order


def parse(source: str) -> Document:
    """The document, or AssertionError naming the first parse error and where it is."""
    parser = html5lib.HTMLParser(strict=True, namespaceHTMLElements=False)
    try:
        root: Element = parser.parse(source)
    except ParseError as error:
        (line, column), code, _ = parser.errors[-1]
        raise AssertionError(f"line {line}, column {column}: {error} ({code})") from None
    # A doctype the spec accepts but that selects quirks mode is no parse error in html5lib.
    if parser.compatMode != "no quirks":
        raise AssertionError(f"the doctype selects {parser.compatMode} mode")
    title = root.find("head/title")
    return Document(
        lang=root.get("lang"),
        title="" if title is None else "".join(title.itertext()).strip(),
        images=[dict(img.attrib) for img in root.iter("img")],
    )
