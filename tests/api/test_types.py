"""Content types over HTTP: `_type.yaml` schemas, admin-only changes, and documents validated by them."""

from __future__ import annotations

from typing import Any

from starlette.testclient import TestClient

from cms.config import Site

from .conftest import assert_error

TYPES = "/api/v1/content-types"
RECIPES = {
    "name": "recipes",
    "label": "Recipes",
    "fields": [
        {"name": "servings", "type": "integer", "required": True, "min": 1},
        {"name": "difficulty", "type": "select", "options": ["easy", "hard"]},
    ],
}


def data(response: Any) -> Any:
    assert response.status_code < 300, response.text
    return response.json()["data"]


def test_list_has_builtin_and_schema_types(reader: TestClient) -> None:
    types = {t["name"]: t for t in data(reader.get(TYPES))}
    assert set(types) == {"posts", "pages", "products"}
    assert types["posts"]["builtin"] is True and types["products"]["builtin"] is False
    assert types["products"]["documents"] == 6 and types["products"]["endpoint"] == "/api/v1/content/products"


def test_one_type_shows_its_fields(reader: TestClient) -> None:
    fields = {f["name"]: f for f in data(reader.get(f"{TYPES}/products"))["fields"]}
    assert fields["price"] == {"name": "price", "type": "number", "label": "Price (EUR)", "required": True, "min": 0}
    assert fields["roast"]["options"] == ["light", "medium", "dark"]
    assert_error(reader.get(f"{TYPES}/recipes"), 404, "NOT_FOUND")


def test_create_type_writes_its_schema(admin: TestClient, site: Site) -> None:
    response = admin.post(TYPES, json=RECIPES)
    assert response.status_code == 201 and response.headers["Location"] == f"{TYPES}/recipes"
    assert [f["name"] for f in data(response)["fields"]] == ["servings", "difficulty"]
    assert "servings" in (site.content_dir / "recipes/_type.yaml").read_text()
    assert data(admin.get("/api/v1/content/recipes")) == []


def test_create_type_twice_is_409(admin: TestClient) -> None:
    admin.post(TYPES, json=RECIPES)
    assert_error(admin.post(TYPES, json=RECIPES), 409, "CONFLICT")
    assert_error(admin.post(TYPES, json={"name": "posts"}), 409, "CONFLICT")


def test_create_type_with_a_bad_schema_is_422(admin: TestClient, site: Site) -> None:
    error = assert_error(
        admin.post(TYPES, json={"name": "bad", "fields": [{"name": "x", "type": "colour"}]}), 422, "VALIDATION_ERROR"
    )
    assert "colour" in error["details"]["fields"][0]
    assert_error(admin.post(TYPES, json={"name": "bad", "colour": "red"}), 422, "VALIDATION_ERROR")
    assert not (site.content_dir / "bad").exists()


def test_a_fields_map_publishes_that_its_keys_are_field_names(admin: TestClient) -> None:
    """A key of a fields map that is not a field name is refused, so the schema allows no other key."""
    schemas = admin.get("/api/v1/openapi.json").json()["components"]["schemas"]
    for name in ("NewContentType", "ContentTypeInput"):
        listed, mapped = schemas[name]["properties"]["fields"]["anyOf"][0]["oneOf"]
        assert mapped["additionalProperties"] is False and list(mapped["patternProperties"]) == [
            r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
        ]
    body = {"name": "bad", "fields": {"no good": {"type": "text"}}}
    assert "fields" in assert_error(admin.post(TYPES, json=body), 422, "VALIDATION_ERROR")["details"]


def test_taxonomy_folders_are_not_types(admin: TestClient) -> None:
    assert_error(admin.post(TYPES, json={"name": "tags"}), 400, "BAD_REQUEST")


