"""The API reference as one self-contained HTML page, rendered on the server from the OpenAPI spec.

No CDN, font, image or script from anywhere else: inline CSS and a few lines of inline script (a
filter box), so the page works offline and under a Content-Security-Policy that allows only itself.
Every text taken from the spec is escaped.
"""

from __future__ import annotations

import re
from html import escape
from typing import Any

import orjson

_MAX_DEPTH = 4  # nested object properties shown inline; deeper ones link to their component

_CSS = """
:root{--fg:#1d232a;--muted:#5b6670;--line:#d9dee3;--bg:#fff;--code:#f3f5f7;--get:#1f6feb;--post:#1a7f37;
--put:#9a6700;--patch:#8250df;--delete:#cf222e}
*{box-sizing:border-box}body{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI",sans-serif;color:var(--fg);
background:var(--bg)}header{padding:1.2rem 2rem;border-bottom:1px solid var(--line)}
h1{margin:0 0 .3rem;font-size:1.5rem}
.layout{display:flex}nav{width:16rem;flex:none;padding:1rem 1.2rem;border-right:1px solid var(--line);position:sticky;
top:0;height:100vh;overflow:auto;font-size:.9rem}
nav a{display:block;color:var(--fg);text-decoration:none;padding:.1rem 0}
nav a:hover{text-decoration:underline}main{flex:1;min-width:0;padding:1rem 2rem 4rem}
h2{margin:2rem 0 .4rem;font-size:1.25rem;border-bottom:1px solid var(--line);padding-bottom:.3rem}
details.op{border:1px solid var(--line);border-radius:6px;margin:.5rem 0}details.op>summary{cursor:pointer;
padding:.45rem .7rem;list-style:none;display:flex;gap:.7rem;align-items:baseline}details.op[open]>summary{
border-bottom:1px solid var(--line)}.body{padding:.3rem 1rem 1rem}.m{font:700 .75rem/1.6 ui-monospace,monospace;
color:#fff;border-radius:4px;padding:0 .45rem;min-width:4.2rem;text-align:center}.m.get{background:var(--get)}
.m.post{background:var(--post)}.m.put{background:var(--put)}.m.patch{background:var(--patch)}
.m.delete{background:var(--delete)}.path{font-family:ui-monospace,monospace;font-weight:600}.sum{color:var(--muted)}
table{border-collapse:collapse;width:100%;margin:.3rem 0 .8rem;font-size:.9rem}th,td{text-align:left;
vertical-align:top;padding:.25rem .5rem;border-bottom:1px solid var(--line)}th{font-weight:600}
code,.t{font-family:ui-monospace,monospace;font-size:.85em;background:var(--code);border-radius:3px;padding:0 .25rem}
.req{color:var(--delete);font-size:.8em}.muted{color:var(--muted)}h3{font-size:1rem;margin:1rem 0 .2rem}
h4{font-size:.92rem;margin:.8rem 0 .2rem}#filter{width:100%;padding:.35rem .5rem;margin:.2rem 0 .8rem;
border:1px solid var(--line);border-radius:4px}.hidden{display:none}pre{background:var(--code);padding:.6rem;
overflow:auto;border-radius:4px;font-size:.85em}
"""

_SCRIPT = """
document.getElementById('filter').addEventListener('input', function () {
  var q = this.value.toLowerCase();
  document.querySelectorAll('details.op').forEach(function (el) {
    el.classList.toggle('hidden', q !== '' && el.textContent.toLowerCase().indexOf(q) < 0);
  });
});
"""


