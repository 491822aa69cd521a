"""A loopback HTTP server for tests that read stores over a URL, as real servers serve them."""

import functools
import http.server
import io
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class RangeHandler(http.server.SimpleHTTPRequestHandler):
    """A static file server that honours single HTTP range requests, as real ones do."""

    def log_message(self, *args) -> None:
        pass

    def send_head(self):
        match = re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range", ""))
        path = Path(self.translate_path(self.path))
        if not match or not path.is_file():
            return super().send_head()
        size = path.stat().st_size
        first, last = match.groups()
        start = size - int(last) if not first else int(first)
        end = min(int(last), size - 1) if first and last else size - 1
        with path.open("rb") as handle:
            handle.seek(max(start, 0))
            body = handle.read(end - start + 1)
        self.send_response(206)
        self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        return io.BytesIO(body)


class Server(http.server.ThreadingHTTPServer):
    """A threading server with a listen backlog like a real server's (the standard library's
    5 drops concurrent connections, which then wait a second to be retried)."""

    request_queue_size = 128


def serve(directory: Path, handler: type):
    server = Server(("127.0.0.1", 0), functools.partial(handler, directory=str(directory)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread


@contextmanager
def serving(directory: Path, handler: type = RangeHandler) -> Iterator[str]:
    """The base URL of ``directory`` served with range requests, for the block's duration."""
    server, thread = serve(directory, handler)
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


class CountingHandler(RangeHandler):
    """A range-serving handler that counts the requests it answers and waits ``latency_s``
    before each answer, as a distant server would (set both on a subclass; see ``counting``).
    """

    latency_s: float = 0.0
    requests: list[str]
    lock: threading.Lock
    in_flight: list[int]  # [now, most at once]

    def send_head(self):
        with self.lock:
            self.requests.append(self.path)
            self.in_flight[0] += 1
            self.in_flight[1] = max(self.in_flight)
        try:
            if self.latency_s:
                time.sleep(self.latency_s)
            return super().send_head()
        finally:
            with self.lock:
                self.in_flight[0] -= 1


def counting(latency_s: float = 0.0) -> type[CountingHandler]:
    """A fresh CountingHandler class with its own request log."""
    return type("Counting", (CountingHandler,), {"latency_s": latency_s, "requests": [],
                                                 "lock": threading.Lock(),
                                                 "in_flight": [0, 0]})
