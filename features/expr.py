"""A small expression language for per-request columns, daily statistics and feature formulas, compiled to
each engine.

A definition is written once as an `Expr` tree (`ratio(col("cot_requests"), col("requests"))`) and every engine
evaluates that same tree: `to_spark` turns it into a PySpark Column, `to_frame` evaluates it on pandas or cuDF
Series. The trees are frozen dataclasses, so their `repr` is stable and feeds `feature_set_version`: changing a
formula changes the version, rewording a description does not.

Null semantics are the same on both engines and are the only subtle part:
  * arithmetic with a null gives null; a comparison with a null is not true;
  * `ratio(n, d)` is null when d is 0, negative or null (never a division by zero);
  * `when(c, a, b)` takes `a` where c is true and `b` (default null) where c is false or null;
  * `fill_null(x, v)` replaces null by v.
Timestamps are compared and subtracted through `epoch_micros(x)`: a Spark timestamp column becomes its
microseconds, while the frame engines already hold timestamps as integer microseconds.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, eq=False)
class Expr:
    op: str
    args: tuple = ()

    # arithmetic and comparisons build trees; `==` is `eq` so dataclass equality is not used for trees
    def __add__(self, other):
        return Expr("add", (self, _wrap(other)))

    def __radd__(self, other):
        return Expr("add", (_wrap(other), self))

    def __sub__(self, other):
        return Expr("sub", (self, _wrap(other)))

    def __rsub__(self, other):
        return Expr("sub", (_wrap(other), self))

    def __mul__(self, other):
        return Expr("mul", (self, _wrap(other)))

    def __rmul__(self, other):
        return Expr("mul", (_wrap(other), self))

    def __truediv__(self, other):
        return Expr("div", (self, _wrap(other)))

    def __gt__(self, other):
        return Expr("gt", (self, _wrap(other)))

    def __ge__(self, other):
        return Expr("ge", (self, _wrap(other)))

    def __lt__(self, other):
        return Expr("lt", (self, _wrap(other)))

    def __le__(self, other):
        return Expr("le", (self, _wrap(other)))

    def __and__(self, other):
        return Expr("and", (self, _wrap(other)))

    def __or__(self, other):
        return Expr("or", (self, _wrap(other)))

    def __invert__(self):
        return Expr("not", (self,))

    def __hash__(self):
        return hash(repr(self))

    def eq(self, other) -> Expr:
        return Expr("eq", (self, _wrap(other)))

    def ne(self, other) -> Expr:
        return Expr("ne", (self, _wrap(other)))

    def isin(self, *values) -> Expr:
        return Expr("isin", (self, tuple(values)))

    def is_null(self) -> Expr:
        return Expr("is_null", (self,))

    def not_null(self) -> Expr:
        return Expr("not_null", (self,))

    def as_float(self) -> Expr:
        return Expr("as_float", (self,))

    def columns(self) -> set[str]:
        """Every column name the tree reads."""
        if self.op == "col":
            return {self.args[0]}
        found: set[str] = set()
        for arg in self.args:
            if isinstance(arg, Expr):
                found |= arg.columns()
            elif isinstance(arg, tuple):
                for item in arg:
                    if isinstance(item, Expr):
                        found |= item.columns()
        return found


def _wrap(value) -> Expr:
    return value if isinstance(value, Expr) else lit(value)


def col(name: str) -> Expr:
    return Expr("col", (name,))


def lit(value) -> Expr:
    return Expr("lit", (value,))


def ratio(numerator, denominator) -> Expr:
    return Expr("ratio", (_wrap(numerator), _wrap(denominator)))


def sqrt(x) -> Expr:
    return Expr("sqrt", (_wrap(x),))


def log2(x) -> Expr:
    return Expr("log2", (_wrap(x),))


def greatest(x, y) -> Expr:
    return Expr("greatest", (_wrap(x), _wrap(y)))


def when(condition: Expr, then, otherwise=None) -> Expr:
    return Expr("when", (condition, _wrap(then), _wrap(otherwise)))


def fill_null(x, value) -> Expr:
    return Expr("fill_null", (_wrap(x), _wrap(value)))


def lookup(x: Expr, mapping: Mapping[str, float]) -> Expr:
    """x mapped through a dict; values outside it become null."""
    return Expr("lookup", (x, tuple(sorted(mapping.items()))))


def epoch_micros(x) -> Expr:
    return Expr("epoch_micros", (_wrap(x),))


def total(terms: list) -> Expr:
    """A balanced sum: a left-deep chain of 24 additions nests too deep for Spark Connect's protobuf."""
    if len(terms) == 1:
        return _wrap(terms[0])
    middle = len(terms) // 2
    return total(terms[:middle]) + total(terms[middle:])


def entropy_bits(counts: list[Expr]) -> Expr:
    """Shannon entropy in bits of the distribution given by `counts`, null when they are all 0:
    H = log2(T) - sum(c * log2(c)) / T with T = sum(c). The identity can land a rounding error below 0 for a
    single non-zero count, hence the floor at 0."""
    as_float = [c.as_float() for c in counts]
    whole = total(as_float)
    weighted_logs = total([when(c > 0, c * log2(c), 0.0) for c in as_float])
    return when(whole > 0, greatest(0.0, log2(whole) - ratio(weighted_logs, whole)))


# --- compilers ------------------------------------------------------------------------------------------


