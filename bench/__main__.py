"""python -m bench: benchmark tables on wordnet-minilm, wordnet-minilm-tokens or synthetic data.

Single thread (FAISS, torch, BLAS), baselines measured in the same process; prints one
markdown table per dataset and optionally writes the rows as JSON.
"""

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

from bench.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(argparse.ArgumentParser(prog="python -m bench"), Path(tempfile.gettempdir())))
