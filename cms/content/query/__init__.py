"""The query engine: a `Query` parsed from a plain dict, and `run(index, query)` -> a `Page`. Pure.

Filters follow seed 004's grammar (`filters[data.price][$gt]=100`, `filters[$or][0][status][$eq]=draft`)
plus Strapi's extra operators. Anything the engine does not understand is a `BadRequest` that
names the parameter and what is accepted: a typo must never return a silently wrong list.

Data flows one way through the modules: `literals` (how URL text reads as a boolean, integer or
number) and `fields` (the field names and how to read them) -> `filters` (the filter compiler) ->
`params` (request parameters -> `Query`) -> `execution` (`run`). Import the names from here.
"""

from .execution import VISIBLE_DEFAULT, Page, pagination, run, visible
from .fields import BASE_FIELDS, FIELD_ALIASES, Getter, canonical_field, field_getter
from .filters import MAX_FILTER_DEPTH, MAX_FILTER_NODES, OPERATORS, Predicate, compile_filter
from .literals import to_bool, to_int, to_number
from .params import ALL_BUT_TRASH, PARAMS, Query, bool_param, int_param, parse_brackets, parse_query

__all__ = [
    "ALL_BUT_TRASH",
    "BASE_FIELDS",
    "FIELD_ALIASES",
    "MAX_FILTER_DEPTH",
    "MAX_FILTER_NODES",
    "OPERATORS",
    "PARAMS",
    "VISIBLE_DEFAULT",
    "Getter",
    "Page",
    "Predicate",
    "Query",
    "bool_param",
    "canonical_field",
    "compile_filter",
    "field_getter",
    "int_param",
    "pagination",
    "parse_brackets",
    "parse_query",
    "run",
    "to_bool",
    "to_int",
    "to_number",
    "visible",
]