def to_spark(expr: Expr, resolve: Callable[[str], Any]):
    """The PySpark Column for `expr`; `resolve(name)` gives the Column a `col(name)` stands for."""
    from pyspark.sql import functions as F

    def go(e: Expr):
        op, args = e.op, e.args
        if op == "col":
            return resolve(args[0])
        if op == "lit":
            return F.lit(args[0])
        if op in _BINARY:
            return _BINARY[op](go(args[0]), go(args[1]))
        if op == "div":
            return go(args[0]).cast("double") / go(args[1]).cast("double")
        if op == "floordiv":  # exact for the non-negative epoch values it is used on (< 2**53)
            return F.floor(go(args[0]) / go(args[1])).cast("long")
        if op == "mod":
            return go(args[0]) % go(args[1])
        if op == "ratio":
            return go(args[0]).cast("double") / F.when(go(args[1]) > 0, go(args[1]).cast("double"))
        if op == "not":
            return ~go(args[0])
        if op == "isin":
            return go(args[0]).isin(*args[1])
        if op == "is_null":
            return go(args[0]).isNull()
        if op == "not_null":
            return go(args[0]).isNotNull()
        if op == "as_float":
            return go(args[0]).cast("double")
        if op == "sqrt":
            return F.sqrt(go(args[0]))
        if op == "log2":
            return F.log2(go(args[0]))
        if op == "greatest":
            return F.greatest(go(args[0]), go(args[1]))
        if op == "when":
            return F.when(go(args[0]), go(args[1])).otherwise(go(args[2]))
        if op == "fill_null":
            return F.coalesce(go(args[0]), go(args[1]))
        if op == "lookup":
            value = F.lit(None).cast("double")
            for key, mapped in args[1]:
                value = F.when(go(args[0]) == F.lit(key), F.lit(float(mapped))).otherwise(value)
            return value
        if op == "epoch_micros":
            return F.unix_micros(go(args[0]))
        raise ValueError(f"unknown expression op {op!r}")

    return go(expr)


_BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "gt": lambda a, b: a > b,
    "ge": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "le": lambda a, b: a <= b,
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
    "and": lambda a, b: a & b,
    "or": lambda a, b: a | b,
}


def to_frame(expr: Expr, resolve: Callable[[str], Any], like):
    """Evaluate `expr` on pandas or cuDF Series; `resolve(name)` gives the Series of `col(name)` and `like` is any
    Series of the frame (constants are broadcast to its shape). Nulls are NaN/NA in float columns."""
    import numpy as np

    def series(value):
        if _is_series(value):
            return value
        base = like.isna().astype("float64") * 0.0  # any dtype: strings too
        return base + value if value is not None else base.where(base > 1.0)  # all-null float Series

    def truth(value):
        """A boolean mask where null reads as false."""
        return series(value).fillna(False).astype("bool")

    def go(e: Expr):
        op, args = e.op, e.args
        if op == "col":
            return resolve(args[0])
        if op == "lit":
            return args[0]
        if op in ("add", "sub", "mul"):
            return _BINARY[op](_num(go(args[0])), _num(go(args[1])))
        if op in ("gt", "ge", "lt", "le", "eq", "ne"):
            left, right = go(args[0]), go(args[1])
            result = _BINARY[op](left, right)
            if _is_series(result):
                nulls = _null_mask(left) | _null_mask(right)
                result = result.astype("bool") & ~nulls
            return result
        if op in ("and", "or"):
            return _BINARY[op](truth(go(args[0])), truth(go(args[1])))
        if op == "not":
            return ~truth(go(args[0]))
        if op == "div":
            return series(go(args[0])).astype("float64") / series(go(args[1])).astype("float64")
        if op == "floordiv":
            return go(args[0]) // go(args[1])
        if op == "mod":
            return go(args[0]) % go(args[1])
        if op == "ratio":
            numerator = series(go(args[0])).astype("float64")
            denominator = series(go(args[1])).astype("float64")
            return numerator / denominator.where(denominator > 0)
        if op == "isin":
            return series(go(args[0])).isin(list(args[1])).astype("bool")
        if op == "is_null":
            return _null_mask(series(go(args[0])))
        if op == "not_null":
            return ~_null_mask(series(go(args[0])))
        if op == "as_float":
            return series(go(args[0])).astype("float64")
        if op == "sqrt":
            return np.sqrt(series(go(args[0])).astype("float64"))
        if op == "log2":
            x = series(go(args[0])).astype("float64")
            return np.log2(x.where(x > 0))
        if op == "greatest":
            a, b = series(go(args[0])).astype("float64"), series(go(args[1])).astype("float64")
            return a.where(a >= b, b).where(~(_null_mask(a) | _null_mask(b)))
        if op == "when":
            condition = truth(go(args[0]))
            return series(go(args[1])).where(condition, series(go(args[2])))
        if op == "fill_null":
            return series(go(args[0])).fillna(go(args[1]))
        if op == "lookup":
            mapped = series(go(args[0])).map(dict(args[1]))
            return mapped.astype("float64")
        if op == "epoch_micros":
            return go(args[0])
        raise ValueError(f"unknown expression op {op!r}")

    return series(go(expr))


def _is_series(value) -> bool:
    return hasattr(value, "dtype") and hasattr(value, "index")


def _num(value):
    """Booleans take part in arithmetic as 0/1, as Spark casts them."""
    if _is_series(value) and str(value.dtype) == "bool":
        return value.astype("int64")
    return value


def _null_mask(value):
    if not _is_series(value):
        return not (value is not None and not (isinstance(value, float) and math.isnan(value)))
    return value.isna()
