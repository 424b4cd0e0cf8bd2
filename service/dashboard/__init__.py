"""``caviar dashboard``: a live web view of studies and panda sessions (Starlette, served by uvicorn).

One concept a module:

- :mod:`~service.dashboard.app`: :func:`~service.dashboard.app.create_app`, the routes and the pages;
- :mod:`~service.dashboard.readonly`: the read-only handle every read goes through;
- :mod:`~service.dashboard.queries`: the JSON API's read side (server-side paging, point sampling);
- :mod:`~service.dashboard.axes`: each searched hyperparameter's axis (its distribution's scale);
- :mod:`~service.dashboard.reproduce`: the commands that reproduce a trial or save its model;
- :mod:`~service.dashboard.events`: server-sent events (change cursors, event types);
- :mod:`~service.dashboard.metrics`: the Prometheus text exposition;
- :mod:`~service.dashboard.control`: state changes (cancel, panda requests), checked as the CLI checks them;
- :mod:`~service.dashboard.security`: response headers and the control token;
- :mod:`~service.dashboard.responses`: JSON responses, errors and query parameters.

Nothing here is imported by the rest of caviar unless the dashboard runs: Starlette, uvicorn and Jinja2
are the optional extra ``caviar[dashboard]``.
"""

from __future__ import annotations
