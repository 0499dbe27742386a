"""``python -m dltspec.lsp``: the language server on standard input and output (as ``dltspec lsp``)."""
from dltspec.lsp.protocol import serve

serve()
