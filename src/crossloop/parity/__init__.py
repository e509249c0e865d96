"""Cross-backend parity: train one experiment on two backends step by step and show
where they part.

    run     run_parity, forward_diff: the two backends, phase by phase
    report  Tolerance, ParityReport: the record, the verdict, table and JSON
    plot    plot_report: the differences per step as a PNG

``crossloop parity`` runs it from the command line on a ``crossloop train``
experiment; :func:`crossloop.testing.assert_parity` in a test.
"""

from .report import DEFAULT_TOLERANCES, Exceedance, ParityReport, StepRecord, Tolerance
from .run import forward_diff, run_parity

__all__ = ["DEFAULT_TOLERANCES", "Exceedance", "ParityReport", "StepRecord", "Tolerance",
           "forward_diff", "run_parity"]
