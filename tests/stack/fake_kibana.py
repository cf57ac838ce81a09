"""A loopback stand-in for Kibana's saved objects import API, strict about what Kibana requires.

Kibana itself cannot run here (it is neither on the package registries this project
uses nor runnable without its own download), so `newsagg kibana import` is tested
against this server, which checks the request as Kibana's import route does and
answers in Kibana's shapes:

* ``POST [/s/<space>]/api/saved_objects/_import`` only; anything else is a 404 in the
  Boom error shape ``{"statusCode", "error", "message"}``.
* Credentials (basic or ``ApiKey``) when the server is given some: 401 otherwise.
* The ``kbn-xsrf`` header: 400 "Request must contain a kbn-xsrf header." otherwise.
* A multipart/form-data body with a ``file`` part whose file name ends in .ndjson
  (400 "Invalid file extension .x"), one JSON object a line.
* ``overwrite=true``: existing objects are replaced (``"overwrite": true`` in their
  result); without it they come back as ``conflict`` errors.
* References must resolve to objects in the file or already stored, else a
  ``missing_references`` error naming them; then nothing is imported and
  ``success`` is false (HTTP 200), as Kibana does.
* ``unavailable_for`` requests answer 503 "Kibana server is not ready yet" first.
"""

from __future__ import annotations

import base64
import json
import threading
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

ICONS = {"index-pattern": "indexPatternApp", "search": "discoverApp", "visualization": "visualizeApp",
         "dashboard": "dashboardApp"}


class FakeKibana:
    """Kibana's import endpoint on 127.0.0.1; ``stored`` holds what was imported, by (type, id)."""

    def __init__(self, *, username: str | None = None, password: str | None = None, api_key: str | None = None,
                 unavailable_for: int = 0) -> None:
        self.username, self.password, self.api_key = username, password, api_key
        self.unavailable_for = unavailable_for
        self.stored: dict[tuple[str, str], dict[str, Any]] = {}
        self.requests: list[dict[str, Any]] = []  # method, path, query, headers, file name, objects
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.kibana = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    @property
    def url(self) -> str:
        return "http://127.0.0.1:%d" % self._httpd.server_address[1]

    def __enter__(self) -> FakeKibana:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()

    def authorized(self, header: str | None) -> bool:
        if self.username is None and self.api_key is None:
            return True
        if header is None:
            return False
        scheme, _, value = header.partition(" ")
        if scheme == "ApiKey":
            return self.api_key is not None and value == self.api_key
        if scheme == "Basic" and self.username is not None:
            return base64.b64decode(value).decode() == f"{self.username}:{self.password}"
        return False

    def do_import(self, objects: list[dict[str, Any]], overwrite: bool) -> dict[str, Any]:
        with self._lock:
            in_file = {(o["type"], o["id"]) for o in objects}
            errors: list[dict[str, Any]] = []
            for obj in objects:
                meta = {"title": obj.get("attributes", {}).get("title"), "icon": ICONS.get(obj["type"], "")}
                missing = [{"type": r["type"], "id": r["id"]} for r in obj.get("references", [])
                           if (r["type"], r["id"]) not in in_file and (r["type"], r["id"]) not in self.stored]
                if obj["type"] not in ICONS:
                    errors.append({"id": obj["id"], "type": obj["type"], "meta": meta,
                                   "error": {"type": "unsupported_type"}})
                elif missing:
                    errors.append({"id": obj["id"], "type": obj["type"], "meta": meta,
                                   "error": {"type": "missing_references", "references": missing}})
                elif (obj["type"], obj["id"]) in self.stored and not overwrite:
                    errors.append({"id": obj["id"], "type": obj["type"], "meta": meta, "error": {"type": "conflict"}})
            if errors:
                return {"successCount": 0, "success": False, "warnings": [], "errors": errors}
            results = []
            for obj in objects:
                key = (obj["type"], obj["id"])
                result = {"type": obj["type"], "id": obj["id"], "managed": False,
                          "meta": {"title": obj["attributes"].get("title"), "icon": ICONS[obj["type"]]}}
                if key in self.stored:
                    result["overwrite"] = True
                self.stored[key] = obj
                results.append(result)
            return {"successCount": len(results), "success": True, "warnings": [], "successResults": results}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _boom(self, status: int, error: str, message: str) -> None:
        self._send(status, {"statusCode": status, "error": error, "message": message})

    def do_GET(self) -> None:
        self._boom(404, "Not Found", "Not Found")

    def do_POST(self) -> None:
        kibana: FakeKibana = self.server.kibana  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        parts = urlsplit(self.path)
        record: dict[str, Any] = {"method": "POST", "path": parts.path, "query": parse_qs(parts.query),
                                  "headers": {k.lower(): v for k, v in self.headers.items()}}
        kibana.requests.append(record)
        path = parts.path
        if path.startswith("/s/"):
            path = "/" + path.split("/", 3)[3]
        if path != "/api/saved_objects/_import":
            return self._boom(404, "Not Found", "Not Found")
        if kibana.unavailable_for > 0:
            kibana.unavailable_for -= 1
            return self._boom(503, "Service Unavailable", "Kibana server is not ready yet")
        if not kibana.authorized(self.headers.get("Authorization")):
            return self._boom(401, "Unauthorized",
                              "[security_exception]: unable to authenticate user for REST request [/_security/_authenticate]")
        if self.headers.get("kbn-xsrf") is None:
            return self._boom(400, "Bad Request", "Request must contain a kbn-xsrf header.")
        content_type = self.headers.get("Content-Type", "")
        if not content_type.startswith("multipart/form-data"):
            return self._boom(415, "Unsupported Media Type", "Unsupported Media Type")
        message = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + raw)
        files = [p for p in message.iter_parts() if p.get_param("name", header="content-disposition") == "file"]
        if len(files) != 1:
            return self._boom(400, "Bad Request", "[request body.file]: expected value of type [Stream] but got [undefined]")
        filename = files[0].get_filename() or ""
        record["file_name"] = filename
        extension = "." + filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
        if extension != ".ndjson":
            return self._boom(400, "Bad Request", f"Invalid file extension {extension}")
        payload = files[0].get_payload(decode=True)
        try:
            objects = [json.loads(line) for line in payload.decode("utf-8").splitlines() if line.strip()]
        except ValueError as exc:
            return self._boom(400, "Bad Request", f"Unexpected token in JSON: {exc}")
        record["objects"] = objects
        overwrite = parse_qs(parts.query).get("overwrite", ["false"])[0] == "true"
        self._send(200, kibana.do_import(objects, overwrite))