def render(spec: dict[str, Any]) -> str:
    """The whole page for one OpenAPI document."""
    info = spec.get("info", {})
    groups: dict[str, list[tuple[str, str, dict[str, Any]]]] = {t["name"]: [] for t in spec.get("tags", [])}
    for path, item in spec.get("paths", {}).items():
        for method, op in item.items():
            tag = (op.get("tags") or ["other"])[0]
            groups.setdefault(tag, []).append((path, method, op))
    tag_text = {t["name"]: t.get("description", "") for t in spec.get("tags", [])}
    nav = "".join(f'<a href="#tag-{_id(t)}">{escape(t)}</a>' for t, ops in groups.items() if ops)
    nav += '<a href="#schemas"><em>Schemas</em></a><a href="#auth"><em>Authentication</em></a>'
    sections = []
    for tag, ops in groups.items():
        if not ops:
            continue
        body = "".join(_operation(spec, path, method, op) for path, method, op in ops)
        text = f"<p class=muted>{_text(tag_text.get(tag, ''))}</p>" if tag_text.get(tag) else ""
        sections.append(f'<h2 id="tag-{_id(tag)}">{escape(tag)}</h2>{text}{body}')
    schemas = spec.get("components", {}).get("schemas", {})
    schema_html = "".join(
        f'<h3 id="schema-{_id(name)}">{escape(name)}</h3>{_schema_block(spec, s, 0)}' for name, s in schemas.items()
    )
    auth = _auth(spec)
    title = escape(str(info.get("title", "API")))
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        f"<title>{title}</title><style>{_CSS}</style></head><body>"
        f"<header><h1>{title} <span class=muted>{escape(str(info.get('version', '')))}</span></h1>"
        f"<div class=muted>{_text(info.get('description', ''))}</div>"
        '<div>Machine-readable contract: <a href="/api/v1/openapi.json">/api/v1/openapi.json</a> '
        f"(OpenAPI {escape(str(spec.get('openapi', '')))})</div></header>"
        f'<div class=layout><nav><input id=filter type=search placeholder="Filter endpoints">{nav}</nav><main>'
        + "".join(sections)
        + f'<h2 id="auth">Authentication</h2>{auth}<h2 id="schemas">Schemas</h2>{schema_html}'
        + f"</main></div><script>{_SCRIPT}</script></body></html>"
    )


