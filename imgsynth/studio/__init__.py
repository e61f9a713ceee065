"""imgsynth studio: a local web app to see a recipe's samples as you edit it and to browse
data sets (`imgsynth studio [RECIPE | DIR]`; docs/studio.md).

render.py makes a recipe's samples with the run's own code path, browse.py reads output
folders and data sets, server.py serves both on 127.0.0.1, static/ is the page.
"""

from __future__ import annotations


def serve(target=None, port=None) -> None:
    """Serve the studio until Ctrl-C (imported lazily: the CLI stays light)."""
    from imgsynth.studio.server import serve as run_server

    run_server(target, port)
