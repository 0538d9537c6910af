"""What the frame (`app.py`) and the warming thread import first: once and whole, what
Altair, narwhals and Streamlit otherwise import lazily on first use (pandas, numpy,
pyarrow, narwhals' Polars backend).
Lazily, several sessions rendering at once on a fresh server race: one thread finds
pandas in `sys.modules` while another is still initializing it ("partially initialized
module 'pandas' has no attribute 'Timestamp'"). Python's import lock makes every other
session's `import ponder_app.preload` wait until this one has finished, so by then they are
whole. Only what every page render needs anyway is here (vl_convert, which only chart
downloads use, is not).
"""

import narwhals
import numpy
import pandas
import polars
import pyarrow
import pyarrow.compute
import pyarrow.ipc
import pyarrow.pandas_compat

# Loads narwhals' Polars backend, which it otherwise imports on the first chart.
narwhals.from_native(polars.DataFrame({"x": [0]}), eager_only=True)

__all__ = ["numpy", "pandas", "pyarrow"]