def test_documents_of_a_new_type_are_validated_by_its_schema(admin: TestClient, writer: TestClient) -> None:
    admin.post(TYPES, json=RECIPES)
    body = {"title": "Iced latte", "content": "Shake.", "data": {"servings": 0, "difficulty": "medium"}}
    error = assert_error(writer.post("/api/v1/content/recipes", json=body), 422, "VALIDATION_ERROR")
    assert error["details"] == {"servings": ["must be >= 1"], "difficulty": ["must be one of easy, hard"]}
    missing = assert_error(
        writer.post("/api/v1/content/recipes", json={"title": "T", "content": ""}), 422, "VALIDATION_ERROR"
    )
    assert missing["details"] == {"servings": ["is required"]}
    doc = data(writer.post("/api/v1/content/recipes", json={**body, "data": {"servings": 2, "difficulty": "easy"}}))
    assert doc["data"] == {"servings": 2, "difficulty": "easy"}


def test_fields_outside_the_schema_are_422(admin: TestClient, writer: TestClient) -> None:
    admin.post(TYPES, json=RECIPES)
    body = {"title": "T", "content": "", "data": {"servings": 1, "calories": 90}}
    error = assert_error(writer.post("/api/v1/content/recipes", json=body), 422, "VALIDATION_ERROR")
    assert list(error["details"]) == ["data.calories"]


def test_patch_type_changes_only_the_keys_sent(admin: TestClient, site: Site) -> None:
    path = site.content_dir / "products/_type.yaml"
    before = path.read_text()
    assert data(admin.patch(f"{TYPES}/products", json={"label": "Shop"}))["label"] == "Shop"
    assert path.read_text() == before.replace("label: Products\n", "label: Shop\n")


def test_patch_type_fields_changes_the_validation(admin: TestClient, writer: TestClient) -> None:
    admin.post(TYPES, json=RECIPES)
    admin.patch(f"{TYPES}/recipes", json={"fields": [{"name": "servings", "type": "integer"}]})
    assert writer.post("/api/v1/content/recipes", json={"title": "T", "content": ""}).status_code == 201


def test_patch_type_with_a_bad_field_is_422_and_writes_nothing(admin: TestClient, site: Site) -> None:
    path = site.content_dir / "products/_type.yaml"
    before = path.read_bytes()
    response = admin.patch(f"{TYPES}/products", json={"fields": [{"name": "x", "type": "colour"}]})
    assert_error(response, 422, "VALIDATION_ERROR")
    assert path.read_bytes() == before


def test_patch_builtin_type_keeps_the_builtin_fields(admin: TestClient, site: Site) -> None:
    posts = data(admin.patch(f"{TYPES}/posts", json={"label": "Articles"}))
    assert posts["label"] == "Articles" and "seo_description" in {f["name"] for f in posts["fields"]}
    assert (site.content_dir / "posts/_type.yaml").read_text() == "label: Articles\nname: posts\n"


def test_patch_unknown_type_is_404(admin: TestClient) -> None:
    assert_error(admin.patch(f"{TYPES}/recipes", json={"label": "x"}), 404, "NOT_FOUND")


def test_delete_type_with_documents_is_409_unless_forced(admin: TestClient, site: Site) -> None:
    error = assert_error(admin.delete(f"{TYPES}/products"), 409, "CONFLICT")
    assert error["details"] == {"documents": 6}
    assert len(list((site.content_dir / "products").glob("*.md"))) == 6
    assert admin.delete(f"{TYPES}/products", params={"force": "true"}).status_code == 204
    assert not list((site.content_dir / "products").glob("*"))
    assert_error(admin.get(f"{TYPES}/products"), 404, "NOT_FOUND")
    assert_error(admin.get("/api/v1/content/products/kenya-kiambu-aa"), 404, "NOT_FOUND")


def test_delete_empty_type(admin: TestClient, site: Site) -> None:
    admin.post(TYPES, json=RECIPES)
    assert admin.delete(f"{TYPES}/recipes").status_code == 204
    assert not (site.content_dir / "recipes/_type.yaml").exists()


def test_builtin_type_cannot_be_deleted(admin: TestClient) -> None:
    assert_error(admin.delete(f"{TYPES}/posts", params={"force": "true"}), 409, "CONFLICT")


