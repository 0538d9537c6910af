"""Pure functions over a `Run`: the metric catalog, phases, survival-trace patterns, red
flags, summaries, sweeps, smoothing and downsampling for charts."""
