#!/usr/bin/env python3
"""A loopback HTTP server for the benchmarks (python -m http.server ignores query strings).

  python3 bench/serve.py DIR        prints the port it listens on, then serves until killed:

  GET /api/daily_papers?date=YYYY-MM-DD   DIR/hf/YYYY-MM-DD.json, or [] for a day without one
  GET /feed.xml                           DIR/feed.xml (for rss2email)
"""
import http.server
import pathlib
import re
import sys
import urllib.parse


def handler(root):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):  # noqa: N802 (the stdlib's name)
            url = urllib.parse.urlsplit(self.path)
            body, kind = None, "application/json"
            if url.path == "/api/daily_papers":
                date = urllib.parse.parse_qs(url.query).get("date", [""])[0]
                if re.fullmatch(r"\d{4}-\d{2}-\d{2}", date):
                    path = root / "hf" / f"{date}.json"
                    body = path.read_bytes() if path.is_file() else b"[]"
            elif url.path == "/feed.xml" and (root / "feed.xml").is_file():
                body, kind = (root / "feed.xml").read_bytes(), "application/rss+xml"
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    return Handler


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # A client closing its keep-alive connection is not an error worth a traceback.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def main():
    root = pathlib.Path(sys.argv[1]).resolve()
    server = Server(("127.0.0.1", 0), handler(root))
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
