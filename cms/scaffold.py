"""`cms init`: the files of a new, working site."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from cms.config import CONFIG_NAME
from cms.content.names import new_id
from cms.content.write import atomic_write
from cms.errors import Conflict

GITIGNORE = "# local state and build output of the CMS: never commit them\n.cms/\npublic/\n"


def scaffold(root: Path, *, title: str = "My site") -> list[Path]:
    """Create a site in `root` (which must not hold a cms.toml yet); the paths written."""
    root = root.resolve()
    if (root / CONFIG_NAME).exists():
        raise Conflict(f"{root / CONFIG_NAME} already exists; not overwriting a site")
    now = datetime.now(UTC).replace(microsecond=0)
    files = {
        CONFIG_NAME: (
            "# Site configuration; every key is documented in docs/config.md.\n"
            "[site]\n"
            f"title = {json.dumps(title)}\n"
            'description = ""\n'
            'base_url = "http://localhost:8000"\n'
            'language = "en"\n'
            'timezone = "UTC"\n'
            'theme = "default"\n'
        ),
        ".gitignore": GITIGNORE,
        "content/posts/hello-world.md": (
            "---\n"
            f"id: {new_id()}\n"
            "title: Hello, world\n"
            f"date: {now.isoformat()}\n"
            "tags:\n  - welcome\n"
            "categories:\n  - general\n"
            "---\n"
            "This is the first post of your new site. Edit `content/posts/hello-world.md`, or write through the API.\n"
        ),
        "content/categories/general.md": "---\nname: General\ndescription: Everything else.\n---\n",
        "content/pages/about.md": (
            f"---\nid: {new_id()}\ntitle: About\ndate: {now.isoformat()}\n---\nWho we are and what this site is for.\n"
        ),
        "uploads/.gitkeep": "",
    }
    written = []
    for rel, text in files.items():
        path = root / rel
        if path.exists():
            continue
        atomic_write(path, text.encode())
        written.append(path)
    return written
