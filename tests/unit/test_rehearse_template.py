"""strangler.rehearse.template: JMESPath expressions and {placeholder} templates."""

from __future__ import annotations

import random

import pytest

from strangler.rehearse.template import Evaluator, ExpressionError, check_template, text

CONTEXT = {"user": {"n": 3, "username": "ann"}, "vars": {"qty": 2, "slug": "oslo"},
           "model": {"cart": {"3": 1}, "ids": [4, 5]}, "run": {"id": "ab12"}}


def ev(seed: int = 1) -> Evaluator:
    return Evaluator(random.Random(seed))


def test_a_lone_placeholder_keeps_its_type_and_text_is_joined() -> None:
    e = ev()
    assert e.render("{vars.qty}", CONTEXT) == 2
    assert e.render("/api/saved/{vars.slug}", CONTEXT) == "/api/saved/oslo"
    assert e.render("rh-{run.id}-u{user.n}", CONTEXT) == "rh-ab12-u3"
    assert e.render("{{literal}} {vars.qty}", CONTEXT) == "{literal} 2"
    assert e.render({"product_id": "{vars.qty}", "tags": ["{user.username}", 7]}, CONTEXT) \
        == {"product_id": 2, "tags": ["ann", 7]}
    assert e.render("{model.cart}", CONTEXT) == {"3": 1}
    assert e.render("cart {model.cart}", CONTEXT) == 'cart {"3":1}'
    assert e.render("x{missing}y", CONTEXT) == "xy"  # null joins as nothing
    assert (text(None), text("a"), text([1, 2])) == ("", "a", "[1,2]")


def test_the_added_functions() -> None:
    e = ev(7)
    assert e.search("choice(model.ids)", CONTEXT) in (4, 5)
    assert e.search("choice(`[]`)", CONTEXT) is None
    assert all(1 <= e.search("random_int(`1`, `3`)", CONTEXT) <= 3 for _ in range(20))
    assert e.search("uuid()", CONTEXT) != e.search("uuid()", CONTEXT)
    assert ev(7).search("uuid()", CONTEXT) == ev(7).search("uuid()", CONTEXT)  # seeded
    items = {"items": [{"product_id": 3, "qty": 2}, {"product_id": 9, "qty": 0}]}
    assert e.search("to_object(items[?qty > `0`].[to_string(product_id), qty])", items) \
        == {"3": 2}
    with pytest.raises(ExpressionError, match="pair"):
        e.search("to_object(`[1, 2]`)", items)
    assert e.truthy("length(keys(model.cart)) > `0`", CONTEXT)
    assert not e.truthy("model.nothing", CONTEXT)


def test_bad_expressions_and_templates_are_refused_before_the_run() -> None:
    for bad in ("/api/{vars.}", "/api/{", "a}b", "{}"):
        with pytest.raises(ExpressionError):
            check_template(bad)
    check_template({"a": ["{vars.x}", "{{ok}}"]})
    with pytest.raises(ExpressionError, match="not a JMESPath expression"):
        ev().search("items[", CONTEXT)
    with pytest.raises(ExpressionError):
        ev().search("random_int('a', `1`)", CONTEXT)  # wrong type, at run time
