"""`python -m ponder_app [streamlit options] [-- --runs DIR ...]`: `streamlit run app.py`
with the first page's process-wide work (imports, parsing the configured runs) started
at once instead of when the first browser connects (see `ponder_app.warm`)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    # Streamlit first (the server and the warming thread both need it, and one thread
    # importing it is enough), then the thread, then the server, which blocks.
    from streamlit.web import cli

    from ponder_app import registry, warm

    app_args = args[args.index("--") + 1 :] if "--" in args else []
    warm.start(app_args)
    sys.argv = ["streamlit", "run", str(registry.ENTRYPOINT), *args]
    cli.main(prog_name="streamlit")


if __name__ == "__main__":
    main()
