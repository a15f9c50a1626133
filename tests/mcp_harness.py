"""Test support for the example MCP server (examples/mcp_server.py): load it as its script does,
serve it on a free port, and talk to it with the official ``mcp`` client.

The example is a script next to its helper module (``examples/mcp_support.py``), so it is loaded
with ``examples/`` on ``sys.path``, exactly as ``python examples/mcp_server.py`` finds its helper.
"""

from __future__ import annotations

import importlib
import queue
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import anyio
import httpx2
import uvicorn
from mcp import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientMetadata
from mcp.shared.exceptions import MCPError

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SERVER_SCRIPT = EXAMPLES / "mcp_server.py"

if str(EXAMPLES) not in sys.path:
    sys.path.append(str(EXAMPLES))
mcp_server = importlib.import_module("mcp_server")
mcp_support = importlib.import_module("mcp_support")


def free_socket() -> socket.socket:
    """A listening-ready socket on a free loopback port (handed to uvicorn: no race for the port)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def free_port() -> int:
    with free_socket() as sock:
        return sock.getsockname()[1]


@contextmanager
def served(app, sock: socket.socket) -> Iterator[None]:
    """Serve an ASGI app with uvicorn in a thread on ``sock`` for the duration of the block."""
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the MCP server did not start")
        time.sleep(0.02)
    try:
        yield
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()


class MemoryStorage:
    """The OAuth client's ``TokenStorage``: in memory, for one test."""

    def __init__(self) -> None:
        self.tokens = None
        self.client_info = None

    async def get_tokens(self):
        return self.tokens

    async def set_tokens(self, tokens) -> None:
        self.tokens = tokens

    async def get_client_info(self):
        return self.client_info

    async def set_client_info(self, client_info) -> None:
        self.client_info = client_info


class ClientThread:
    """The official MCP client, run by ``anyio`` in a thread of its own, steered by the test.

    Playwright's sync API cannot run inside an event loop, so the browser stays in the test's
    thread and the client asks it for what a person does: ``("authorize", url)`` when the OAuth
    client wants the person at the authorization page (the test answers with the redirect URL the
    browser landed on), and ``("elicit", error)`` when a tool answered with a URL elicitation (the
    test answers once the person approved). Every HTTP request the client sends is recorded as
    with its status in ``timeline``: never a query string or a header.
    """

    def __init__(self, server_url: str, redirect_uri: str, steps) -> None:
        self.server_url = server_url
        self.redirect_uri = redirect_uri
        self.steps = steps  # async (client, ask) -> None, run once connected
        self.to_test: queue.Queue = queue.Queue()
        self.to_client: queue.Queue = queue.Queue()
        #: ``(who, method, path)`` in the order they happened; the test adds the browser's and the
        #: MCP server's own requests to the same list.
        self.timeline: list[tuple[str, str, str]] = []
        self.storage = MemoryStorage()  # where the OAuth client keeps its registration and tokens
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> ClientThread:
        self.thread.start()
        return self

    def _run(self) -> None:
        try:
            anyio.run(self._main)
        except BaseException as error:  # reported to the test thread, which fails the test
            self.to_test.put(("failed", error))
        else:
            self.to_test.put(("done", None))

    async def ask(self, kind: str, payload) -> object:
        """Hand the test a step for the person and wait for its answer."""
        self.to_test.put((kind, payload))
        return await anyio.to_thread.run_sync(self.to_client.get)

    async def _record(self, response: httpx2.Response) -> None:
        request = response.request
        self.timeline.append(("MCP client", request.method, f"{request.url.path} -> {response.status_code}"))

    async def _open_browser(self, url: str) -> None:
        landed = await self.ask("authorize", url)
        self._landed = str(landed)

    async def _callback(self) -> AuthorizationCodeResult:
        query = parse_qs(urlsplit(self._landed).query)
        if "code" not in query:
            raise RuntimeError(f"the authorization server answered without a code: {sorted(query)}")
        return AuthorizationCodeResult(
            code=query["code"][0], state=query.get("state", [None])[0], iss=query.get("iss", [None])[0]
        )

    async def _main(self) -> None:
        auth = OAuthClientProvider(
            server_url=self.server_url,
            client_metadata=OAuthClientMetadata(
                client_name="MCP interop test client",
                redirect_uris=[self.redirect_uri],
                grant_types=["authorization_code", "refresh_token"],
                response_types=["code"],
                token_endpoint_auth_method="none",
            ),
            storage=self.storage,
            redirect_handler=self._open_browser,
            callback_handler=self._callback,
        )
        http = httpx2.AsyncClient(auth=auth, timeout=60, event_hooks={"response": [self._record]})
        async with http, Client(streamable_http_client(self.server_url, http_client=http)) as client:
            await self.steps(client, self.ask)


async def call_or_error(client: Client, tool: str):
    """The tool's result, or the MCP error it answered with (a URL elicitation among them)."""
    try:
        return await client.call_tool(tool, {})
    except MCPError as error:
        return error
