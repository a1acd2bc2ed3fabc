"""Diagnosis rules: YAML files in ``rules/``, validated before the agent runs.

A rule names a root cause and a confidence, and holds when *all* its ``when`` conditions hold::

    - id: BW-01
      cause: bearing_wear
      confidence: 0.9
      title: Vibration and bearing temperature both above the model
      when:
        - res.vibration.z >= 1
        - res.bearing_temp.z >= 0.6 or res.bearing_temp.trend >= 0.35
      explain: "vibration {vibration:.2f} mm/s, {res.vibration.delta:+.0f} % vs model"
      actions: [Plan a bearing inspection, ...]

Conditions are small arithmetic comparisons over named *features* (``engine.agents.
diagnosis_features.FEATURES``: residual shifts, raw-signal changes, flat/noisy readings, valve
response, sensor-drift signature fit). They are parsed once, checked against the feature list
(an unknown name or a syntax error fails at load with file, rule id and field) and compiled to a
restricted expression: numbers, feature names, ``+ - * /``, comparisons, ``and or not``,
``abs min max``. A feature that cannot be computed (pump stopped, channel masked) is NaN, which
makes any comparison with it false.

Pure: text in, rules out. Reading ``rules/*.yaml`` is ``engine.agent_files.load_rules``.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Mapping
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from engine.agents.diagnosis_features import FEATURES, TEXT_FEATURES
from engine.schemas import Category, error_line

Cause = str  # validated against CAUSES
CAUSES = ("bearing_wear", "clogging", "valve_stuck", "sensor_drift", "sensor_stuck", "noise_burst")
_FUNCS = {"abs": abs, "min": min, "max": max}


class RuleError(ValueError):
    """A rule file that cannot be used: the message names the file, the rule id and the field."""


def _dotted(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else None
    return None


class _Compiler(ast.NodeTransformer):
    """Checks every node and rewrites feature names to lookups in the feature mapping."""

    ALLOWED = (
        ast.Expression,
        ast.BoolOp,
        ast.And,
        ast.Or,
        ast.UnaryOp,
        ast.Not,
        ast.USub,
        ast.UAdd,
        ast.BinOp,
        ast.Add,
        ast.Sub,
        ast.Mult,
        ast.Div,
        ast.Compare,
        ast.Lt,
        ast.LtE,
        ast.Gt,
        ast.GtE,
        ast.Eq,
        ast.NotEq,
        ast.Constant,
        ast.Load,
    )

    def __init__(self) -> None:
        self.names: list[str] = []

    def visit(self, node: ast.AST) -> Any:
        if isinstance(node, ast.Name | ast.Attribute):
            name = _dotted(node)
            if name is None:
                raise ValueError("only feature names may use dots")
            if name in _FUNCS:
                return node
            if name not in FEATURES:
                raise ValueError(f"unknown feature {name!r}")
            if name in TEXT_FEATURES:
                raise ValueError(
                    f"{name!r} is text (usable in explain/summary, not in a condition)"
                )
            self.names.append(name)
            return ast.copy_location(
                ast.Subscript(
                    value=ast.Name(id="_f", ctx=ast.Load()),
                    slice=ast.Constant(value=name),
                    ctx=ast.Load(),
                ),
                node,
            )
        if isinstance(node, ast.Call):
            fn = _dotted(node.func)
            if fn not in _FUNCS or node.keywords:
                raise ValueError(f"only abs(), min(), max() may be called, not {fn or '?'}()")
            node.args = [self.visit(a) for a in node.args]
            return node
        if not isinstance(node, self.ALLOWED):
            raise ValueError(f"{type(node).__name__} is not allowed in a condition")
        if isinstance(node, ast.Constant) and not isinstance(node.value, int | float):
            raise ValueError(f"only numbers may appear as constants, not {node.value!r}")
        return self.generic_visit(node)


def compile_condition(text: str) -> tuple[Any, list[str]]:
    """Parse and compile one condition; ValueError with the reason if it is not acceptable."""
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise ValueError(f"syntax error in {text!r}: {exc.msg}") from None
    comp = _Compiler()
    tree = ast.fix_missing_locations(comp.visit(tree))
    return compile(tree, "<rule>", "eval"), comp.names


def render(template: str, features: Mapping[str, Any]) -> str:
    """Fill ``{feature:fmt}`` placeholders; NaN numbers print as "n/a"."""
    vals = {
        k.replace(".", "__"): _NA if isinstance(v, float) and math.isnan(v) else v
        for k, v in features.items()
    }
    try:
        return _format(template, vals)
    except (KeyError, ValueError):
        return template


class _NAType:
    def __format__(self, spec: str) -> str:
        return "n/a"


_NA = _NAType()


def _format(template: str, vals: dict[str, Any]) -> str:
    out, i = [], 0
    while i < len(template):
        ch = template[i]
        if ch == "{":
            j = template.index("}", i)
            field = template[i + 1 : j]
            name, _, spec = field.partition(":")
            key = name.replace(".", "__")
            if key not in vals:
                raise KeyError(name)
            out.append(format(vals[key], spec))
            i = j + 1
        else:
            out.append(ch)
            i += 1
    return "".join(out)


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[A-Z]{2,4}-\d{2,3}$")
    cause: str
    confidence: float = Field(gt=0.0, le=1.0)
    title: str = Field(min_length=1, max_length=200)
    when: list[str] = Field(min_length=1, max_length=20)
    explain: str = Field(default="", max_length=500)
    """Evidence sentence (``{feature:fmt}`` placeholders)."""
    actions: list[str] = Field(default_factory=list, max_length=10)
    category: Category | None = None
    note: str = Field(default="", max_length=1000)
    _compiled: tuple[Any, ...] = PrivateAttr(default=())

    @field_validator("cause")
    @classmethod
    def _cause(cls, v: str) -> str:
        if v not in CAUSES:
            raise ValueError(f"unknown cause {v!r} (one of: {', '.join(CAUSES)})")
        return v

    @field_validator("when")
    @classmethod
    def _conditions(cls, v: list[str]) -> list[str]:
        for i, cond in enumerate(v):
            try:
                compile_condition(cond)
            except ValueError as exc:
                raise ValueError(f"[{i}]: {exc}") from None
        return v

    @field_validator("explain")
    @classmethod
    def _template(cls, v: str) -> str:
        dummy: dict[str, object] = {k.replace(".", "__"): 0.0 for k in FEATURES}
        dummy |= {k.replace(".", "__"): "x" for k in TEXT_FEATURES}
        try:
            _format(v, dummy)
        except KeyError as exc:
            raise ValueError(f"unknown feature {exc.args[0]!r}") from None
        except (ValueError, IndexError) as exc:
            raise ValueError(f"bad placeholder: {exc}") from None
        return v

    def model_post_init(self, _: Any) -> None:
        self._compiled = tuple(compile_condition(c)[0] for c in self.when)

    def holds(self, features: Mapping[str, Any]) -> bool:
        env = {"_f": features, **_FUNCS}
        for code in self._compiled:
            try:
                # Safe: the AST was checked at load (feature lookups, numbers, operators only).
                if not eval(code, {"__builtins__": {}}, env):
                    return False
            except (ZeroDivisionError, TypeError, ValueError):
                return False
        return True


def _rule_error(source: str, rule_id: str, exc: ValidationError) -> RuleError:
    return RuleError(f"{source}: rule {rule_id}: {error_line(exc, root='(rule)')}")


def rules_from_yaml(text: str, source: str) -> list[Rule]:
    """Parse one rule file's text (``source`` names it in errors: a path, or "<request>")."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:  # one line, position first (PyYAML's own text spans four)
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        raise RuleError(
            f"{where}: not valid YAML: {getattr(exc, 'problem', None) or exc}"
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("rules"), list):
        raise RuleError(f"{source}: expected a mapping with a 'rules:' list")
    rules = []
    for i, raw in enumerate(data["rules"]):
        rule_id = raw.get("id", f"#{i}") if isinstance(raw, dict) else f"#{i}"
        if not isinstance(raw, dict):
            raise RuleError(f"{source}: rule {rule_id}: a rule is a mapping")
        try:
            rules.append(Rule.model_validate(raw))
        except ValidationError as exc:
            raise _rule_error(source, str(rule_id), exc) from None
    return rules


def merge_rule_sets(sets: list[tuple[str, list[Rule]]]) -> list[Rule]:
    """Several files' rules as one list (in order); ids must be unique across files."""
    rules: list[Rule] = []
    seen: dict[str, str] = {}
    for source, file_rules in sets:
        for r in file_rules:
            if r.id in seen:
                raise RuleError(f"{source}: rule {r.id}: id: duplicate (also in {seen[r.id]})")
            seen[r.id] = source
            rules.append(r)
    return rules
