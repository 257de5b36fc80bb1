"""The live preview's own behaviour (the browser test in tests/e2e covers live reload end to end)."""

from __future__ import annotations

import threading
from pathlib import Path

from starlette.applications import Starlette
from starlette.testclient import TestClient

from cms.content.index import Index
from cms.events.bus import Bus
from cms.preview import Preview
from tests.render import copy_demo


def test_a_page_asked_for_during_the_first_build_waits_for_the_whole_build(tmp_path: Path) -> None:
    # The first build writes posts before the stylesheet; a tab opened in that moment used to get
    # the post with a 404 for /static/style.css. It must get the finished site instead.
    site = copy_demo(tmp_path / "site")
    index = Index.load(site, fill_search=False)
    preview = Preview(site, index, Bus())
    app = Starlette(routes=preview.routes())
    answers: dict[str, tuple[int, str]] = {}
    with TestClient(app) as client:

        def ask(path: str) -> None:
            response = client.get(path)
            answers[path] = (response.status_code, response.headers["content-type"])

        askers = [threading.Thread(target=ask, args=(p,)) for p in ("/posts/pour-over-basics/", "/static/style.css")]
        for thread in askers:
            thread.start()
        for thread in askers:
            thread.join(0.5)
        assert answers == {}, "the preview answered before its first build"
        preview.rebuild()
        for thread in askers:
            thread.join(10)
    assert answers["/posts/pour-over-basics/"] == (200, "text/html; charset=utf-8")
    assert answers["/static/style.css"][0] == 200
    assert answers["/static/style.css"][1].startswith("text/css")


def test_a_stopped_preview_does_not_keep_requests_waiting(tmp_path: Path) -> None:
    site = copy_demo(tmp_path / "site")
    preview = Preview(site, Index.load(site, fill_search=False), Bus())
    preview.stop()
    with TestClient(Starlette(routes=preview.routes())) as client:
        assert client.get("/posts/pour-over-basics/").status_code == 404  # nothing built, nothing waited for
