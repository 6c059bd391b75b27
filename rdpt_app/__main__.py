"""Start the app: ``python -m rdpt_app [streamlit options]`` (what ``make app`` runs).

The app navigates with ``st.navigation`` from ``app.py``. Streamlit also takes a ``pages/``
folder beside the main script for its legacy multipage mode, and keeps to it until ``app.py``
has run once: on a fresh server the first visit of a deep link (``/explorer?record=…``, as a
collaborator opening a shared link) would show "Page not found". Saying so before the server
starts makes every first visit go through ``app.py``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    from streamlit.runtime.pages_manager import PagesManager
    from streamlit.web import cli

    PagesManager.uses_pages_directory = False
    os.chdir(ROOT)  # .streamlit/config.toml is read from the working directory
    sys.argv = ["streamlit", "run", str(ROOT / "app.py"), *sys.argv[1:]]
    cli.main()


if __name__ == "__main__":
    main()
