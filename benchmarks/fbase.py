"""F_base: a bare Faust agent that decodes each inbound message and forwards it —
Faust's own ceiling on this machine, with the worker tuned as GridLink's is.

Run by ``gridlink bench`` as ``python -m benchmarks.fbase`` with the stage's
``GRIDLINK_`` settings; forwards to the stage's ``cases.commands`` topic, as intake
does.
"""

from __future__ import annotations

import contextlib

import faust
from faust.worker import Worker

from agents.app import create_app
from settings import Settings
from streams.errors import GridLinkError
from streams.parse import PARSERS
from topics import registry


def build(settings: Settings) -> faust.App:
    datadir = settings.state_dir.expanduser().absolute() / settings.app_id
    datadir.mkdir(parents=True, exist_ok=True)
    app = create_app(settings, datadir)  # the same broker, producer and session settings
    sources = {settings.topic(name): source for name, source in registry.INGEST_SOURCES.items()}
    inbound = app.topic(*sources, key_serializer="raw", value_serializer="raw")
    out = app.topic(settings.topic(registry.CASE_COMMANDS), key_serializer="raw",
                    value_serializer="raw", partitions=None, internal=False)

    @app.agent(inbound, name="forward")
    async def forward(stream: faust.StreamT) -> None:
        async for event in stream.events():
            message = event.message
            # forwarded all the same when it does not parse: the cost of a decode is measured
            with contextlib.suppress(GridLinkError):
                PARSERS[sources[message.topic]](message.value or b"")
            await out.send(key=message.key, value=message.value)

    return app


def main() -> None:
    settings = Settings()
    Worker(build(settings), loglevel="warning").execute_from_commandline()


if __name__ == "__main__":
    main()
