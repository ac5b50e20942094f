"""Validate Graph answers against Graph's own v1.0 CSDL declarations
(tests/support/graph-calendar-types.json, from microsoftgraph/msgraph-metadata).

    schema = GraphSchema.load()
    schema.check(body, "graph.event")                                    # an entity or complex value
    schema.check(body, "graph.event", selected=True)                     # $select: absent is fine
    schema.check_collection(body, "graph.scheduleInformation")           # {"@odata.context", "value": [...]}
    schema.check_error(body)                                             # Graph's error body

What it checks, recursively: the value's JSON type; every property name is declared on the type
or one of its bases (structural or navigation property; the declared types are matched exactly,
so a misspelled or invented property fails even on types the CSDL marks open: Graph's answers
carry no dynamic properties there); non-nullable properties are present (unless ``selected``)
and not null; primitives (Edm.String/Boolean/Int32/Double/DateTimeOffset/TimeOfDay/Duration/Guid,
with the formats Graph writes); enum members (exact case); ``Collection(...)``; and
``@odata.type``, which must name the declared type or one derived from it, and then selects it.
Instance annotations (``@odata.context``, ``@odata.etag``, ``@odata.nextLink``...) are allowed
where OData puts them. ``check*`` raise ``SchemaError`` listing every problem with its path.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Microsoft Graph v1.0 CSDL types for calendars, extracted from microsoftgraph/msgraph-metadata
# (Microsoft's published metadata), kept in the repo so the fidelity tests run on a fresh clone.
DEFAULT_PATH = Path(__file__).resolve().parent / "graph-calendar-types.json"

_ANNOTATIONS = {"@odata.context", "@odata.etag", "@odata.type", "@odata.id", "@odata.nextLink",
                "@odata.deltaLink", "@odata.count", "@odata.editLink", "@odata.readLink"}
_DATETIME_OFFSET = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,7})?)?(Z|[+-]\d{2}:\d{2})")
_TIME_OF_DAY = re.compile(r"([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d{1,7})?)?")
_DURATION = re.compile(r"-?P(\d+D)?(T(\d+H)?(\d+M)?(\d+(\.\d+)?S)?)?")
_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


class SchemaError(AssertionError):
    def __init__(self, problems: list[str]):
        super().__init__("the answer does not match Graph's CSDL:\n  " + "\n  ".join(problems))
        self.problems = problems


@dataclass
class _Property:
    type: str
    nullable: bool
    navigation: bool = False


def _short(name: str) -> str:
    """"#microsoft.graph.customTimeZone" / "microsoft.graph.x" / "graph.x" -> "graph.x"."""
    name = name.lstrip("#")
    if name.startswith("microsoft.graph."):
        return "graph." + name[len("microsoft.graph."):]
    return name if name.startswith(("graph.", "Edm.", "Collection(")) else "graph." + name


class GraphSchema:
    def __init__(self, document: dict[str, Any]):
        self.types: dict[str, dict[str, Any]] = {f"graph.{k}": v for k, v in document["types"].items()}
        self.enums: dict[str, list[str]] = {f"graph.{k}": list(v) for k, v in document["enums"].items()}
        self.actions: dict[str, Any] = document.get("actions", {})

    @classmethod
    def load(cls, path: Path = DEFAULT_PATH) -> GraphSchema:
        return cls(json.loads(path.read_text(encoding="utf-8")))

    # -- type information ----------------------------------------------------------------------

    def properties(self, type_name: str) -> dict[str, _Property]:
        """Every property of a structured type, its bases' included."""
        result: dict[str, _Property] = {}
        name: str | None = type_name
        while name:
            declared = self.types[name]
            for prop, info in declared["properties"].items():
                result.setdefault(prop, _Property(info["type"], bool(info["nullable"])))
            for prop, nav_type in declared.get("navigation", {}).items():
                result.setdefault(prop, _Property(nav_type, True, navigation=True))
            name = declared.get("base")
        return result

    def is_derived(self, candidate: str, base: str) -> bool:
        name: str | None = candidate
        while name:
            if name == base:
                return True
            name = self.types.get(name, {}).get("base")
        return False

    # -- checking ------------------------------------------------------------------------------

    def problems(self, value: Any, type_name: str, *, selected: bool = False, path: str = "$") -> list[str]:
        out: list[str] = []
        self._value(value, _short(type_name) if not type_name.startswith("Edm.") else type_name, path, out,
                    selected=selected)
        return out

    def check(self, value: Any, type_name: str, *, selected: bool = False) -> None:
        problems = self.problems(value, type_name, selected=selected)
        if problems:
            raise SchemaError(problems)

    def check_collection(self, body: Any, element_type: str, *, selected: bool = False) -> None:
        """A collection answer: ``{"@odata.context"?, "@odata.nextLink"?, "value": [...]}``."""
        problems: list[str] = []
        if not isinstance(body, dict) or not isinstance(body.get("value"), list):
            raise SchemaError(["$: a collection answer is an object with a 'value' array"])
        for key in body:
            if key != "value" and key not in _ANNOTATIONS:
                problems.append(f"$.{key}: not allowed beside 'value' in a collection answer")
        for i, item in enumerate(body["value"]):
            problems += self.problems(item, element_type, selected=selected, path=f"$.value[{i}]")
        if problems:
            raise SchemaError(problems)

    @staticmethod
    def check_error(body: Any) -> None:
        """Graph's error body: {"error": {"code", "message", "innerError": {...}}}."""
        problems = []
        error = body.get("error") if isinstance(body, dict) else None
        if not isinstance(body, dict) or set(body) != {"error"} or not isinstance(error, dict):
            raise SchemaError(["$: an error answer is exactly {\"error\": {...}}"])
        for key in ("code", "message"):
            if not isinstance(error.get(key), str):
                problems.append(f"$.error.{key}: must be a string")
        extra = set(error) - {"code", "message", "innerError", "details", "target"}
        if extra:
            problems.append(f"$.error: unexpected {sorted(extra)}")
        inner = error.get("innerError")
        if inner is not None and (not isinstance(inner, dict)
                                  or not all(isinstance(v, str | dict) for v in inner.values())):
            problems.append("$.error.innerError: must be an object")
        if problems:
            raise SchemaError(problems)

    def _value(self, value: Any, type_name: str, path: str, out: list[str], *, selected: bool = False) -> None:
        if value is None:
            return  # nullability is the owner's business
        if type_name.startswith("Collection("):
            element = type_name[len("Collection("):-1]
            if not isinstance(value, list):
                out.append(f"{path}: expected an array ({type_name}), got {type(value).__name__}")
                return
            for i, item in enumerate(value):
                if item is None:
                    out.append(f"{path}[{i}]: null inside {type_name}")
                else:
                    self._value(item, element, f"{path}[{i}]", out)
            return
        if type_name.startswith("Edm."):
            self._primitive(value, type_name, path, out)
            return
        if type_name in self.enums:
            if not isinstance(value, str) or value not in self.enums[type_name]:
                out.append(f"{path}: {value!r} is not a member of {type_name} {self.enums[type_name]}")
            return
        if type_name not in self.types:
            out.append(f"{path}: type {type_name} is not declared in the CSDL extract")
            return
        if not isinstance(value, dict):
            out.append(f"{path}: expected an object ({type_name}), got {type(value).__name__}")
            return
        actual = type_name
        if "@odata.type" in value:
            named = value["@odata.type"]
            derived = _short(named) if isinstance(named, str) else ""
            if not isinstance(named, str) or not named.startswith("#") or derived not in self.types:
                out.append(f"{path}.@odata.type: {named!r} is not '#microsoft.graph.<declared type>'")
            elif not self.is_derived(derived, type_name):
                out.append(f"{path}.@odata.type: {derived} does not derive from {type_name}")
            else:
                actual = derived
        if self.types[actual].get("abstract"):
            out.append(f"{path}: {actual} is abstract; a value needs @odata.type of a concrete type")
        props = self.properties(actual)
        for key, item in value.items():
            if key.startswith("@"):
                if key not in _ANNOTATIONS:
                    out.append(f"{path}.{key}: unknown instance annotation")
                continue
            if "@" in key:
                prop_name, _, annotation = key.partition("@")
                if prop_name not in props or f"@{annotation}" not in _ANNOTATIONS:
                    out.append(f"{path}.{key}: unknown property annotation")
                continue
            prop = props.get(key)
            if prop is None:
                out.append(f"{path}.{key}: {actual} has no property '{key}'")
                continue
            if item is None and not prop.nullable:
                out.append(f"{path}.{key}: null, but {actual}.{key} is not nullable")
                continue
            self._value(item, prop.type, f"{path}.{key}", out)
        if not selected:
            for key, prop in props.items():
                if not prop.nullable and not prop.navigation and key not in value:
                    out.append(f"{path}: missing {actual}.{key}, which is not nullable")

    @staticmethod
    def _primitive(value: Any, type_name: str, path: str, out: list[str]) -> None:
        ok = True
        if type_name == "Edm.String":
            ok = isinstance(value, str)
        elif type_name == "Edm.Boolean":
            ok = isinstance(value, bool)
        elif type_name in ("Edm.Int32", "Edm.Int64", "Edm.Int16", "Edm.Byte"):
            ok = isinstance(value, int) and not isinstance(value, bool)
            if ok and type_name == "Edm.Int32":
                ok = -2**31 <= value < 2**31
        elif type_name in ("Edm.Double", "Edm.Single", "Edm.Decimal"):
            ok = (isinstance(value, int | float) and not isinstance(value, bool)) or value in ("NaN", "INF", "-INF")
        elif type_name == "Edm.DateTimeOffset":
            ok = isinstance(value, str) and bool(_DATETIME_OFFSET.fullmatch(value))
        elif type_name == "Edm.TimeOfDay":
            ok = isinstance(value, str) and bool(_TIME_OF_DAY.fullmatch(value))
        elif type_name == "Edm.Duration":
            ok = isinstance(value, str) and bool(_DURATION.fullmatch(value))
        elif type_name == "Edm.Guid":
            ok = isinstance(value, str) and bool(_GUID.fullmatch(value))
        elif type_name == "Edm.Date":
            ok = isinstance(value, str) and bool(re.fullmatch(r"\d{4}-\d{2}-\d{2}", value))
        else:
            out.append(f"{path}: primitive type {type_name} is not known to the validator")
            return
        if not ok:
            out.append(f"{path}: {value!r} is not a valid {type_name}")


_SCHEMA: GraphSchema | None = None


def graph_schema() -> GraphSchema:
    """The schema loaded once per test session."""
    global _SCHEMA
    if _SCHEMA is None:
        _SCHEMA = GraphSchema.load()
    return _SCHEMA
