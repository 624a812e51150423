"""The last resort of a shutdown: whatever hangs where no deadline reaches, the process ends `SHUTDOWN_DEADLINE`
seconds after SIGTERM (here shortened), with status 1 and one log line saying so."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
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


def test_a_shutdown_that_hangs_is_cut_short_after_the_deadline(tmp_path: Path) -> None:
    port = free_port()
    script = tmp_path / "hanging_server.py"
    script.write_text(SCRIPT, encoding="utf-8")
    server = subprocess.Popen(
        [sys.executable, str(script), str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        wait_for(lambda: httpx.get(f"http://127.0.0.1:{port}/", timeout=1).status_code == 200, what="the server")
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
