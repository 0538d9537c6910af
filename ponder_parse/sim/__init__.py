"""A simulator of the trainer: runs written in the trainer's exact format, for the bundled
sample sweep and for tests.

    python -m ponder_parse.sim OUT_DIR     # regenerate the sample sweep
"""

from ponder_parse.sim.simulate import SimConfig, SimResult, simulate, write_run, write_sample_sweep

__all__ = ["SimConfig", "SimResult", "simulate", "write_run", "write_sample_sweep"]
