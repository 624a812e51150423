"""The last resort of a shutdown: whatever hangs where no deadline reaches, the process ends `SHUTDOWN_DEADLINE`
seconds after SIGTERM (here shortened), with status 1 and one log line saying so."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from targets import free_port, wait_for

# A server whose shutdown blocks a thread forever (nothing can abort it), run by tpmon's QuietServer.
SCRIPT = """
import asyncio, contextlib, logging, sys, threading
import uvicorn
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from monitor import app as tpmon_app

tpmon_app.SHUTDOWN_DEADLINE = 2.0
logging.basicConfig(level=logging.INFO)

@contextlib.asynccontextmanager
async def lifespan(app):
    yield
    await asyncio.to_thread(threading.Event().wait)  # a call blocked where no deadline reaches

async def ok(request):
    return PlainTextResponse("ok")

app = Starlette(routes=[Route("/", ok)], lifespan=lifespan)
config = uvicorn.Config(app, host="127.0.0.1", port=int(sys.argv[1]), log_config=None, lifespan="on")
tpmon_app.QuietServer(config).run()
"""


# The same behind `tpmon serve`'s two listeners: the first signal goes to the operators' listener, which stops
# first; the deadline runs from that signal all the same.
TWO_LISTENERS = SCRIPT.replace(
    "tpmon_app.QuietServer(config).run()",
    """from monitor import listeners
from monitor.config.model import WebSettings
from monitor.listener_limits import ListenerLimits
web = WebSettings()
limits = ListenerLimits(64, web.max_header_bytes, web.header_timeout, web.keepalive_timeout, web.send_timeout)
admin = Starlette(routes=[Route("/", ok)], lifespan=lifespan)
public = listeners.public_server(app, "127.0.0.1", int(sys.argv[1]), limits)
behind = listeners.admin_server(admin, "127.0.0.1", int(sys.argv[2]), limits)
asyncio.run(listeners.serve_listeners(public, behind))""",
)


@pytest.mark.parametrize("script_text", [SCRIPT, TWO_LISTENERS], ids=["one listener", "two listeners"])
def test_a_shutdown_that_hangs_is_cut_short_after_the_deadline(tmp_path: Path, script_text: str) -> None:
    port, admin_port = free_port(), free_port()
    script = tmp_path / "hanging_server.py"
    script.write_text(script_text, encoding="utf-8")
    server = subprocess.Popen(
        [sys.executable, str(script), str(port), str(admin_port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for(
            lambda: httpx.get(f"http://127.0.0.1:{port}/", timeout=1).status_code == 200, timeout=60, what="the server"
        )
        if script_text is TWO_LISTENERS:  # the operators' listener starts once the public one is up
            url = f"http://127.0.0.1:{admin_port}/"
            wait_for(lambda: httpx.get(url, timeout=1).status_code == 200, timeout=60, what="the operators' listener")
        began = time.monotonic()
        server.send_signal(signal.SIGTERM)
        code = server.wait(timeout=20)
        took = time.monotonic() - began
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    output = server.stdout.read() if server.stdout else ""
    assert code == 1, output
    assert 1.4 <= took <= 6.0, took
    assert "shutdown still under way" in output and "exiting now" in output
