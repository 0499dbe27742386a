"""The protocol glue: the pygls server that answers with :mod:`dltspec.lsp.features`."""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass

from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol

from dltspec import __version__
from dltspec.lsp.diagnostics import lsp_diagnostics
from dltspec.lsp.features import completions, hover
from dltspec.lsp.positions import UTF16


def plain(content: types.MarkupContent) -> types.MarkupContent:
    """Markdown as plain text, for clients that take no Markdown (``**key**`` -> ``key``)."""
    return types.MarkupContent(kind=types.MarkupKind.PlainText, value=content.value.replace("**", "").replace("`", ""))


def takes_markdown(capabilities: types.ClientCapabilities, *path: str) -> bool:
    """Whether the formats the client lists at ``path`` (from ``text_document``) include Markdown
    (a client that lists none gets plain text)."""
    node = capabilities.text_document
    for name in path:
        node = getattr(node, name, None) if node is not None else None
    return node is not None and types.MarkupKind.Markdown in node


def log(message: str) -> None:
    print(f"dltspec lsp: {message}", file=sys.stderr, flush=True)


@dataclass
class Refused:
    """A request whose params could not be read: answered with an error (JSON-RPC -32602), never left waiting."""

    id: object
    method: str
    reason: str


class Protocol(LanguageServerProtocol):
    """pygls's protocol, which answers every request: one with invalid params gets a -32602 error with its
    id (pygls would only show a message and the client would wait forever)."""

    def structure_message(self, data):
        try:
            return super().structure_message(data)
        except JsonRpcException as exc:
            if isinstance(data, dict) and "id" in data and "method" in data:
                return Refused(data["id"], str(data.get("method")), str(exc) or type(exc).__name__)
            raise

    def handle_message(self, message):
        if isinstance(message, Refused):
            log(f"refused {message.method}: {message.reason}")
            self._send_data(types.ResponseErrorMessage(id=message.id, error=types.ResponseError(
                code=types.ErrorCodes.InvalidParams, message=f"invalid params for {message.method}")))
            return
        super().handle_message(message)


class Server(LanguageServer):
    """The server, whose reader's errors become JSON-RPC errors: a body that is not JSON gets -32700."""

    def report_server_error(self, error: Exception, source) -> None:
        if isinstance(error, json.JSONDecodeError) or isinstance(error.__cause__, json.JSONDecodeError):
            log(f"a message that is not JSON: {error}")
            self.protocol._send_data({"jsonrpc": "2.0", "id": None,  # JSON-RPC 2.0: id null when it cannot be read
                                      "error": {"code": int(types.ErrorCodes.ParseError),
                                                "message": f"parse error: {error}"}})
            return
        super().report_server_error(error, source)


def server() -> LanguageServer:
    """The language server: diagnostics on open and change, completion and hover."""
    ls = Server("dltspec", __version__, text_document_sync_kind=types.TextDocumentSyncKind.Incremental,
                protocol_cls=Protocol)

    def encoding() -> str:
        return str(getattr(ls.workspace.position_encoding, "value", ls.workspace.position_encoding) or UTF16)

    def publish(uri: str) -> None:
        document = ls.workspace.get_text_document(uri)
        try:
            found = lsp_diagnostics(document.source, uri, encoding())
        except Exception as exc:  # never take the editor's session down with us
            log(f"cannot check {uri}: {type(exc).__name__}: {exc}")
            return
        ls.text_document_publish_diagnostics(types.PublishDiagnosticsParams(
            uri=uri, version=document.version, diagnostics=found))

    @ls.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def did_open(params: types.DidOpenTextDocumentParams) -> None:
        publish(params.text_document.uri)

    @ls.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(params: types.DidChangeTextDocumentParams) -> None:
        publish(params.text_document.uri)

    @ls.feature(types.TEXT_DOCUMENT_DID_SAVE)
    def did_save(params: types.DidSaveTextDocumentParams) -> None:
        publish(params.text_document.uri)

    @ls.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(params: types.DidCloseTextDocumentParams) -> None:
        ls.text_document_publish_diagnostics(types.PublishDiagnosticsParams(uri=params.text_document.uri,
                                                                            diagnostics=[]))

    @ls.feature(types.TEXT_DOCUMENT_COMPLETION, types.CompletionOptions(trigger_characters=["=", "{"]))
    def complete(params: types.CompletionParams) -> types.CompletionList:
        document = ls.workspace.get_text_document(params.text_document.uri)
        try:
            items = completions(document.source, params.position.line, params.position.character, encoding())
        except Exception as exc:
            log(f"completion failed: {type(exc).__name__}: {exc}")
            items = []
        if not takes_markdown(ls.client_capabilities, "completion", "completion_item", "documentation_format"):
            for item in items:
                item.documentation = plain(item.documentation).value if item.documentation else None
        return types.CompletionList(is_incomplete=False, items=items)

    @ls.feature(types.TEXT_DOCUMENT_HOVER)
    def on_hover(params: types.HoverParams) -> types.Hover | None:
        document = ls.workspace.get_text_document(params.text_document.uri)
        try:
            shown = hover(document.source, params.position.line, params.position.character, encoding())
        except Exception as exc:
            log(f"hover failed: {type(exc).__name__}: {exc}")
            return None
        if shown is not None and not takes_markdown(ls.client_capabilities, "hover", "content_format"):
            shown.contents = plain(shown.contents)
        return shown

    return ls


#: the largest frame read (a spec is at most 100,000 characters; a frame is its JSON)
MAX_FRAME = 16 * 2 ** 20
HEADER = b"Content-Length:"


class Frames:
    """Standard input as pygls reads it (``readline`` for headers, ``read`` for a body), passing on only
    well-formed frames. A frame whose ``Content-Length`` is missing, not a number or over :data:`MAX_FRAME`
    is dropped: its body is skipped up to the next ``Content-Length`` header, so one bad frame never
    stalls the server (pygls would wait forever for a header it can read, or allocate the length given)."""

    def __init__(self, raw):
        self.raw = raw
        self.pending = b""

    def readline(self) -> bytes:
        if not self.pending:
            self.pending = self.frame()
        end = self.pending.find(b"\n") + 1 or len(self.pending)
        line, self.pending = self.pending[:end], self.pending[end:]
        return line

    def read(self, n: int) -> bytes:
        part, self.pending = self.pending[:n], self.pending[n:]
        return part

    def frame(self) -> bytes:
        """The next well-formed frame, as bytes; b"" at the end of the input."""
        while True:
            length, line = None, self.raw.readline()
            while line and line.strip():  # the headers, up to the blank line
                at = line.find(HEADER)
                if at >= 0:  # a header glued to a skipped body: the frame starts there
                    value = line[at + len(HEADER):].strip()
                    length = int(value) if value.isdigit() else -1
                line = self.raw.readline()
            if not line:
                return b""
            if length is not None and 0 <= length <= MAX_FRAME:
                body = self.raw.read(length)
                if len(body) < length:
                    return b""
                return b"Content-Length: %d\r\n\r\n" % length + body
            log(f"dropped a frame with a bad Content-Length ({'missing' if length is None else 'not a size'})")


def serve() -> None:
    """Run the server on standard input and output until the client says exit."""
    server().start_io(Frames(sys.stdin.buffer))
