"""Images named by http(s) URL: `serve --allow-remote-media` and `run -a URL` fetch them
from a small HTTP server on 127.0.0.1, within bounds, and refuse what is not an image
(a web page, a redirect to file:, an error status, too many bytes) with one clear line."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from clihelpers import run_cli
from projector import write_png, write_projector
from test_images import GREEDY, QUESTION, _data_url, _image_chat
from test_serve import start_server, stop

from llmcli import remote_media
from llmcli.errors import MediaInvalidError


class _Handler(http.server.BaseHTTPRequestHandler):
    png = b""

    def do_GET(self) -> None:
        routes = {
            "/one.png": (200, "image/png", self.png, {}),
            "/page.html": (200, "text/html; charset=utf-8", b"<html>hi</html>", {}),
            "/missing.png": (404, "text/plain", b"no", {}),
            "/to-file": (302, "text/plain", b"", {"Location": "file:///etc/hostname"}),
            "/to-ftp": (302, "text/plain", b"", {"Location": "ftp://127.0.0.1/a.png"}),
            "/to-png": (302, "text/plain", b"", {"Location": "/one.png"}),
            "/unsized.png": (200, "image/png", self.png, {}),
        }
        status, kind, body, headers = routes.get(self.path, (404, "text/plain", b"", {}))
        self.send_response(status)
        self.send_header("Content-Type", kind)
        if self.path == "/unsized.png":  # read until the connection closes
            self.end_headers()
            self.wfile.write(self.png)
            return
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("remote-media")
    write_projector(folder / "mmproj-test.gguf")
    write_png(folder / "one.png", seed=1)
    return folder


@pytest.fixture(scope="module")
def site(media: Path) -> Iterator[str]:
    """The base URL of an HTTP server on 127.0.0.1 with an image and things that are not."""
    _Handler.png = (media / "one.png").read_bytes()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_fetch_takes_an_image_and_follows_http_redirects(site: str, media: Path) -> None:
    png = (media / "one.png").read_bytes()
    assert remote_media.fetch(f"{site}/one.png") == png
    assert remote_media.fetch(f"{site}/to-png") == png


@pytest.mark.parametrize(
    ("path", "said"),
    [
        ("/page.html", "is text/html, not an image or audio file"),
        ("/missing.png", "HTTP 404"),
        ("/to-file", "Redirection to url 'file:///etc/hostname' is not allowed"),
        ("/to-ftp", "only http(s) URLs are fetched"),
    ],
)
def test_fetch_refuses_what_is_not_an_image(site: str, path: str, said: str) -> None:
    with pytest.raises(MediaInvalidError) as caught:
        remote_media.fetch(f"{site}{path}")
    assert said in caught.value.message


def test_fetch_refuses_other_schemes_and_too_many_bytes(
    site: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for url in ("file:///etc/hostname", "ftp://127.0.0.1/a.png", "/etc/hostname"):
        with pytest.raises(MediaInvalidError, match="only http and https"):
            remote_media.fetch(url)
    monkeypatch.setattr(remote_media, "MAX_BYTES", 100)
    with pytest.raises(MediaInvalidError, match="over the"):
        remote_media.fetch(f"{site}/one.png")
    # Without a Content-Length the bound holds while reading.
    with pytest.raises(MediaInvalidError, match="over the"):
        remote_media.fetch(f"{site}/unsized.png")


def test_serve_fetches_image_urls_only_when_allowed(
    model_file: Path, media: Path, site: str
) -> None:
    projector = ("--mmproj", str(media / "mmproj-test.gguf"))
    greedy = {"temperature": 0, "max_tokens": 16}
    server = start_server(model_file, *projector, "--parallel", "1", "--allow-remote-media")
    try:
        inline = server.post(
            "/v1/chat/completions", _image_chat(_data_url(media / "one.png"), **greedy)
        )
        fetched = server.post("/v1/chat/completions", _image_chat(f"{site}/one.png", **greedy))
        page = server.post("/v1/chat/completions", _image_chat(f"{site}/page.html"))
        to_file = server.post("/v1/chat/completions", _image_chat(f"{site}/to-file"))
        other = server.post("/v1/chat/completions", _image_chat("file:///etc/hostname"))
    finally:
        assert stop(server) == 0
    assert inline[0] == fetched[0] == 200, (inline, fetched)
    assert fetched[2]["choices"][0]["message"] == inline[2]["choices"][0]["message"]
    field = "messages[0].content[0].image_url.url"
    for status, _, error in (page, to_file, other):
        assert status == 400
        assert error["error"]["param"] == field
    assert "text/html" in page[2]["error"]["message"]
    assert "file:///etc/hostname" in to_file[2]["error"]["message"]


def test_run_attach_takes_a_url_as_it_takes_the_file(
    model_file: Path, media: Path, site: str
) -> None:
    args = ("run", "-m", str(model_file), "--mmproj", str(media / "mmproj-test.gguf"))
    local = run_cli(*args, "-a", str(media / "one.png"), *GREEDY, "--json", QUESTION)
    remote = run_cli(*args, "-a", f"{site}/one.png", *GREEDY, "--json", QUESTION)
    assert local.returncode == 0 and remote.returncode == 0, remote.stderr
    assert json.loads(remote.stdout)["text"] == json.loads(local.stdout)["text"]
    page = run_cli(*args, "-a", f"{site}/page.html", *GREEDY, QUESTION)
    assert page.returncode == 14
    lines = page.stderr.strip().splitlines()
    assert len(lines) == 1 and "text/html" in lines[0], page.stderr