def _text(text: Any) -> str:
    """Escaped text with `code` spans shown as code (the spec's descriptions use Markdown backticks)."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", escape(str(text)))


def _id(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in text)


def _auth(spec: dict[str, Any]) -> str:
    rows = []
    for name, scheme in spec.get("components", {}).get("securitySchemes", {}).items():
        where = f"{scheme.get('in', '')} <code>{escape(str(scheme.get('name', '')))}</code>"
        if scheme.get("type") == "http":
            where = f"<code>Authorization: {escape(str(scheme.get('scheme', '')).title())} …</code>"
        rows.append(f"<tr><td>{escape(name)}</td><td>{where}</td><td>{_text(scheme.get('description', ''))}</td></tr>")
    return "<table><tr><th>scheme</th><th>where</th><th>notes</th></tr>" + "".join(rows) + "</table>"


def _operation(spec: dict[str, Any], path: str, method: str, op: dict[str, Any]) -> str:
    parts = [f"<p>{_text(op['description'])}</p>"] if op.get("description") else []
    security = op.get("security")
    if security == []:
        parts.append("<p><strong>Auth:</strong> none</p>")
    elif security:
        scope = op.get("x-scope", "")
        anonymous = " (anonymous reads allowed for public types)" if {} in security else ""
        need = "any valid key" if scope == "any" else f"a key with the <code>{escape(scope)}</code> scope"
        parts.append(f"<p><strong>Auth:</strong> {need}{anonymous}</p>")
    params = op.get("parameters", [])
    if params:
        rows = "".join(
            f"<tr><td><code>{escape(p['name'])}</code>{' <span class=req>required</span>' if p.get('required') else ''}"
            f"</td><td>{escape(p['in'])}</td><td>{_type(spec, p.get('schema', {}))}</td>"
            f"<td>{_text(p.get('description', ''))}</td></tr>"
            for p in params
        )
        parts.append(f"<h4>Parameters</h4><table><tr><th>name</th><th>in</th><th>type</th><th></th></tr>{rows}</table>")
    for media, body in op.get("requestBody", {}).get("content", {}).items():
        parts.append(f"<h4>Request body <span class=muted>({escape(media)})</span></h4>")
        parts.append(_schema_block(spec, body.get("schema", {}), 0))
        if "example" in body:
            parts.append(f"<pre>{escape(orjson.dumps(body['example'], option=orjson.OPT_INDENT_2).decode())}</pre>")
    responses = []
    for status, response in op.get("responses", {}).items():
        ref = response.get("$ref", "")
        if ref:
            response = spec["components"]["responses"][ref.rsplit("/", 1)[1]]
        content = response.get("content", {})
        shape = ""
        for media, media_obj in content.items():
            shape += f"<span class=muted>{escape(media)}</span> {_type(spec, media_obj.get('schema', {}))} "
        headers = ", ".join(f"<code>{escape(h)}</code>" for h in response.get("headers", {}))
        responses.append(
            f"<tr><td><strong>{escape(status)}</strong></td><td>{_text(response.get('description', ''))}</td>"
            f"<td>{shape}</td><td>{headers}</td></tr>"
        )
    parts.append(
        "<h4>Responses</h4><table><tr><th>status</th><th></th><th>body</th><th>headers</th></tr>"
        + "".join(responses)
        + "</table>"
    )
    m = escape(method.lower())
    return (
        f'<details class=op id="op-{_id(op.get("operationId", ""))}"><summary><span class="m {m}">{m.upper()}</span>'
        f"<span class=path>{escape(path)}</span><span class=sum>{escape(op.get('summary', ''))}</span></summary>"
        f"<div class=body>{''.join(parts)}</div></details>"
    )


def _ref_name(schema: dict[str, Any]) -> str | None:
    ref = schema.get("$ref")
    return ref.rsplit("/", 1)[1] if isinstance(ref, str) else None


def _type(spec: dict[str, Any], schema: Any) -> str:
    """A one-line description of a schema, linking named components."""
    if not isinstance(schema, dict):
        return ""
    name = _ref_name(schema)
    if name:
        return f'<a href="#schema-{_id(name)}">{escape(name)}</a>'
    for key, joiner in (("anyOf", " | "), ("oneOf", " | "), ("allOf", " & ")):
        if key in schema:
            return joiner.join(_type(spec, s) for s in schema[key] if _type(spec, s))
    if "const" in schema:
        return f"<code>{escape(orjson.dumps(schema['const']).decode())}</code>"
    if "enum" in schema:
        return " | ".join(f"<code>{escape(orjson.dumps(v).decode())}</code>" for v in schema["enum"])
    props = schema.get("properties")
    if props and len(props) <= 4:  # an envelope: {data: Post, pagination: Pagination}
        return "{" + ", ".join(f"{escape(k)}: {_type(spec, v) or 'any'}" for k, v in props.items()) + "}"
    types = schema.get("type")
    if types is None:
        if schema.get("required") and not props:  # a refinement: which keys must be there
            return "object with " + ", ".join(f"<code>{escape(r)}</code>" for r in schema["required"])
        if "properties" in schema or "required" in schema:
            return "object"
        return "not allowed" if schema.get("not") == {} else "any"
    out = []
    for t in types if isinstance(types, list) else [types]:
        if t == "array":
            out.append(f"array of {_type(spec, schema.get('items', {})) or 'any'}")
        elif t == "string" and "format" in schema:
            out.append(f"string ({escape(schema['format'])})")
        else:
            out.append(escape(t))
    limits = [
        f"{label} {schema[key]}"
        for key, label in (
            ("minimum", "≥"),
            ("maximum", "≤"),
            ("minLength", "min length"),
            ("maxLength", "max length"),
            ("maxItems", "max items"),
        )
        if key in schema
    ]
    if "pattern" in schema:
        limits.append(f"pattern <code>{escape(schema['pattern'])}</code>")
    return " | ".join(out) + (f" <span class=muted>({', '.join(limits)})</span>" if limits else "")


def _schema_block(spec: dict[str, Any], schema: dict[str, Any], depth: int) -> str:
    """A schema as a table of its properties (objects), or its one-line type."""
    parts = []
    if schema.get("description"):
        parts.append(f"<p class=muted>{_text(schema['description'])}</p>")
    for sub in schema.get("allOf", []):
        if _ref_name(sub):
            parts.append(f"<p>All of {_type(spec, sub)}, with:</p>")
        else:
            parts.append(_schema_block(spec, sub, depth))
    props = schema.get("properties")
    if not props:
        if "allOf" not in schema:
            parts.append(f"<p>{_type(spec, schema)}</p>")
        if schema.get("required"):
            names = ", ".join(f"<code>{escape(r)}</code>" for r in schema["required"])
            parts.append(f"<p>Required: {names}</p>")
        return "".join(parts)
    required = set(schema.get("required", []))
    rows = []
    for name, sub in props.items():
        inner = ""
        if isinstance(sub, dict) and sub.get("properties") and depth < _MAX_DEPTH:
            inner = _schema_block(spec, sub, depth + 1)
        text = _text(sub.get("description", "")) if isinstance(sub, dict) else ""
        title = escape(sub.get("title", "")) if isinstance(sub, dict) else ""
        rows.append(
            f"<tr><td><code>{escape(name)}</code>{' <span class=req>required</span>' if name in required else ''}</td>"
            f"<td>{_type(spec, sub) if not inner else 'object'}</td>"
            f"<td>{title + ': ' if title else ''}{text}{inner}</td></tr>"
        )
    extra = schema.get("additionalProperties")
    if extra is False:
        rows.append("<tr><td colspan=3 class=muted>no other keys</td></tr>")
    parts.append("<table><tr><th>field</th><th>type</th><th></th></tr>" + "".join(rows) + "</table>")
    return "".join(parts)
