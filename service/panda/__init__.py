"""Panda mode: one model babysat, changed while it trains, rolled back, forked and replayed exactly.

- :mod:`service.panda.session`: starting and forking sessions, and reading them (``show``, ``list``);
- :mod:`service.panda.control`: the requests a person sends (set, pause, resume, stop, rollback);
- :mod:`service.panda.runner`: the process that trains a session and applies its requests;
- :mod:`service.panda.replay`: re-running a session from its log and comparing bit for bit;
- :mod:`service.panda.launch`: where a runner runs (this process, a background one, a Celery worker);
- :mod:`service.panda.watch`: the terminal's live view;
- :mod:`service.panda.plot`: the picture of a session and its forks.

The pure parts (the timeline of changes, retention, hints) are in :mod:`core.panda`.
"""

from __future__ import annotations
