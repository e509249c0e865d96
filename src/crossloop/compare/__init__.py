"""Model-pair parity: a native torch model and its Keras port compared layer by layer
(outputs, gradients) and step by step (weights), naming the first layer where the
port goes wrong and, where the two layers' settings or numbers tell, why.

    run      compare_models, align, CompareError
    report   ModelReport, Row, TOLERANCES: the record, verdict, table, JSON, plot
    causes   what a divergence's settings, weights or numbers point to

``crossloop compare-models`` runs it from the command line;
:func:`crossloop.testing.assert_models_agree` in a test.
"""

from .report import TOLERANCES, ModelReport, Row
from .run import CompareError, align, compare_models

__all__ = ["TOLERANCES", "CompareError", "ModelReport", "Row", "align", "compare_models"]
