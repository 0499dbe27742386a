"""``dltspec lsp``: a Language Server for ``.dlt`` specs over stdio, built on pygls 2.

Diagnostics (the same as ``dltspec check``) on open and on every change, completion of
block kinds, labels, keys and enum values, and hover on kinds, labels and keys; the
vocabulary comes from the JSON Schema alone.

The protocol glue is :func:`server`; everything it answers with comes from pure functions
that take the document's text: :func:`lsp_diagnostics`, :func:`completions` and :func:`hover`.
Positions: dltspec's spans are 1-based lines and columns in code points; LSP's are 0-based
lines and, by default, UTF-16 code units (a client may negotiate UTF-8 or UTF-32, which
every function here accepts as ``encoding``). Like ``check``, nothing here imports PyTensor.

One module per part, each importing only those before it:

- :mod:`~dltspec.lsp.positions`: dltspec's lines and columns <-> LSP's positions;
- :mod:`~dltspec.lsp.diagnostics`: ``dltspec check``'s diagnostics in LSP form;
- :mod:`~dltspec.lsp.reader`: a tolerant reading of the text around the cursor;
- :mod:`~dltspec.lsp.descriptions`: kinds, labels and keys described in Markdown;
- :mod:`~dltspec.lsp.features`: completion and hover;
- :mod:`~dltspec.lsp.protocol`: the pygls server (:func:`server`, :func:`serve`).
"""
from __future__ import annotations

from dltspec.lsp.diagnostics import EDITOR_VARIANTS, SOURCE, lsp_diagnostic, lsp_diagnostics, path_of
from dltspec.lsp.features import completion_items, completions, hover
from dltspec.lsp.positions import (
                                   UTF8,
                                   UTF16,
                                   UTF32,
                                   code_units,
                                   from_client_character,
                                   lsp_position,
                                   lsp_range,
                                   offset_of,
                                   to_client_character,
                                   to_utf16_position,
)
from dltspec.lsp.protocol import plain, serve, server, takes_markdown
from dltspec.lsp.reader import Context, Reader, Token, read_around, tokens

__all__ = ["EDITOR_VARIANTS", "SOURCE", "UTF8", "UTF16", "UTF32", "Context", "Reader", "Token", "code_units",
           "completion_items", "completions", "from_client_character", "hover", "lsp_diagnostic",
           "lsp_diagnostics", "lsp_position", "lsp_range", "offset_of", "path_of", "plain", "read_around", "serve",
           "server", "takes_markdown", "to_client_character", "to_utf16_position", "tokens"]
