"""crossloop's training step against hand-written PyTorch and TensorFlow loops and Keras fit.

    python benchmarks/loop_overhead.py            # the same as: crossloop bench
    python benchmarks/loop_overhead.py --quick    # smoke run
    python benchmarks/loop_overhead.py --compiled # add torch.compile and XLA contenders

See crossloop/bench.py for what is measured and how.
"""

import sys

from crossloop import cli

if __name__ == "__main__":
    sys.exit(cli.main(["bench", *sys.argv[1:]]))
