"""The `cms` command: each command is a few lines over the services; errors become exit codes here.

common.py    the `main` group, the `--site` option, errors as exit codes
content.py   the site's files: init, new, check, index, media rebuild
site.py      serve and build
webhooks.py  the webhooks commands, and the delivery of the events a command causes
admin.py     keys, state (backup and restore) and doctor
"""

from __future__ import annotations

from cms.cli.admin import doctor, keys, state
from cms.cli.common import main
from cms.cli.content import check, index_command, init, media, new
from cms.cli.site import build_command, serve
from cms.cli.webhooks import webhooks

for _command in (init, new, check, doctor, index_command, serve, keys, build_command, webhooks, state, media):
    main.add_command(_command)

__all__ = ["main"]
