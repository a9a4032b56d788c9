"""A real OpenAI-compatible chat endpoint for the teacher tests: an ``http.server`` on a free
port of 127.0.0.1, in a thread. It writes a question by putting "what" in place of the answer
in the sentence it is sent, records every request body and header, and can be told to fail."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Endpoint:
    """What the server does and what it saw."""

    url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    fail_from: int | None = None
    """From this request on (0-based), answer with ``fail_status``."""
    fail_status: int = 500
    reply: str | None = None
    """A fixed reply instead of a question."""
    body: bytes | None = None
    """A fixed raw body instead of a chat completion."""

    def sent_text(self) -> str:
        """Everything the endpoint was sent, as one string."""
        return "\n".join(json.dumps(r) for r in self.requests)


def write_question(messages: list[dict[str, str]]) -> str:
    """The question for the last user turn: its sentence with the answer replaced by "what"."""
    turn = messages[-1]["content"]
    sentence = re.search(r"^Sentence: (.*)$", turn, re.M)
    answer = re.search(r"^Answer: (.*)$", turn, re.M)
    if not sentence or not answer:
        return "no idea"
    return sentence.group(1).replace(answer.group(1), "what").rstrip(". ") + "?"


@contextmanager
def running_endpoint() -> Iterator[Endpoint]:
    state = Endpoint()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            request = json.loads(self.rfile.read(length))
            index = len(state.requests)
            state.requests.append(request)
            state.headers.append(dict(self.headers.items()))
            if not self.path.endswith("/v1/chat/completions"):
                self._send(404, b'{"error": "not found"}')
            elif state.fail_from is not None and index >= state.fail_from:
                self._send(state.fail_status, b'{"error": {"message": "overloaded"}}')
            elif state.body is not None:
                self._send(200, state.body)
            else:
                text = (
                    state.reply if state.reply is not None else write_question(request["messages"])
                )
                completion = {
                    "id": f"c{index}",
                    "object": "chat.completion",
                    "model": request["model"],
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": text},
                            "finish_reason": "stop",
                        }
                    ],
                }
                self._send(200, json.dumps(completion).encode())

        def _send(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