def test_only_admin_changes_types(writer: TestClient, deleter: TestClient) -> None:
    assert_error(writer.post(TYPES, json=RECIPES), 403, "FORBIDDEN")
    assert_error(writer.patch(f"{TYPES}/products", json={"label": "x"}), 403, "FORBIDDEN")
    assert_error(deleter.delete(f"{TYPES}/products", params={"force": "true"}), 403, "FORBIDDEN")


# -- the published shapes --------------------------------------------------------------------


def test_field_type_names_are_accepted_in_any_case(admin: TestClient) -> None:
    fields = [{"name": "body", "type": "RichText"}, {"name": "n", "type": "INT"}, {"name": "s", "type": "richText"}]
    made = {f["name"]: f["type"] for f in data(admin.post(TYPES, json={"name": "notes", "fields": fields}))["fields"]}
    assert made == {"body": "markdown", "n": "integer", "s": "markdown"}
    error = assert_error(admin.post(TYPES, json={"name": "bad", "fields": {"x": {"type": 3}}}), 422, "VALIDATION_ERROR")
    assert error["details"] == {"fields": ["map.x.type must be a string"]}


def test_a_fields_map_is_written_as_a_map(admin: TestClient, site: Site) -> None:
    body = {"name": "events", "fields": {"starts": {"type": "datetime", "required": True}, "notes": None}}
    made = data(admin.post(TYPES, json=body))
    assert [(f["name"], f["type"]) for f in made["fields"]] == [("starts", "datetime"), ("notes", "text")]
    assert "  starts:\n" in (site.content_dir / "events/_type.yaml").read_text()


def _schemas_of(spec: dict[str, Any], *tags: str) -> dict[str, Any]:
    """The component schemas the operations of these tags use, with the ones they refer to."""
    names: set[str] = set()
    todo = [op for item in spec["paths"].values() for op in item.values() if set(op.get("tags", ())) & set(tags)]
    while todo:
        node = todo.pop()
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[1] not in names:
                names.add(ref.rsplit("/", 1)[1])
                todo.append(spec["components"]["schemas"][ref.rsplit("/", 1)[1]])
            todo.extend(node.values())
        elif isinstance(node, list):
            todo.extend(node)
    return {name: spec["components"]["schemas"][name] for name in names}


def _problems(node: Any, where: str) -> list[str]:
    """What a client generator refuses: an array without items, a type union, enum values equal but for case."""
    out: list[str] = []
    if isinstance(node, dict):
        kinds = node.get("type")
        kinds = kinds if isinstance(kinds, list) else [kinds] if kinds else []
        if "array" in kinds and "items" not in node and "prefixItems" not in node:
            out.append(f"{where}: an array without items")
        if len([k for k in kinds if k != "null"]) > 1:
            out.append(f"{where}: type {kinds} (a union must be anyOf/oneOf of complete schemas)")
        folded = [str(v).casefold() for v in node.get("enum", ())]
        if len(folded) != len(set(folded)):
            out.append(f"{where}: enum values that differ only in case")
        for key, value in node.items():
            out += _problems(value, f"{where}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out += _problems(value, f"{where}[{i}]")
    return out


def test_type_and_term_schemas_are_plain_json_schema_a_client_generator_takes(reader: TestClient) -> None:
    spec = reader.get("/api/v1/openapi.json").json()
    schemas = _schemas_of(spec, "content-types", "taxonomies", "authors")
    assert {"ContentType", "FieldDefinition", "FieldInput", "Term", "TermInput", "Author"} <= set(schemas)
    assert [p for name, schema in sorted(schemas.items()) for p in _problems(schema, name)] == []


def test_field_type_names_are_published_once_whatever_their_case(reader: TestClient) -> None:
    from cms.content.model import FIELD_TYPE_ALIASES, FIELD_TYPES

    spec = reader.get("/api/v1/openapi.json").json()
    names = spec["components"]["schemas"]["FieldInput"]["properties"]["type"]["enum"]
    assert sorted(names) == sorted({n.casefold() for n in (*FIELD_TYPES, *FIELD_TYPE_ALIASES)})
