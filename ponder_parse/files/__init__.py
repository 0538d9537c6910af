"""Where runs come from: finding run folders and logs, unpacking uploads, loading a run
from its files, and reading the hyperparameters around it."""
