"""The OData query options the sandbox understands on events: ``$select``, ``$filter``,
``$expand``, ``$orderby``, ``$top``, ``$skip`` (https://learn.microsoft.com/en-us/graph/query-parameters).

- ``$select``: event property names (case-insensitive); an unknown one is 400
  ``RequestBroker--ParseUri`` "Could not find a property named 'x' on type 'microsoft.graph.event'."
- ``$filter``: terms joined by ``and``:
  ``singleValueExtendedProperties/Any(ep: ep/id eq '<id>' and ep/value eq '<value>')`` (the
  documented way to find tagged events, learn.microsoft.com/graph/api/singlevaluelegacyextendedproperty-get),
  and ``<property> <op> <literal>`` for iCalUId, subject, transactionId, showAs, isCancelled,
  isOrganizer, start/dateTime, end/dateTime, createdDateTime, lastModifiedDateTime with eq, ne,
  gt, ge, lt, le. String comparisons ignore case, as Exchange's do (the sandbox's reading);
  date-times without offset are UTC. Anything else is 400 ``ErrorInvalidUrlQueryFilter``.
- ``$expand=singleValueExtendedProperties`` with an optional ``($filter=id eq '<id>' [or id eq ...])``;
  ``multiValueExtendedProperties`` expands to [] (not modelled).
- ``$orderby``: start/dateTime, end/dateTime, createdDateTime, lastModifiedDateTime, subject
  (asc/desc). ``$top``: 1-1000 (default page size 10, Graph's for events, with
  ``@odata.nextLink`` carrying ``$skip``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from .model import EVENT_PROPERTIES, StoredEvent, canonical_property
from .timezones import BadDateTime, parse_local


class QueryError(ValueError):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message = code, message


def _filter_error(detail: str = "") -> QueryError:
    return QueryError("ErrorInvalidUrlQueryFilter", "The query filter contains one or more invalid nodes."
                      + (f" ({detail})" if detail else ""))


# -- tokens ---------------------------------------------------------------------------------------

_TOKEN_RE = re.compile(r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<punct>[(),:])|(?P<word>[^\s(),:']+))")


def tokenize(text: str) -> list[tuple[str, str]]:
    tokens, pos = [], 0
    text = text.strip()
    while pos < len(text):
        match = _TOKEN_RE.match(text, pos)
        if match is None or match.end() == pos:
            raise _filter_error(f"unexpected text at {pos}")
        if match.group("str") is not None:
            tokens.append(("str", match.group("str")[1:-1].replace("''", "'")))
        elif match.group("punct") is not None:
            tokens.append(("punct", match.group("punct")))
        else:
            tokens.append(("word", match.group("word")))
        pos = match.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return tokens


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]]):
        self.tokens, self.pos = tokens, 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise _filter_error("unexpected end")
        self.pos += 1
        return token

    def expect(self, kind: str, value: str | None = None) -> str:
        token_kind, token_value = self.take()
        if token_kind != kind or (value is not None and token_value.lower() != value.lower()):
            raise _filter_error(f"expected {value or kind}, found {token_value!r}")
        return token_value

    def at_word(self, value: str) -> bool:
        token = self.peek()
        return token is not None and token[0] == "word" and token[1].lower() == value


# -- $filter --------------------------------------------------------------------------------------

Predicate = Callable[[StoredEvent], bool]
_OPS = {"eq", "ne", "gt", "ge", "lt", "le"}
_STRING_PROPS = {"icaluid": "iCalUId", "subject": "subject", "transactionid": "transactionId", "showas": "showAs"}
_BOOL_PROPS = {"iscancelled": "isCancelled", "isorganizer": "isOrganizer"}
_TIME_PROPS = {"start/datetime": "start", "end/datetime": "end", "createddatetime": "createdDateTime",
               "lastmodifieddatetime": "lastModifiedDateTime"}


def _compare(op: str, left: Any, right: Any) -> bool:
    if left is None:
        return op == "ne" if right is not None else op == "eq"
    return {"eq": left == right, "ne": left != right, "gt": left > right, "ge": left >= right,
            "lt": left < right, "le": left <= right}[op]


def _instant(text: str) -> float:
    try:
        return parse_local(text, UTC).timestamp()
    except BadDateTime:
        raise _filter_error(f"{text!r} is not a date-time") from None


def _property_value(ev: StoredEvent, name: str) -> Any:
    if name == "start":
        return ev.start_ts
    if name == "end":
        return ev.end_ts
    if name in ("createdDateTime", "lastModifiedDateTime"):
        return _instant(ev.props[name])
    return ev.props.get(name)


def _literal(parser: _Parser) -> tuple[str, str]:
    kind, value = parser.take()
    if kind not in ("str", "word"):
        raise _filter_error(f"expected a literal, found {value!r}")
    return kind, value


def _any_term(parser: _Parser) -> Predicate:
    parser.expect("punct", "(")
    var = parser.expect("word")
    parser.expect("punct", ":")
    wanted_id: str | None = None
    value_tests: list[tuple[str, str]] = []
    while True:
        target = parser.expect("word").lower()
        op = parser.expect("word").lower()
        kind, literal = _literal(parser)
        if op not in _OPS or kind != "str":
            raise _filter_error("extended property terms compare strings")
        if target == f"{var.lower()}/id" and op == "eq":
            wanted_id = literal.lower()
        elif target == f"{var.lower()}/value":
            value_tests.append((op, literal.lower()))
        else:
            raise _filter_error(f"unsupported term {target!r} in Any()")
        if parser.at_word("and"):
            parser.take()
            continue
        break
    parser.expect("punct", ")")
    if wanted_id is None:
        raise _filter_error("Any() needs ep/id eq '<id>'")

    def predicate(ev: StoredEvent) -> bool:
        entry = ev.ext.get(wanted_id)  # type: ignore[arg-type]
        if entry is None:
            return False
        return all(_compare(op, entry[1].lower(), literal) for op, literal in value_tests)

    return predicate


def _term(parser: _Parser) -> Predicate:
    token = parser.take()
    if token == ("punct", "("):
        inner = _expression(parser)
        parser.expect("punct", ")")
        return inner
    if token[0] != "word":
        raise _filter_error(f"unexpected {token[1]!r}")
    name = token[1].lower()
    if name in ("singlevalueextendedproperties/any", "singlevalueextendedproperties/all"):
        if name.endswith("/all"):
            raise _filter_error("All() is not supported; use Any()")
        return _any_term(parser)
    op = parser.expect("word").lower()
    if op not in _OPS:
        raise _filter_error(f"unknown operator {op!r}")
    kind, literal = _literal(parser)
    if name in _STRING_PROPS:
        prop = _STRING_PROPS[name]
        if kind != "str":
            raise _filter_error(f"{prop} compares with a string literal")
        wanted = literal.lower()
        return lambda ev: _compare(op, (_property_value(ev, prop) or "").lower() if _property_value(ev, prop)
                                   is not None else None, wanted)
    if name in _BOOL_PROPS:
        prop = _BOOL_PROPS[name]
        if kind != "word" or literal.lower() not in ("true", "false"):
            raise _filter_error(f"{prop} compares with true or false")
        flag = literal.lower() == "true"
        return lambda ev: _compare(op, bool(ev.props.get(prop)), flag)
    if name in _TIME_PROPS:
        prop = _TIME_PROPS[name]
        when = _instant(literal)
        return lambda ev: _compare(op, _property_value(ev, prop), when)
    raise _filter_error(f"filtering on {token[1]!r} is not supported")


def _expression(parser: _Parser) -> Predicate:
    terms = [_term(parser)]
    while parser.at_word("and"):
        parser.take()
        terms.append(_term(parser))
    if parser.at_word("or"):
        raise _filter_error("'or' is not supported")
    return lambda ev: all(term(ev) for term in terms)


def parse_filter(text: str) -> Predicate:
    parser = _Parser(tokenize(text))
    predicate = _expression(parser)
    if parser.peek() is not None:
        raise _filter_error(f"unexpected {parser.peek()[1]!r}")  # type: ignore[index]
    return predicate


# -- $select, $expand, $orderby -------------------------------------------------------------------

def parse_select(text: str) -> list[str]:
    names = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        name = canonical_property(part)
        if name is None or name not in EVENT_PROPERTIES:
            raise QueryError("RequestBroker--ParseUri",
                             f"Could not find a property named '{part}' on type 'microsoft.graph.event'.")
        if name not in names:
            names.append(name)
    return names


def _split_top_level(text: str) -> list[str]:
    parts, depth, current = [], 0, []
    in_string = False
    for char in text:
        if char == "'":
            in_string = not in_string
        elif not in_string and char == "(":
            depth += 1
        elif not in_string and char == ")":
            depth -= 1
        if char == "," and depth == 0 and not in_string:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [p.strip() for p in parts if p.strip()]


def parse_expand(text: str) -> tuple[bool, set[str] | None]:
    """(expand single-value extended properties?, the ids wanted or None for all)."""
    expand_single, wanted = False, None
    for part in _split_top_level(text):
        name, _, options = part.partition("(")
        name = name.strip()
        canonical = canonical_property(name)
        if canonical == "multiValueExtendedProperties":
            continue
        if canonical != "singleValueExtendedProperties":
            raise QueryError("BadRequest", f"Parsing OData Select and Expand failed: Could not find a property named "
                             f"'{name}' on type 'microsoft.graph.event'.")
        expand_single = True
        if options:
            options = options.rstrip()
            if not options.endswith(")"):
                raise QueryError("BadRequest", "Parsing OData Select and Expand failed: ')' expected.")
            option_name, _, option_value = options[:-1].partition("=")
            if option_name.strip().lower() != "$filter":
                raise QueryError("BadRequest", f"Parsing OData Select and Expand failed: unsupported option "
                                 f"'{option_name.strip()}' in $expand.")
            wanted = _ids_filter(option_value)
    return expand_single, wanted


def _ids_filter(text: str) -> set[str]:
    parser = _Parser(tokenize(text))
    ids = set()
    while True:
        if parser.expect("word").lower() != "id" or parser.expect("word").lower() != "eq":
            raise _filter_error("$expand filters on id eq '<id>'")
        kind, literal = _literal(parser)
        if kind != "str":
            raise _filter_error("id compares with a string literal")
        ids.add(literal.lower())
        if parser.at_word("or"):
            parser.take()
            continue
        if parser.peek() is not None:
            raise _filter_error(f"unexpected {parser.peek()[1]!r}")  # type: ignore[index]
        return ids


_ORDER_KEYS: dict[str, Callable[[StoredEvent], Any]] = {
    "start/datetime": lambda ev: ev.start_ts,
    "end/datetime": lambda ev: ev.end_ts,
    "createddatetime": lambda ev: ev.props["createdDateTime"],
    "lastmodifieddatetime": lambda ev: ev.props["lastModifiedDateTime"],
    "subject": lambda ev: (ev.props.get("subject") or "").lower(),
}


def parse_orderby(text: str) -> list[tuple[Callable[[StoredEvent], Any], bool]]:
    keys = []
    for part in text.split(","):
        words = part.split()
        if not words or len(words) > 2 or words[0].lower() not in _ORDER_KEYS \
                or (len(words) == 2 and words[1].lower() not in ("asc", "desc")):
            raise QueryError("BadRequest", f"The $orderby expression '{part.strip()}' is not supported.")
        keys.append((_ORDER_KEYS[words[0].lower()], len(words) == 2 and words[1].lower() == "desc"))
    return keys


@dataclass
class EventQuery:
    select: list[str] | None = None
    predicate: Predicate | None = None
    expand: tuple[bool, set[str] | None] | None = None
    orderby: list[tuple[Callable[[StoredEvent], Any], bool]] | None = None
    top: int | None = None
    skip: int = 0


def _int_option(name: str, text: str, low: int, high: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise QueryError("BadRequest", f"Invalid value '{text}' for {name}.") from None
    if not low <= value <= high:
        raise QueryError("BadRequest", f"Invalid value '{text}' for {name}: it must be between {low} and {high}.")
    return value


def parse_query(query: dict[str, list[str]], *, collection: bool) -> EventQuery:
    options = {key.lower(): values[0] for key, values in query.items() if key.startswith("$")}
    result = EventQuery()
    if "$select" in options:
        result.select = parse_select(options["$select"])
    if "$expand" in options:
        result.expand = parse_expand(options["$expand"])
    if collection:
        if "$filter" in options:
            result.predicate = parse_filter(options["$filter"])
        if "$orderby" in options:
            result.orderby = parse_orderby(options["$orderby"])
        if "$top" in options:
            result.top = _int_option("$top", options["$top"], 1, 1000)
        if "$skip" in options:
            result.skip = _int_option("$skip", options["$skip"], 0, 1_000_000)
    return result
